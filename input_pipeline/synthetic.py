"""Deterministic synthetic Objectron: the embedded default dataset (shared/DESIGN.md section 3).

Each video shows one procedural object instance (input_pipeline/synthetic_objects.py) standing on a
textured ground plane (world y up, plane y = 0), filmed by a camera that orbits it with smoothly
varying speed, radius, elevation, aim and roll, under a per-video light, in a per-video room (a floor
with rugs and a backdrop of walls whose look changes with the viewing direction, muted so that it
varies less between videos than the objects do; input_pipeline/synthetic_scene.py). About 30% of
videos also show one or two unannotated distractors that hide part of the object in some frames,
and about 30% have light that drifts along the video (input_pipeline/synthetic_scene.py); the
manifest lists these choices per video. Frames are
rendered with input_pipeline/synthetic_render.py through exactly the camera model of
siampose_jax.geometry, so every label is exact, and written in Objectron's per-frame tf.Example
shard layout (optionally also per-video tf.SequenceExample shards) with its index files:

  root/v1/records_shuffled/<class>/<class>_{train,test}-0000i-of-0000n
  root/v1/sequences/<class>/<class>_{train,test}-0000i-of-0000n   (formats includes 'sequences')
  root/{annotations,videos}/<class>/batch-i/j...                  (formats includes 'raw', see
                                                                   input_pipeline/objectron_raw.py)
  root/index/<class>_annotations_{train,test}
  root/SYNTHETIC.json                     (manifest: version, parameters, per-video scene choices)

Video `v` of a class shows instance `v % instances_per_category`; the last
round(videos_per_category * test_fraction) videos of each class (at least one, and not all, when
0 < test_fraction < 1) are the test split, so test instances also appear in training videos (as
needed for re-identification across videos).

  python -m input_pipeline.synthetic --output=DIR [--videos_per_category=6 ...] [--preview=a.png]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Iterator

import cv2
import numpy as np

from input_pipeline import objectron_raw
from input_pipeline import objectron_records
from input_pipeline import synthetic_objects
from input_pipeline import synthetic_render
from input_pipeline import synthetic_scene
from input_pipeline.frame_record import CATEGORIES, FrameRecord
from siampose_jax import geometry

GENERATOR_VERSION = 3  # 3: rooms (rugs, view-dependent backdrop); bump on any change to the output
MANIFEST = 'SYNTHETIC.json'
FRAME_PERIOD_US = 33333  # 30 fps
JPEG_QUALITY = 90
FORMATS = ('records', 'sequences', 'raw')


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
  return Video(f'{category}/batch-{instance}/{video_index}', category, model, textures, env, obj,
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
  """FrameRecords (JPEG q90 images) of video `category/batch-<instance>/<video_index>`."""
  yield from video_records(make_video(category, instance, video_index, num_frames=num_frames,
                                     seed=seed))


def video_records(video: Video) -> Iterator[FrameRecord]:
  """FrameRecords (JPEG q90 images) of every frame of `video`."""
  for i in range(video.num_frames):
    yield frame_record(video, i, encode_jpeg(render_frame(video, i)))


# ---------------------------------------------------------------- dataset


def _render_task(task):
  category, instance, video_index, num_frames, seed, sequences, raw_root = task
  video = make_video(category, instance, video_index, num_frames=num_frames, seed=seed)
  recs = list(video_records(video))
  if raw_root:
    objectron_raw.write_raw_video(raw_root, recs)
  examples = [objectron_records.encode_example(r) for r in recs]
  info = dict(scene_info(video), out_of_view_frames=sum(int(r.visibility[0] < 1) for r in recs))
  return examples, (objectron_records.encode_sequence(recs) if sequences else None), info


def _init_worker():
  cv2.setNumThreads(1)


def _split_videos(videos_per_category, test_fraction):
  """The last videos go to test; both splits are non-empty if 0 < test_fraction < 1 and V >= 2."""
  n_test = int(np.floor(videos_per_category * test_fraction + 0.5))
  if 0 < test_fraction < 1 and videos_per_category > 1:
    n_test = min(max(n_test, 1), videos_per_category - 1)
  n_train = videos_per_category - n_test
  return {'train': list(range(n_train)), 'test': list(range(n_train, videos_per_category))}


def generate(root: str, *, videos_per_category: int = 6, frames_per_video: int = 40,
             instances_per_category: int = 4, test_fraction: float = 0.25, seed: int = 0,
             num_shards: int = 2, num_workers: int = 1, formats=('records',),
             categories=CATEGORIES, progress: Callable[[str], None] | None = None) -> dict:
  """Writes the synthetic dataset under `root` (see the module docstring); returns a summary."""
  formats = tuple(formats)
  bad = [f for f in formats if f not in FORMATS] + [c for c in categories if c not in CATEGORIES]
  if bad or not formats:
    raise ValueError(f'unknown formats/categories {bad or formats}; formats: {FORMATS}, '
                     f'categories: {CATEGORIES}')
  for name, value in (('videos_per_category', videos_per_category),
                      ('frames_per_video', frames_per_video),
                      ('instances_per_category', instances_per_category),
                      ('num_shards', num_shards),
                      ('num_workers', num_workers)):
    if value < 1:
      raise ValueError(f'{name} must be >= 1, got {value}')
  if not 0 <= test_fraction <= 1:
    raise ValueError(f'test_fraction must be in [0, 1], got {test_fraction}')
  params = dict(videos_per_category=videos_per_category, frames_per_video=frames_per_video,
                instances_per_category=instances_per_category, test_fraction=test_fraction,
                seed=seed, num_shards=num_shards, formats=list(formats),
                categories=list(categories))
  splits = _split_videos(videos_per_category, test_fraction)
  start = time.time()
  tasks = [(c, v % instances_per_category, v, frames_per_video, seed, 'sequences' in formats,
            root if 'raw' in formats else None)
           for c in categories for v in range(videos_per_category)]
  pool = None
  if num_workers > 1:
    pool = multiprocessing.get_context('spawn').Pool(num_workers, initializer=_init_worker)
  results = pool.imap(_render_task, tasks) if pool else map(_render_task, tasks)
  summary = {'root': root, 'version': GENERATOR_VERSION, 'params': params, 'categories': {}}
  try:
    for c in categories:
      per_video = [next(results) for _ in range(videos_per_category)]
      summary['categories'][c] = {}
      for split, vids in splits.items():
        video_ids = [f'{c}/batch-{v % instances_per_category}/{v}' for v in vids]
        examples = [e for v in vids for e in per_video[v][0]]
        order = np.random.default_rng(np.random.SeedSequence(
            [seed, CATEGORIES.index(c), split == 'test', 3])).permutation(len(examples))
        info = {'videos': len(vids), 'frames': len(examples), 'video_ids': video_ids,
                'index': objectron_records.write_index(root, c, split, video_ids),
                'scenes': {vid: per_video[v][2] for vid, v in zip(video_ids, vids)}}
        info['records'] = objectron_records.write_shards(
            os.path.join(root, 'v1', 'records_shuffled', c, f'{c}_{split}'),
            (examples[k] for k in order), num_shards) if 'records' in formats else []
        info['sequences'] = objectron_records.write_shards(
            os.path.join(root, 'v1', 'sequences', c, f'{c}_{split}'),
            (per_video[v][1] for v in vids), num_shards) if 'sequences' in formats else []
        info['raw'] = ([objectron_raw.raw_paths(root, vid)[0] for vid in video_ids]
                       if 'raw' in formats else [])
        summary['categories'][c][split] = info
      if progress:
        progress(f'{c}: {videos_per_category} videos x {frames_per_video} frames '
                 f'({time.time() - start:.0f}s)')
  finally:
    if pool:
      pool.terminate()
  summary['num_frames'] = len(categories) * videos_per_category * frames_per_video
  summary['seconds'] = time.time() - start
  manifest = {'generator': 'input_pipeline.synthetic', 'version': GENERATOR_VERSION,
              'params': params, 'num_frames': summary['num_frames'],
              'scenes': {vid: scene for splits in summary['categories'].values()
                         for info in splits.values() for vid, scene in info['scenes'].items()}}
  summary['manifest'] = os.path.join(root, MANIFEST)
  with open(summary['manifest'], 'w') as fh:
    json.dump(manifest, fh, indent=1, sort_keys=True)
  return summary


_GENERATE_SIGNATURE = inspect.signature(generate)


def _canonical_params(params: dict) -> dict:
  """generate()'s result-determining parameters with defaults filled in, JSON-ready."""
  bound = _GENERATE_SIGNATURE.bind('root', **params)
  bound.apply_defaults()
  out = dict(bound.arguments)
  for key in ('root', 'num_workers', 'progress'):
    out.pop(key)
  out['formats'], out['categories'] = list(out['formats']), list(out['categories'])
  return out


def ensure_synthetic(cache_dir: str, **params) -> str:
  """Root of the synthetic dataset for these generate() parameters, generated once per cache.

  The root is `cache_dir/synthetic-<hash of version and parameters>`; it is built in a temporary
  directory and renamed into place, so a root that exists is complete. `num_workers` and `progress`
  are passed on but do not change the data.
  """
  wanted = {'version': GENERATOR_VERSION, 'params': _canonical_params(params)}
  key = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]
  root = os.path.join(cache_dir, f'synthetic-{key}')

  def matches():
    path = os.path.join(root, MANIFEST)
    if not os.path.exists(path):
      return False
    with open(path) as fh:
      got = json.load(fh)
    if {'version': got.get('version'), 'params': got.get('params')} != wanted:
      raise ValueError(f'{path}: manifest does not match the requested parameters {wanted}')
    return True

  if os.path.isdir(root) and matches():
    return root
  os.makedirs(cache_dir, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix='.tmp-synthetic-', dir=cache_dir)
  try:
    generate(tmp, **params)
    try:
      os.rename(tmp, root)
    except OSError:
      if not matches():  # neither another writer's finished copy nor ours
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  if not matches():
    raise ValueError(f'{root}: generated dataset has no manifest')
  return root


# ---------------------------------------------------------------- command line


def draw_box(image: np.ndarray, point_2d: np.ndarray, colour=(0, 255, 0)) -> np.ndarray:
  """Draws the 12 edges and centre of a projected box (`point_2d` [9, 3]) on a BGR image copy."""
  out = image.copy()
  h, w = out.shape[:2]
  px = [(int(round(u * w - 0.5)), int(round(v * h - 0.5))) for u, v, _ in point_2d]
  for a, b in geometry.EDGES:
    cv2.line(out, px[a], px[b], colour, 1, cv2.LINE_AA)
  cv2.circle(out, px[0], 3, (0, 0, 255), -1)
  return out


def contact_sheet(seed: int = 0, frames=(0, 20, 39), num_frames: int = 40, scale: float = 0.4,
                  search: int = 12):
  """One row per class, boxes drawn; BGR uint8.

  Columns: `frames` of video 0 (instance 0), the first frame of video 4 (instance 0 again, in
  another scene) and of video 1 (instance 1); then the most occluded frame of the first video with
  distractors, and the first and last frames of the first with drifting light (among the first
  `search` videos; black if none).
  """
  def tile(video, i):
    image = draw_box(render_frame(video, i), frame_record(video, i, b'').point_2d[0])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)

  def first(c, has):
    return next((v for v in (make_video(c, k % 4, k, num_frames=num_frames, seed=seed)
                             for k in range(search)) if has(v)), None)

  blank = np.zeros((round(geometry.IMAGE_HEIGHT * scale), round(geometry.IMAGE_WIDTH * scale), 3),
                   np.uint8)
  rows = []
  for c in CATEGORIES:
    tiles = []
    for inst, vid in ((0, 0), (0, 4), (1, 1)):
      video = make_video(c, inst, vid, num_frames=num_frames, seed=seed)
      tiles += [tile(video, i) for i in (frames if vid == 0 else frames[:1])]
    occluded = first(c, lambda v: v.occluders)
    tiles.append(tile(occluded, occluded.occluders[0].occluded_frame) if occluded else blank)
    drifting = first(c, lambda v: v.lighting_drift)
    tiles += [tile(drifting, i) for i in (0, num_frames - 1)] if drifting else [blank, blank]
    rows.append(np.concatenate(tiles, axis=1))
  return np.concatenate(rows, axis=0)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--output', help='dataset root to write')
  parser.add_argument('--videos_per_category', type=int, default=6)
  parser.add_argument('--frames_per_video', type=int, default=40)
  parser.add_argument('--instances_per_category', type=int, default=4)
  parser.add_argument('--test_fraction', type=float, default=0.25)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--num_shards', type=int, default=2)
  parser.add_argument('--num_workers', type=int, default=1)
  parser.add_argument('--formats', default='records', help='comma-separated: records,sequences,raw')
  parser.add_argument('--preview', help='write a PNG contact sheet of a few frames with boxes')
  args = parser.parse_args(argv)
  if not args.output and not args.preview:
    parser.error('give --output and/or --preview')
  if args.preview:
    cv2.imwrite(args.preview, contact_sheet(args.seed))
    print(f'preview: {args.preview}')
  if args.output:
    summary = generate(args.output, videos_per_category=args.videos_per_category,
                       frames_per_video=args.frames_per_video,
                       instances_per_category=args.instances_per_category,
                       test_fraction=args.test_fraction, seed=args.seed,
                       num_shards=args.num_shards, num_workers=args.num_workers,
                       formats=tuple(args.formats.split(',')), progress=print)
    for c, splits in summary['categories'].items():
      for split, info in splits.items():
        print(f'{c} {split}: {info["videos"]} videos, {info["frames"]} frames -> '
              f'{", ".join(info["records"] + info["sequences"] + info["raw"])}; index {info["index"]}')
    print(f'{summary["num_frames"]} frames in {summary["seconds"]:.1f}s; manifest '
          f'{summary["manifest"]}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
