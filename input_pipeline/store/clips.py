"""Action clips (UCF101 raw layout, TFDS `ucf101`, or the synthetic action set) -> the ArrayRecord frame store.

The store is the one of frame_store.py (same shards, index.json and msgpack records), so the Grain pair
pipeline (input_pipeline/loader) samples same / nearby / distant pairs from it unchanged. A clip frame has
no object box: its record holds only the image (centre-cropped to a square and resized to
`frame_size` at ingest, as the reference does for UCF101), video_id, frame_id, timestamp_us, category
(0-based action label, an index into the index's 'categories': the action class names) and
instance_id 0, and its crop window is the whole image (`crops.frame_window`).

Splits: the official train/test list of `split` (1, 2 or 3); a validation split is carved from the
training clips by a seeded hash of the clip's group (`<Class>/gXX`, so one actor and scene never sits on
both sides; none for TFDS, which keeps no file names), for the online monitor only.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Iterator

import cv2
from absl import logging

from input_pipeline.formats import paths
from input_pipeline.formats import splits
from input_pipeline.formats import ucf101
from input_pipeline.store import frame_store
from input_pipeline.store import ingest
from input_pipeline.store import writer as store_writer

SOURCES = ('raw', 'tfds')


def _clips(source: str, root: str | None, subset: str, split: int, tfds_data_dir: str | None
           ) -> Iterator[ucf101.Clip]:
  if source == 'raw':
    return ucf101.raw_clips(root, subset, split)
  if source == 'tfds':
    return ucf101.tfds_clips(subset, split, tfds_data_dir)
  raise ValueError(f'data.ucf101.source={source!r}: expected one of {SOURCES}')


def _group_key(video_id: str, group: int) -> str:
  """'<Class>/gXX': the unit of the validation carve (one actor and scene)."""
  return f'{video_id.split("/")[0]}/g{group:02d}'


def _group_splits(root: str, split: int, val_fraction: float, seed: int) -> dict[str, str]:
  """group key -> 'train' | 'val' | 'test' for the raw layout's lists (splits.assign_all: a seeded hash
  of the group, at least one training group kept per class)."""
  official = {_group_key(ref.video_id, ref.group): subset for subset in ucf101.SUBSETS
              for ref in ucf101.read_split_list(root, subset, split)}
  return splits.assign_all(official, val_fraction, seed)


def ingest_clips(output: str, *, source: str = 'raw', root: str | None = None, split: int = 1,
                 frame_size: int = 112, subsample: int = 1, val_fraction: float = 0.0, seed: int = 0,
                 tfds_data_dir: str | None = None, jpeg_quality: int = 90, records_per_shard: int = 4000,
                 progress=None) -> frame_store.StoreInfo:
  """Writes the clips of one official split into a frame store at `output` (via `<output>.partial`).

  Every `subsample`-th frame of a clip is kept (frame 0 first). A missing or undecodable clip raises an
  error naming its file; an interrupted ingest starts over.
  """
  if subsample < 1 or frame_size < 8:
    raise ValueError(f'clip ingest: subsample={subsample} (>= 1), frame_size={frame_size} (>= 8)')
  if source == 'raw' and not root:
    raise ValueError('data.ucf101.source=raw needs data.root: a folder with UCF-101/ and ucfTrainTestlist/')
  classes = ucf101.read_class_index(root) if source == 'raw' else ucf101.tfds_classes(split, tfds_data_dir)
  # TFDS keeps no file names, hence no groups: no validation carve there (the online monitor is off).
  group_split = _group_splits(root, split, val_fraction, seed) if source == 'raw' else {}
  partial = output + '.partial'
  shutil.rmtree(partial, ignore_errors=True)
  writers, videos = {}, {}
  num_seen = 0
  for subset in ucf101.SUBSETS:
    for n, clip in enumerate(_clips(source, root, subset, split, tfds_data_dir)):
      part = group_split.get(_group_key(clip.video_id, clip.group), subset)
      if part not in writers:
        # The frame store's own shard writer (the rest of writer.py is about Objectron records).
        writers[part] = store_writer._SplitWriter(  # pylint: disable=protected-access
            os.path.join(partial, part), records_per_shard)
      frame_ids, records = [], []
      for i in range(0, len(clip.frames), subsample):
        ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(ucf101.centre_crop(clip.frames[i], frame_size),
                                                     cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
          raise frame_store.BadFrameError(f'clip {clip.video_id} frame {i}: JPEG encoding failed')
        records.append(writers[part].write(frame_store.encode({
            'version': frame_store.FORMAT_VERSION, 'video_id': clip.video_id, 'frame_id': i,
            'timestamp_us': int(round(i * 1e6 / ucf101.FPS)), 'category': int(clip.label), 'instance_id': 0,
            'image': jpeg.tobytes(), 'image_width': frame_size, 'image_height': frame_size})))
        frame_ids.append(i)
      num_seen += len(clip.frames)
      if clip.video_id in videos.setdefault(part, {}):
        raise ValueError(f'clip {clip.video_id} is listed twice in the {subset} list of split {split}')
      videos[part][clip.video_id] = {'video_id': clip.video_id, 'category': int(clip.label), 'instance_id': 0,
                                     'frame_ids': frame_ids, 'records': records}
      if progress and n % 100 == 0:
        progress(f'ingest {subset}: {n} clips')
  if 'train' not in writers or 'test' not in writers:
    missing = 'train' if 'train' not in writers else 'test'
    raise ValueError(f'UCF101 split {split} ({source}) has no {missing} clips')
  index = {'format': frame_store.FORMAT_NAME, 'version': frame_store.FORMAT_VERSION, 'kind': 'clips',
           'categories': list(classes),
           'config': {'source': source, 'root': root, 'split': split, 'frame_size': frame_size,
                      'subsample': subsample, 'val_fraction': val_fraction, 'seed': seed},
           'num_seen': num_seen, 'num_kept': sum(w.count for w in writers.values()), 'skipped': {},
           'dropped': {}, 'splits': {}}
  for part in sorted(writers):
    index['splits'][part] = {'shards': writers[part].finish(), 'num_frames': writers[part].count,
                             'videos': [videos[part][v] for v in sorted(videos[part])]}
  with open(os.path.join(partial, frame_store.SKIP_FILE), 'w'):
    pass
  with open(os.path.join(partial, frame_store.INDEX_FILE), 'w') as f:
    json.dump(index, f)  # written last: the store is complete
  shutil.rmtree(output, ignore_errors=True)
  os.replace(partial, output)
  return frame_store.StoreInfo.read(output)


def _store_key(root: str | None, data) -> str:
  u = data.ucf101
  key = dict(root=root and os.path.abspath(root), source=u.source, split=u.split, frame_size=u.frame_size,
             subsample=u.subsample, val_fraction=data.val_fraction, tfds_data_dir=u.tfds_data_dir,
             store_version=1)
  return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def prepare_store(data) -> str:
  """config.data (data.dataset='ucf101') -> path of a ready clip store, generated and ingested as needed.

  data.root unset (and data.ucf101.source='raw'): the synthetic action set (input_pipeline/synthetic/
  actions.py) is generated once into data.cache_dir. One process prepares first (ingest.prepare_once).
  """
  return ingest.prepare_once(_prepare_store, data, 'siampose_jax.prepare_clip_store')


def _prepare_store(data) -> str:
  u = data.ucf101
  cache = os.path.abspath(os.path.expanduser(data.cache_dir))
  root = data.root
  if not root and u.source == 'raw':
    from input_pipeline.synthetic import actions  # pylint: disable=g-import-not-at-top
    params = u.synthetic.to_dict()
    key = hashlib.sha256(json.dumps(dict(params, version=actions.GENERATOR_VERSION), sort_keys=True).encode()
                         ).hexdigest()[:12]  # a new generator version gets a new folder, hence a new store
    root = actions.ensure_actions(os.path.join(cache, 'synthetic_actions', key), progress=logging.info, **params)
    logging.info('data.root unset: using the synthetic action set (UCF101 layout) at %s', root)
  store = str(paths.resolve(data.store_dir or os.path.join(cache, 'stores', 'ucf101_' + _store_key(root, data))))
  if (paths.resolve(store) / frame_store.INDEX_FILE).exists():
    logging.info('clip store: %s (reused)', store)
    return store
  if not paths.is_local(store):
    raise ValueError(f'data.store_dir={store}: a clip store is written locally (gs:// is for Objectron stores)')
  logging.info('ingesting UCF101 split %d (%s: %s) into the clip store %s', u.split, u.source, root or 'TFDS',
               store)
  info = ingest_clips(store, source=u.source, root=root, split=u.split, frame_size=u.frame_size,
                      subsample=u.subsample, val_fraction=data.val_fraction, tfds_data_dir=u.tfds_data_dir,
                      progress=logging.info)
  logging.info('clip store %s: %d frames kept of %d; per split %s', store, info.num_kept, info.num_seen,
               {k: v['num_frames'] for k, v in info.splits.items()})
  return store
