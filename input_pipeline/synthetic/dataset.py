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

from input_pipeline.formats import objectron_raw, objectron_records
from input_pipeline.formats.frame_record import CATEGORIES
from input_pipeline.synthetic import videos as synthetic_videos

GENERATOR_VERSION = 3  # 3: rooms (rugs, view-dependent backdrop); bump on any change to the output
MANIFEST = 'SYNTHETIC.json'
FORMATS = ('records', 'sequences', 'raw')


def _render_task(task):
  category, instance, video_index, num_frames, seed, sequences, raw_root = task
  video = synthetic_videos.make_video(category, instance, video_index, num_frames=num_frames, seed=seed)
  recs = list(synthetic_videos.video_records(video))
  if raw_root:
    objectron_raw.write_raw_video(raw_root, recs)
  examples = [objectron_records.encode_example(r) for r in recs]
  info = dict(synthetic_videos.scene_info(video), out_of_view_frames=sum(int(r.visibility[0] < 1) for r in recs))
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
