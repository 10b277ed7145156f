"""Objectron (or the synthetic default) -> ArrayRecord frame store, once; and the ingest CLI.

  python -m input_pipeline.ingest --format=records --input=DIR --output=DIR [--subsample=5]

The official train/test split comes from `index/<class>_annotations_{train,test}`; an optional validation
split is carved from the training videos by a seeded hash of the video id (stable across runs and readers).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from typing import Callable, Iterator

from absl import logging

from input_pipeline import frame_store, objectron_records
from input_pipeline.frame_record import CATEGORIES, FrameRecord

FORMATS = ('records', 'sequences')


def _shards(root: str, layout: str, category: str, split: str) -> list[str]:
  return sorted(glob.glob(os.path.join(root, 'v1', layout, category, f'{category}_{split}-*')))


def read_frames(root: str, fmt: str, categories=CATEGORIES) -> Iterator[FrameRecord]:
  """Every annotated frame under an Objectron-layout `root`, in the given on-disk format."""
  if fmt not in FORMATS:
    raise ValueError(f'data.format={fmt!r}: expected one of {FORMATS}')
  layout = {'records': 'records_shuffled', 'sequences': 'sequences'}[fmt]
  found = False
  for category in categories:
    for split in objectron_records.SPLITS:
      paths = _shards(root, layout, category, split)
      found |= bool(paths)
      if not paths:
        continue
      if fmt == 'records':
        yield from objectron_records.read_examples(paths)
      else:
        for frames in objectron_records.read_sequences(paths):
          yield from frames
  if not found:
    raise FileNotFoundError(f'no {fmt} shards under {os.path.join(root, "v1", layout)}/<class>/')


def split_function(root: str, val_fraction: float = 0.0, seed: int = 0,
                   categories=CATEGORIES) -> Callable[[str], str]:
  """video id -> 'train' | 'val' | 'test', from the index files (+ a hashed validation carve-out)."""
  split_of = {}
  for category in categories:
    for split in objectron_records.SPLITS:
      path = objectron_records.index_path(root, category, split)
      if os.path.exists(path):
        split_of.update({v: split for v in objectron_records.read_index(root, category, split)})
  if not split_of:
    raise FileNotFoundError(f'no index files under {os.path.join(root, "index")}')

  def split_fn(video_id: str) -> str:
    if video_id not in split_of:
      raise KeyError(f'video {video_id!r} is in the records but in no index/<class>_annotations_* file')
    split = split_of[video_id]
    if split == 'train' and val_fraction > 0:
      h = int.from_bytes(hashlib.sha256(f'{seed}:{video_id}'.encode()).digest()[:8], 'little')
      if h / 2**64 < val_fraction:
        return 'val'
    return split

  return split_fn


def ingest_dataset(root: str, output: str, *, fmt: str = 'records', subsample: int = 5,
                   image_scale: float = 1.0, val_fraction: float = 0.0, seed: int = 0,
                   skip_bad: bool = False) -> frame_store.StoreInfo:
  """Builds the store in `output` (via a temporary sibling renamed at the end: never half-written)."""
  output = os.path.abspath(os.path.expanduser(output))
  if os.path.exists(os.path.join(output, 'index.json')):
    raise FileExistsError(f'{output} already holds a frame store')
  tmp = output + '.partial'
  shutil.rmtree(tmp, ignore_errors=True)
  info = frame_store.ingest(read_frames(root, fmt), tmp, split_fn=split_function(root, val_fraction, seed),
                            subsample=subsample, image_scale=image_scale, skip_bad=skip_bad)
  os.makedirs(os.path.dirname(output), exist_ok=True)
  shutil.rmtree(output, ignore_errors=True)
  os.replace(tmp, output)
  return info


def _store_key(root: str, data) -> str:
  key = dict(root=os.path.abspath(root), format=data.format, subsample=data.subsample,
             image_scale=data.image_scale, val_fraction=data.val_fraction, on_bad=data.on_bad_record,
             store_version=1)
  return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def prepare_store(data) -> str:
  """config.data -> path of a ready frame store: generates the synthetic set and ingests as needed."""
  if data.on_bad_record not in ('raise', 'skip'):
    raise ValueError(f'data.on_bad_record={data.on_bad_record!r}: expected raise or skip')
  cache = os.path.abspath(os.path.expanduser(data.cache_dir))
  root = data.root
  if not root:
    from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
    logging.info('data.root unset: generating (or reusing) the synthetic Objectron-format set')
    root = synthetic.ensure_synthetic(os.path.join(cache, 'synthetic'), progress=logging.info,
                                      **data.synthetic.to_dict())
    logging.info('data.root unset: using the synthetic Objectron-format set at %s', root)
  store = data.store_dir or os.path.join(cache, 'stores', _store_key(root, data))
  store = os.path.abspath(os.path.expanduser(store))
  if os.path.exists(os.path.join(store, 'index.json')):
    logging.info('frame store: %s (reused)', store)
    return store
  logging.info('ingesting %s (%s) into the frame store %s', root, data.format, store)
  info = ingest_dataset(root, store, fmt=data.format, subsample=data.subsample,
                        image_scale=data.image_scale, val_fraction=data.val_fraction,
                        skip_bad=data.on_bad_record == 'skip')
  if info.num_skipped:
    logging.warning('skipped %d bad frames while ingesting (data.on_bad_record=skip): %s',
                    info.num_skipped, info.skipped)
  logging.info('frame store ready: %s', {k: v['num_frames'] for k, v in info.splits.items()})
  return store


def query_split(store: frame_store.FrameStore) -> str:
  """The held-out split used for queries: 'val' when carved out, else the official 'test'."""
  for split in ('val', 'test'):
    if split in store.splits and store.num_frames(split):
      return split
  raise ValueError(f'frame store {store.path} has no val or test frames')


def main(argv):
  del argv
  info = ingest_dataset(FLAGS.input, FLAGS.output, fmt=FLAGS.format, subsample=FLAGS.subsample,
                        image_scale=FLAGS.image_scale, val_fraction=FLAGS.val_fraction,
                        skip_bad=FLAGS.on_bad_record == 'skip')
  print(json.dumps({'store': info.path, 'splits': info.splits, 'seen': info.num_seen, 'kept': info.num_kept,
                    'skipped': info.num_skipped}, indent=1))


if __name__ == '__main__':
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  FLAGS = flags.FLAGS
  flags.DEFINE_enum('format', 'records', list(FORMATS), 'Objectron layout to read.')
  flags.DEFINE_string('input', None, 'Objectron root (holding v1/ and index/).', required=True)
  flags.DEFINE_string('output', None, 'Frame store directory to create.', required=True)
  flags.DEFINE_integer('subsample', 5, 'Keep 1 frame in this many.')
  flags.DEFINE_float('image_scale', 1.0, 'Downscale frames by this factor at ingest.')
  flags.DEFINE_float('val_fraction', 0.0, 'Training videos carved out as a validation split.')
  flags.DEFINE_enum('on_bad_record', 'raise', ['raise', 'skip'], 'Raise on bad frames or count and skip.')
  app.run(main)
