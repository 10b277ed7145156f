"""One synthetic video: its object instance, room, light and camera path, its rendered frames and their
exact Objectron labels (see the package docstring)."""
from __future__ import annotations

import dataclasses
from typing import Iterator

import cv2
import numpy as np

from input_pipeline.formats import geometry
from input_pipeline.formats.frame_record import CATEGORIES, FrameRecord
from input_pipeline.synthetic import objects as synthetic_objects
from input_pipeline.synthetic import render as synthetic_render
from input_pipeline.synthetic import scene as synthetic_scene

FRAME_PERIOD_US = 33333  # 30 fps
JPEG_QUALITY = 90


@dataclasses.dataclass
class Video:
  """Everything needed to render and label any frame of one synthetic video."""
  video_id: str
  category: str
  model: synthetic_objects.ObjectModel
  textures: list[np.ndarray]      # the model's tiles under this video's light colour
  env: synthetic_render.Environment  # frame 0's; `lighting` gives every frame's light
  object_to_world: np.ndarray     # [4, 4]; the box centre sits at height scale_y / 2 above y = 0
  intrinsics: np.ndarray          # [3, 3] landscape
  projection: np.ndarray          # [4, 4]
  camera_to_world: np.ndarray     # [num_frames, 4, 4]
  lighting: np.ndarray            # [num_frames, 6], see synthetic_scene.lighting_path
  lighting_drift: bool
  occluders: list[synthetic_scene.Occluder]  # unannotated

  @property
  def num_frames(self) -> int:
    return len(self.camera_to_world)


def _smooth(rng, tau, amplitude, freqs=(0.3, 1.5)):
  """A smooth random signal over normalised time tau in [0, 1] (sum of two random sinusoids)."""
  out = np.zeros_like(tau)
  for _ in range(2):
    f, p = rng.uniform(*freqs), rng.uniform(0, 2 * np.pi)
    out += amplitude / 2 * np.sin(2 * np.pi * f * tau + p)
  return out


def _look_at(eye, target, roll):
  """Camera-to-world 4x4: camera -z towards target, world up shown up in the portrait frame.

  Camera +x points down the portrait image and +y right (geometry's convention), so x = -up.
  """
  f = (target - eye) / np.linalg.norm(target - eye)
  up = np.array([0.0, 1.0, 0.0])
  up = up - (up @ f) * f
  up /= np.linalg.norm(up)
  x, z = -up, -f
  y = np.cross(z, x)
  c, s = np.cos(roll), np.sin(roll)
  x, y = c * x + s * y, -s * x + c * y
  out = np.eye(4)
  out[:3, :3] = np.stack([x, y, z], axis=1)
  out[:3, 3] = eye
  return out


def video_id(category: str, video_index: int) -> str:
  """Objectron-style id `class/batch-i/j` of a class's video number j (ten videos to a batch)."""
  return f'{category}/batch-{video_index // 10}/{video_index}'


def make_video(category: str, instance: int, video_index: int, *, num_frames: int, seed: int,
               occluders: bool | None = None, lighting_drift: bool | None = None) -> Video:
  """The scene and camera path of one video; a deterministic function of the arguments.

  `occluders` and `lighting_drift` are drawn from the seed unless forced; forcing one changes
  nothing else in the video (each has its own rng stream).
  """
  if num_frames < 1:
    raise ValueError(f'num_frames must be >= 1, got {num_frames}')
  model = synthetic_objects.make_instance(category, instance, seed)
  rng = np.random.default_rng(np.random.SeedSequence(
      [seed, CATEGORIES.index(category), instance, video_index, 11]))
  size = model.scale
  diag = float(np.linalg.norm(size))
  yaw = rng.uniform(0, 2 * np.pi)
  obj = np.eye(4)
  obj[:3, :3] = [[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]
  obj[:3, 3] = (0.0, size[1] / 2, 0.0)
  fx = 1590.0 * rng.uniform(0.97, 1.03)
  intrinsics = np.array([[fx, 0, 960 + rng.uniform(-4, 4)],
                         [0, fx * rng.uniform(0.998, 1.002), 720 + rng.uniform(-4, 4)], [0, 0, 1]])
  # Camera path over normalised time: monotonic azimuth with varying speed, wobbling elevation,
  # radius, aim point and roll.
  tau = np.linspace(0.0, 1.0, num_frames)
  f, p, b = rng.uniform(0.5, 1.5), rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.6)
  sweep = rng.uniform(1.5, 3.5) * rng.choice([-1, 1])
  azimuth = rng.uniform(0, 2 * np.pi) + sweep * (tau + b * np.sin(2 * np.pi * f * tau + p) /
                                                 (2 * np.pi * f))
  elevation = np.clip(rng.uniform(0.3, 1.0) + _smooth(rng, tau, 0.25), 0.1, 1.3)
  radius0 = diag * rng.uniform(1.1, 2.0)
  radius = radius0 * (1 + _smooth(rng, tau, 0.25))
  aim = np.stack([_smooth(rng, tau, 0.16 * diag) for _ in range(3)], axis=-1)
  roll = _smooth(rng, tau, 0.12)
  centre = obj[:3, 3]
  cams = []
  for i in range(num_frames):
    d = np.array([np.cos(elevation[i]) * np.sin(azimuth[i]), np.sin(elevation[i]),
                  np.cos(elevation[i]) * np.cos(azimuth[i])])
    cams.append(_look_at(centre + radius[i] * d, centre + aim[i], roll[i]))
  key = [seed, CATEGORIES.index(category), instance, video_index]
  env, tint = synthetic_scene.environment(rng, np.random.default_rng(
      np.random.SeedSequence(key + [19])), size, radius0)
  textures = [np.clip(t * tint, 0, 255).astype(np.uint8) for t in model.textures]
  projection = geometry.projection_from_intrinsics(intrinsics)
  cams = np.stack(cams)
  occ_rng = np.random.default_rng(np.random.SeedSequence(key + [13]))
  drawn = occ_rng.random() < synthetic_scene.OCCLUDER_PROBABILITY
  placed = (synthetic_scene.place_occluders(occ_rng, model, obj, cams, projection, tint)
            if (drawn if occluders is None else occluders) else [])
  light_rng = np.random.default_rng(np.random.SeedSequence(key + [17]))
  drawn = light_rng.random() < synthetic_scene.LIGHT_DRIFT_PROBABILITY
  drift = bool(drawn if lighting_drift is None else lighting_drift)
  lighting = synthetic_scene.lighting_path(light_rng, env, num_frames, drift)
  env = synthetic_scene.frame_environment(env, lighting[0])
  return Video(video_id(category, video_index), category, model, textures, env, obj,
               intrinsics, projection, cams, lighting, drift, placed)


def scene_info(video: Video) -> dict:
  """The video's drawn scene choices, as listed in the manifest."""
  return {'occluders': [o.shape for o in video.occluders], 'lighting_drift': video.lighting_drift}


def world_to_camera(video: Video, frame: int) -> np.ndarray:
  """The exact inverse of the rigid camera-to-world pose (Objectron's `camera/view`)."""
  c2w = video.camera_to_world[frame]
  out = np.eye(4)
  out[:3, :3] = c2w[:3, :3].T
  out[:3, 3] = -c2w[:3, :3].T @ c2w[:3, 3]
  return out


def render_frame(video: Video, frame: int, *, with_object: bool = True,
                 with_occluders: bool = True) -> np.ndarray:
  """BGR uint8 [640, 480, 3] image of one frame (objects can be left out for tests and masks)."""
  view = world_to_camera(video, frame)
  objects = [synthetic_render.Placed(o.model, view @ o.object_to_world)
             for o in video.occluders] if with_occluders else []
  if with_object:
    objects.append(synthetic_render.Placed(video.model, view @ video.object_to_world,
                                           video.textures))
  env = synthetic_scene.frame_environment(video.env, video.lighting[frame])
  return synthetic_render.render(env, view, video.projection, objects)


def frame_record(video: Video, frame: int, image: bytes) -> FrameRecord:
  """The exact Objectron labels of one frame (all 3D values in that frame's camera frame)."""
  view = world_to_camera(video, frame)
  obj = view @ video.object_to_world
  scale = video.model.scale
  point_3d = geometry.box_keypoints(obj[:3, :3], obj[:3, 3], scale)
  point_2d = geometry.project_points(point_3d, video.projection)
  inside = ((point_2d[:, :2] >= 0) & (point_2d[:, :2] <= 1)).all(axis=1) & (point_2d[:, 2] > 0)
  bottom_centre = video.object_to_world @ np.array([0.0, -scale[1] / 2, 0.0, 1.0])
  return FrameRecord(
      video_id=video.video_id, frame_id=frame, timestamp_us=frame * FRAME_PERIOD_US,
      category=video.category, image=image, image_width=geometry.IMAGE_WIDTH,
      image_height=geometry.IMAGE_HEIGHT, point_2d=point_2d[None], point_3d=point_3d[None],
      rotation=obj[None, :3, :3], translation=obj[None, :3, 3], scale=scale[None].copy(),
      visibility=np.array([inside.mean()]), intrinsics=video.intrinsics.copy(),
      projection=video.projection.copy(), view=view, extrinsics=video.camera_to_world[frame].copy(),
      plane_center=(view @ bottom_centre)[:3], plane_normal=view[:3, 1].copy())


def encode_jpeg(image: np.ndarray) -> bytes:
  ok, buf = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
  if not ok:
    raise RuntimeError('JPEG encoding failed')
  return buf.tobytes()


def render_video(category: str, instance: int, video_index: int, *, num_frames: int,
                 seed: int) -> Iterator[FrameRecord]:
  """FrameRecords (JPEG q90 images) of video `video_id(category, video_index)`."""
  yield from video_records(make_video(category, instance, video_index, num_frames=num_frames,
                                     seed=seed))


def video_records(video: Video) -> Iterator[FrameRecord]:
  """FrameRecords (JPEG q90 images) of every frame of `video`."""
  for i in range(video.num_frames):
    yield frame_record(video, i, encode_jpeg(render_frame(video, i)))
