"""Hand-made FrameRecords for the frame store / pairs / dataset tests (independent of the renderer)."""
from __future__ import annotations

import cv2
import numpy as np

from input_pipeline.formats import geometry
from input_pipeline.formats.frame_record import FrameRecord

WIDTH, HEIGHT = 48, 64
# (video id, number of raw frames, rectangle colour RGB)
VIDEOS = (('cup/batch-0/0', 12, (220, 40, 40)), ('shoe/batch-0/1', 10, (40, 200, 60)),
          ('book/batch-1/2', 11, (50, 60, 230)))
INTRINSICS = np.array([[1500.0, 0, 960], [0, 1500.0, 720], [0, 0, 1]])
PROJECTION = geometry.projection_from_intrinsics(INTRINSICS)


def box_points(video: int, frame: int, instance: int = 0):
  """Rotation, translation, scale, point_3d, point_2d of a box drifting with the frame number."""
  rotation = np.eye(3)
  translation = np.array([0.02 * frame - 0.1 + 0.05 * video, 0.03 * instance - 0.02, -1.2 - 0.1 * instance])
  scale = np.array([0.12 + 0.02 * video, 0.2, 0.1 + 0.05 * instance])
  p3 = geometry.box_keypoints(rotation, translation, scale)
  return rotation, translation, scale, p3, geometry.project_points(p3, PROJECTION)


def render(point_2d: np.ndarray, colour, seed: int) -> np.ndarray:
  """RGB image: smooth background plus a filled rectangle over the keypoints' 2D box."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
  img = np.stack([xx * 4, yy * 3, (xx + yy) * 2], -1) + rng.uniform(0, 8, (HEIGHT, WIDTH, 3))
  img = np.clip(img, 0, 255).astype(np.uint8)
  x0, y0 = (point_2d[:, :2].min(0) * [WIDTH, HEIGHT]).astype(int)
  x1, y1 = (point_2d[:, :2].max(0) * [WIDTH, HEIGHT]).astype(int)
  cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), tuple(int(c) for c in colour), -1)
  return img


def make_record(video: int, frame: int, *, num_instances: int = 2, nan: bool = False) -> FrameRecord:
  vid, _, colour = VIDEOS[video]
  parts = [box_points(video, frame, i) for i in range(num_instances)]
  rot, trans, scale, p3, p2 = (np.stack([p[k] for p in parts]) for k in range(5))
  img = render(p2[0], colour, seed=video * 1000 + frame)
  if nan:
    p2 = p2.copy()
    p2[0, 3, 0] = np.nan
  ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
  assert ok
  view = np.eye(4)
  view[:3, 3] = [0.1 * frame, 0, 0]
  return FrameRecord(
      video_id=vid, frame_id=frame, timestamp_us=frame * 33333, category=vid.split('/')[0],
      image=jpeg.tobytes(), image_width=WIDTH, image_height=HEIGHT, point_2d=p2, point_3d=p3,
      rotation=rot, translation=trans, scale=scale, visibility=np.array([0.9, 0.5])[:num_instances],
      intrinsics=INTRINSICS, projection=PROJECTION, view=view, extrinsics=np.linalg.inv(view),
      plane_center=np.array([0.0, -0.3, -1.2]), plane_normal=np.array([0.0, 1.0, 0.0]),
      instance_ids=tuple(range(7, 7 + num_instances)))


def all_records(shuffle_seed: int | None = 0) -> list[FrameRecord]:
  """Every frame of every video, shuffled across videos like Objectron's records_shuffled."""
  recs = [make_record(v, f) for v, (_, n, _) in enumerate(VIDEOS) for f in range(n)]
  if shuffle_seed is not None:
    order = np.random.default_rng(shuffle_seed).permutation(len(recs))
    recs = [recs[i] for i in order]
  return recs


def split_fn(video_id: str) -> str:
  return 'val' if video_id.startswith('book') else 'train'
