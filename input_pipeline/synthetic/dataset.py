"""The synthetic dataset on disk: every video rendered (in worker processes) and written in Objectron's
layouts with its index files and the SYNTHETIC.json manifest; `ensure_synthetic` caches one copy per
parameter set."""
from __future__ import annotations

import hashlib
import inspect
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from typing import Callable

import cv2
import numpy as np

from input_pipeline.formats import objectron_raw, objectron_records, splits
from input_pipeline.formats.frame_record import CATEGORIES
from input_pipeline.synthetic import videos as synthetic_videos

# 3: rooms (rugs, view-dependent backdrop); 4: one instance per video, val split, pose-sensitive shapes;
# 5: the validation carve keeps a training video in every class (manifest splits).
GENERATOR_VERSION = 5  # bump on any change to the output
MANIFEST = 'SYNTHETIC.json'
FORMATS = ('records', 'sequences', 'raw')


def _render_task(task):
  video_id, category, instance, video_index, num_frames, seed, sequences, raw_root = task
  video = synthetic_videos.make_video(category, instance, video_index, num_frames=num_frames, seed=seed)
  assert video.video_id == video_id, (video.video_id, video_id)
  recs = list(synthetic_videos.video_records(video))
  if raw_root:
    objectron_raw.write_raw_video(raw_root, recs)
  examples = [objectron_records.encode_example(r) for r in recs]
  info = dict(synthetic_videos.scene_info(video),
              out_of_view_frames=sum(int(r.visibility[0] < 1) for r in recs))
  return examples, (objectron_records.encode_sequence(recs) if sequences else None), info


def _init_worker():
  cv2.setNumThreads(1)


def video_plan(categories, videos_per_category: int, test_fraction: float, val_fraction: float,
               instances_per_category: int) -> dict[str, dict]:
  """video id -> {'category', 'index', 'instance', 'split'}, for every video of the dataset.

  The last round(videos_per_category * test_fraction) videos of each class are the official test split (at
  least one, and not all, when 0 < test_fraction < 1); validation videos are carved out of the others by
  `splits.assign_all`, as the ingest does with the same fraction. With instances_per_category = 0 every
  video shows its own object instance, so no test (or validation) object is ever seen in training; N > 0
  makes video v show instance v % N, shared across videos and splits (an explicit option, e.g. for
  re-identification across videos).
  """
  n_test = int(np.floor(videos_per_category * test_fraction + 0.5))
  if 0 < test_fraction < 1 and videos_per_category > 1:
    n_test = min(max(n_test, 1), videos_per_category - 1)
  plan, official = {}, {}
  for c in categories:
    for v in range(videos_per_category):
      vid = synthetic_videos.video_id(c, v)
      official[vid] = 'test' if v >= videos_per_category - n_test else 'train'
      plan[vid] = {'category': c, 'index': v,
                   'instance': v % instances_per_category if instances_per_category else v}
  for vid, split in splits.assign_all(official, val_fraction).items():
    plan[vid]['split'] = split
  return plan


def generate(root: str, *, videos_per_category: int = 6, frames_per_video: int = 40,
             instances_per_category: int = 0, test_fraction: float = 0.25, val_fraction: float = 0.0,
             seed: int = 0, num_shards: int = 2, num_workers: int = 1, formats=('records',),
             categories=CATEGORIES, progress: Callable[[str], None] | None = None) -> dict:
  """Writes the synthetic dataset under `root` (see the package docstring); returns a summary.

  Validation videos are official training videos (index files and shards of 'train', as Objectron has no
  validation split); the manifest names the split the ingest will carve with `val_fraction`.
  """
  formats = tuple(formats)
  bad = [f for f in formats if f not in FORMATS] + [c for c in categories if c not in CATEGORIES]
  if bad or not formats:
    raise ValueError(f'unknown formats/categories {bad or formats}; formats: {FORMATS}, '
                     f'categories: {CATEGORIES}')
  for name, value in (('videos_per_category', videos_per_category),
                      ('frames_per_video', frames_per_video),
                      ('num_shards', num_shards),
                      ('num_workers', num_workers)):
    if value < 1:
      raise ValueError(f'{name} must be >= 1, got {value}')
  if instances_per_category < 0:
    raise ValueError(f'instances_per_category must be >= 0 (0: one instance per video), got '
                     f'{instances_per_category}')
  if not 0 <= test_fraction <= 1:
    raise ValueError(f'test_fraction must be in [0, 1], got {test_fraction}')
  params = dict(videos_per_category=videos_per_category, frames_per_video=frames_per_video,
                instances_per_category=instances_per_category, test_fraction=test_fraction,
                val_fraction=val_fraction, seed=seed, num_shards=num_shards, formats=list(formats),
                categories=list(categories))
  plan = video_plan(categories, videos_per_category, test_fraction, val_fraction, instances_per_category)
  start = time.time()
  tasks = [(vid, p['category'], p['instance'], p['index'], frames_per_video, seed,
            'sequences' in formats, root if 'raw' in formats else None) for vid, p in plan.items()]
  pool = None
  if num_workers > 1:
    pool = multiprocessing.get_context('spawn').Pool(num_workers, initializer=_init_worker)
  results = pool.imap(_render_task, tasks) if pool else map(_render_task, tasks)
  summary = {'root': root, 'version': GENERATOR_VERSION, 'params': params, 'categories': {}}
  videos = {}
  try:
    for c in categories:
      rendered = {vid: next(results) for vid, p in plan.items() if p['category'] == c}
      summary['categories'][c] = {}
      for split in objectron_records.SPLITS:  # the official splits; validation videos are in 'train'
        video_ids = [vid for vid in rendered if (plan[vid]['split'] == 'test') == (split == 'test')]
        examples = [e for vid in video_ids for e in rendered[vid][0]]
        order = np.random.default_rng(np.random.SeedSequence(
            [seed, CATEGORIES.index(c), split == 'test', 3])).permutation(len(examples))
        info = {'videos': len(video_ids), 'frames': len(examples), 'video_ids': video_ids,
                'index': objectron_records.write_index(root, c, split, video_ids)}
        info['records'] = objectron_records.write_shards(
            os.path.join(root, 'v1', 'records_shuffled', c, f'{c}_{split}'),
            (examples[k] for k in order), num_shards) if 'records' in formats else []
        info['sequences'] = objectron_records.write_shards(
            os.path.join(root, 'v1', 'sequences', c, f'{c}_{split}'),
            (rendered[vid][1] for vid in video_ids), num_shards) if 'sequences' in formats else []
        info['raw'] = ([objectron_raw.raw_paths(root, vid)[0] for vid in video_ids]
                       if 'raw' in formats else [])
        summary['categories'][c][split] = info
      for vid, (_, _, scene) in rendered.items():
        p = plan[vid]
        videos[vid] = dict(scene, split=p['split'], category=c,
                           instance=f'{c}/instance-{p["instance"]}')
      if progress:
        progress(f'{c}: {len(rendered)} videos x {frames_per_video} frames '
                 f'({time.time() - start:.0f}s)')
  finally:
    if pool:
      pool.terminate()
  summary['num_frames'] = len(plan) * frames_per_video
  summary['seconds'] = time.time() - start
  manifest = {'generator': 'input_pipeline.synthetic', 'version': GENERATOR_VERSION,
              'params': params, 'num_frames': summary['num_frames'], 'videos': videos}
  summary['manifest'] = os.path.join(root, MANIFEST)
  with open(summary['manifest'], 'w') as fh:
    json.dump(manifest, fh, indent=1, sort_keys=True)
  return summary


def read_manifest(root: str) -> dict:
  """The SYNTHETIC.json of a generated root."""
  path = os.path.join(root, MANIFEST)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {root} is not a synthetic dataset root')
  with open(path) as fh:
    return json.load(fh)


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
    if not os.path.exists(os.path.join(root, MANIFEST)):
      return False
    got = read_manifest(root)
    if {'version': got.get('version'), 'params': got.get('params')} != wanted:
      raise ValueError(f'{root}/{MANIFEST}: manifest does not match the requested parameters {wanted}')
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
