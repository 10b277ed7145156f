"""Writing a frame store: validation, instance selection, skip/raise on bad data, resumable ingest.

The store format is described in frame_store.py. A frame is kept iff `frame_id % subsample == 0`: a
per-record rule, so ingest streams and the kept set does not depend on record order (Objectron frame
ids count from 0, so this is every n-th frame).

Resuming: `ingest_progress.jsonl` (see ingest_journal) in the output directory records each committed
source file and the shards it filled, so an interrupted ingest restarts after the last committed
source. Shards are closed at every source boundary, hence may hold fewer than records_per_shard
records; an interrupted and an uninterrupted ingest of the same sources give the same store.

Skip reasons (StoreInfo.skip_counts, index.json 'skipped'): checksum, truncated_file, bad_record,
missing_keypoints, nan_keypoints, zero_area_box, bad_image, missing_file, missing_video. Dropped on
purpose ('dropped'): low_visibility.
"""
from __future__ import annotations

import collections
import json
import os
import re
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from input_pipeline.formats.frame_record import CATEGORIES, FrameRecord
from input_pipeline.store.frame_store import (FORMAT_NAME, FORMAT_VERSION, FRAME_ARRAYS, INDEX_FILE,
                                        INSTANCE_ARRAYS, SKIP_FILE, BadFrameError, Skip, StoreInfo,
                                        decode_jpeg, encode)
from input_pipeline.formats.tfrecord import RecordError
from input_pipeline.store.journal import Journal

PROGRESS_FILE = 'ingest_progress.jsonl'
INSTANCE_MODES = ('first', 'all')
ON_BAD_RECORD = ('raise', 'skip')
_SPLIT_NAME = re.compile(r'^[A-Za-z0-9_\-]+$')
_TMP_SHARD = re.compile(r'^frames-\d{5}\.array_record\.tmp$')


def _check_instance(rec: FrameRecord, i: int, where: str) -> None:
  """Raises BadFrameError (with a skip reason) unless instance i has 9 finite keypoints and a 2D box."""
  if rec.category not in CATEGORIES:
    raise BadFrameError(f'{where}: unknown category {rec.category!r}')
  p2 = np.asarray(rec.point_2d, np.float64)
  p3 = np.asarray(rec.point_3d, np.float64)
  if p2.ndim != 3 or p2.shape[0] <= i or p2.shape[1:] != (9, 3) or p3.shape != p2.shape:
    raise BadFrameError(f'{where}: no instance {i} with 9 keypoints (point_2d {p2.shape}, '
                        f'point_3d {p3.shape})', 'missing_keypoints')
  if not (np.isfinite(p2[i]).all() and np.isfinite(p3[i]).all()):
    raise BadFrameError(f'{where}: instance {i} has NaN/inf keypoints', 'nan_keypoints')
  extent = p2[i, :, :2].max(0) - p2[i, :, :2].min(0)
  if extent[0] * rec.image_width <= 0 or extent[1] * rec.image_height <= 0:
    raise BadFrameError(f'{where}: instance {i} has a zero-area 2D box', 'zero_area_box')


def _image_fields(rec: FrameRecord, where: str, *, image_scale: float,
                  jpeg_quality: int) -> dict[str, Any]:
  """The frame's image re-encoded for the store (checked to decode at the recorded size)."""
  try:
    image = decode_jpeg(rec.image, where)
  except BadFrameError as e:
    raise BadFrameError(str(e), 'bad_image') from None
  if image.shape[:2] != (rec.image_height, rec.image_width):
    raise BadFrameError(f'{where}: image is {image.shape[1]}x{image.shape[0]}, record says '
                        f'{rec.image_width}x{rec.image_height}', 'bad_image')
  if image_scale != 1.0:
    size = (max(1, round(image.shape[1] * image_scale)), max(1, round(image.shape[0] * image_scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
  ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                          [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
  if not ok:
    raise BadFrameError(f'{where}: JPEG encoding failed', 'bad_image')
  return {'image': jpeg.tobytes(), 'image_width': int(image.shape[1]),
          'image_height': int(image.shape[0])}


def _visibility(rec: FrameRecord, i: int) -> float:
  vis = np.asarray(rec.visibility, np.float64).reshape(-1)
  return float(vis[i]) if i < vis.size else 1.0


def _instance_fields(rec: FrameRecord, i: int) -> dict[str, Any]:
  """Store fields of instance i (all but the image; 'video_id' is set to the track by the caller)."""
  ids = tuple(rec.instance_ids) or tuple(range(rec.instance_num))
  fields = {
      'version': FORMAT_VERSION, 'video_id': rec.video_id, 'frame_id': int(rec.frame_id),
      'timestamp_us': int(rec.timestamp_us), 'category': CATEGORIES.index(rec.category),
      'instance_id': int(ids[i]), 'visibility': _visibility(rec, i)}
  for k in INSTANCE_ARRAYS:
    fields[k] = np.asarray(getattr(rec, k), np.float32)[i]
  for k in FRAME_ARRAYS:
    fields[k] = np.asarray(getattr(rec, k), np.float32)
  return fields


# ----------------------------------------------------------------------------------------- ingest
class _SplitWriter:
  """Rolls ArrayRecord shards for one split; shards get their final `-of-N` names in finish()."""

  def __init__(self, directory: str, records_per_shard: int):
    from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
    self._module = array_record_module
    self.directory, self.records_per_shard = directory, records_per_shard
    os.makedirs(directory, exist_ok=True)
    self.shards: list[str] = []  # temporary file names, in order
    self.count = 0
    self.num_committed = 0       # shards listed in the progress log
    self._writer, self._in_shard = None, 0

  def write(self, data: bytes) -> int:
    if self._writer is None or self._in_shard == self.records_per_shard:
      self.close()
      self.shards.append(f'frames-{len(self.shards):05d}.array_record.tmp')
      # group_size:1 makes every record independently addressable (fast random access).
      self._writer = self._module.ArrayRecordWriter(os.path.join(self.directory, self.shards[-1]),
                                                    'group_size:1')
      self._in_shard = 0
    self._writer.write(data)
    self._in_shard += 1
    self.count += 1
    return self.count - 1

  def close(self):
    if self._writer is not None:
      self._writer.close()
      self._writer = None

  def finish(self) -> list[str]:
    """Renames the shards to `frames-i-of-n`; idempotent, so a crash in here can be resumed."""
    self.close()
    n, names = len(self.shards), []
    for i, tmp in enumerate(self.shards):
      names.append(f'frames-{i:05d}-of-{n:05d}.array_record')
      src, dst = os.path.join(self.directory, tmp), os.path.join(self.directory, names[-1])
      if os.path.exists(src):
        os.replace(src, dst)
      elif not os.path.exists(dst):
        raise FileNotFoundError(f'{src}: shard listed in {PROGRESS_FILE} is missing; delete '
                                f'{os.path.dirname(self.directory)} and ingest again')
    return names


class StoreWriter:
  """Streams FrameRecords into a frame store, committing per source file so that ingest resumes.

  `add(rec, source)` per record, `commit(name)` when a source file is done (`done_sources` lists
  those committed by this or an earlier, interrupted run), `finish()` at the end. A frame is kept iff
  `frame_id % subsample == 0`: a per-record rule, so the kept set does not depend on record order.
  Bad data raises an error naming the source (file and record) and video/frame, or with
  on_bad_record='skip' is counted per reason. Instances below `min_visibility` are dropped and counted.
  `resume_key` (JSON) names the input; resuming with other options or input raises.
  """

  def __init__(self, output_dir: str, *, split_fn: Callable[[str], str], subsample: int = 5,
               image_scale: float = 1.0, jpeg_quality: int = 90, records_per_shard: int = 2000,
               on_bad_record: str = 'raise', instances: str = 'first', min_visibility: float = 0.0,
               resume_key: dict[str, Any] | None = None):
    if subsample < 1 or records_per_shard < 1 or not 0 < image_scale <= 1:
      raise ValueError(f'bad ingest options: subsample={subsample}, image_scale={image_scale}, '
                       f'records_per_shard={records_per_shard}')
    if on_bad_record not in ON_BAD_RECORD:
      raise ValueError(f'on_bad_record={on_bad_record!r}: expected one of {ON_BAD_RECORD}')
    if instances not in INSTANCE_MODES:
      raise ValueError(f'instances={instances!r}: expected one of {INSTANCE_MODES}')
    if not 0.0 <= min_visibility <= 1.0:
      raise ValueError(f'min_visibility={min_visibility}: expected a fraction in [0, 1]')
    if os.path.exists(os.path.join(output_dir, INDEX_FILE)):
      raise FileExistsError(f'{output_dir} already holds a complete frame store ({INDEX_FILE})')
    os.makedirs(output_dir, exist_ok=True)
    self.output_dir, self.split_fn = output_dir, split_fn
    self.on_bad_record = on_bad_record
    self.config = {'subsample': subsample, 'image_scale': image_scale, 'jpeg_quality': jpeg_quality,
                   'records_per_shard': records_per_shard, 'instances': instances,
                   'min_visibility': min_visibility, 'source': resume_key}
    self._writers: dict[str, _SplitWriter] = {}
    self._tracks: dict[str, dict[str, dict[str, Any]]] = {}  # split -> track -> info
    self._video_split: dict[str, str] = {}
    self.videos_seen: set[str] = set()
    self.skipped: list[Skip] = []
    self.dropped: collections.Counter[str] = collections.Counter()
    self.num_seen = self.num_kept = 0
    self.done_sources: list[str] = []
    self._journal = Journal(os.path.join(output_dir, PROGRESS_FILE), self.config)
    self._replay()
    self._pending = self._new_entry()

  # ------------------------------------------------------------------ progress log
  @staticmethod
  def _new_entry() -> dict[str, Any]:
    return {'frames': [], 'skipped': [], 'dropped': collections.Counter(), 'num_seen': 0,
            'videos': set()}

  def _writer(self, split: str) -> _SplitWriter:
    if split not in self._writers:
      self._writers[split] = _SplitWriter(os.path.join(self.output_dir, split),
                                          self.config['records_per_shard'])
      self._tracks[split] = {}
    return self._writers[split]

  def _replay(self) -> None:
    """Rebuilds the committed state from the log and deletes shards of uncommitted work."""
    for entry in self._journal.entries:
      for split, names in entry['shards'].items():
        w = self._writer(split)
        w.shards.extend(names)
        w.num_committed = len(w.shards)
        w.count = entry['counts'][split]
      for split, track, category, instance_id, frame_id, record in entry['frames']:
        self._register(split, track, category, instance_id, frame_id, record)
      self.skipped.extend(Skip(*s) for s in entry['skipped'])
      self.dropped.update(entry['dropped'])
      self.num_seen += entry['num_seen']
      self.videos_seen.update(entry['videos'])
      self.done_sources.append(entry['source'])
    for split in os.listdir(self.output_dir):
      directory = os.path.join(self.output_dir, split)
      if not os.path.isdir(directory):
        continue
      listed = set(self._writers[split].shards) if split in self._writers else set()
      for name in os.listdir(directory):
        if _TMP_SHARD.match(name) and name not in listed:
          os.remove(os.path.join(directory, name))

  def commit(self, source: str) -> None:
    """Marks `source` done: closes the open shards and logs what this source added."""
    for w in self._writers.values():
      w.close()
    p = self._pending
    entry = {'source': source, 'num_seen': p['num_seen'], 'frames': p['frames'],
             'skipped': [list(s) for s in p['skipped']], 'dropped': dict(p['dropped']),
             'videos': sorted(p['videos']), 'shards': {}, 'counts': {}}
    for split, w in self._writers.items():
      entry['shards'][split] = w.shards[w.num_committed:]
      entry['counts'][split] = w.count
    self._journal.append(entry)
    for w in self._writers.values():
      w.num_committed = len(w.shards)
    self.done_sources.append(source)
    self._pending = self._new_entry()

  # ------------------------------------------------------------------ records
  def _register(self, split, track, category, instance_id, frame_id, record) -> None:
    info = self._tracks[split].setdefault(track, {
        'video_id': track, 'category': category, 'instance_id': instance_id, 'frames': {}})
    info['frames'][frame_id] = record
    self.num_kept += 1

  def on_error(self, err: RecordError) -> None:
    """Bad data: raises `err` with on_bad_record='raise', else counts it under `err.reason`.

    Also the callback of the tolerant readers (tfrecord/objectron_records `on_error`).
    """
    if self.on_bad_record == 'raise':
      raise err
    self.skipped.append(Skip(err.reason, str(err)))
    self._pending['skipped'].append(self.skipped[-1])

  def _drop(self, reason: str) -> None:
    self.dropped[reason] += 1
    self._pending['dropped'][reason] += 1

  def _split_of(self, video_id: str) -> str:
    split = self._video_split.get(video_id)
    if split is None:
      split = self._video_split[video_id] = self.split_fn(video_id)
      if not isinstance(split, str) or not _SPLIT_NAME.match(split):
        raise ValueError(f'split_fn({video_id!r}) returned {split!r}, not a plain name')
    return split

  def _visible(self, vis: float) -> bool:
    """'first' keeps every frame (the reference) unless min_visibility is set; 'all' needs vis > 0."""
    min_vis = self.config['min_visibility']
    if self.config['instances'] == 'first':
      return min_vis <= 0 or vis >= min_vis
    return vis > 0 and vis >= min_vis

  def _selected(self, rec: FrameRecord, where: str) -> list[int]:
    """Instances of `rec` to store: visible enough and valid (invalid ones are skipped or raise)."""
    n = np.asarray(rec.point_2d).shape[0] if np.ndim(rec.point_2d) == 3 else 0
    out = []
    # range(max(n, 1)): a frame without instances still gets its 'missing_keypoints' error.
    for i in ([0] if self.config['instances'] == 'first' else range(max(n, 1))):
      if i < n and not self._visible(_visibility(rec, i)):
        self._drop('low_visibility')
        continue
      try:
        _check_instance(rec, i, where)
      except BadFrameError as e:
        self.on_error(e)
        continue
      out.append(i)
    return out

  def add(self, rec: FrameRecord, source: str = '') -> None:
    """Ingests one frame; `source` ("'<file>' record <i>") prefixes its error messages."""
    self.num_seen += 1
    self._pending['num_seen'] += 1
    self.videos_seen.add(rec.video_id)
    self._pending['videos'].add(rec.video_id)
    if rec.frame_id % self.config['subsample']:
      return
    where = f'{source + ", " if source else ""}video {rec.video_id!r} frame {rec.frame_id}'
    selected = self._selected(rec, where)
    if not selected:
      return
    try:
      image = _image_fields(rec, where, image_scale=self.config['image_scale'],
                            jpeg_quality=self.config['jpeg_quality'])
    except BadFrameError as e:
      self.on_error(e)
      return
    split = self._split_of(rec.video_id)
    writer = self._writer(split)
    for i in selected:
      fields = _instance_fields(rec, i)
      track = fields['video_id'] = (rec.video_id if self.config['instances'] == 'first'
                                    else f'{rec.video_id}#{fields["instance_id"]}')
      info = self._tracks[split].get(track)
      if info is not None and info['category'] != fields['category']:
        raise BadFrameError(f'{where}: category {rec.category!r} differs from earlier frames of the '
                            'video')
      if info is not None and rec.frame_id in info['frames']:
        raise BadFrameError(f'{where}: duplicate frame of track {track!r}')
      record = writer.write(encode({**fields, **image}))
      self._register(split, track, fields['category'], fields['instance_id'], int(rec.frame_id), record)
      self._pending['frames'].append([split, track, fields['category'], fields['instance_id'],
                                      int(rec.frame_id), record])

  # ------------------------------------------------------------------ the end
  def abort(self) -> None:
    """Closes open shards after a failure; committed work stays for a resumed ingest."""
    for w in self._writers.values():
      w.close()

  def finish(self, extra_skipped: Iterable[Skip] = ()) -> StoreInfo:
    """Names the shards, writes skipped.jsonl and then index.json (store complete), drops the log.

    `extra_skipped`: problems found outside the records this run (e.g. missing shards), not logged.
    """
    if any(w.num_committed != len(w.shards) for w in self._writers.values()) or any(
        self._pending[k] for k in ('frames', 'skipped', 'num_seen')):
      raise RuntimeError('StoreWriter.finish() with uncommitted records: call commit() first')
    skipped = self.skipped + list(extra_skipped)
    with open(os.path.join(self.output_dir, SKIP_FILE), 'w') as f:
      f.writelines(json.dumps(s._asdict()) + '\n' for s in skipped)
    index = {'format': FORMAT_NAME, 'version': FORMAT_VERSION, 'categories': list(CATEGORIES),
             'config': {**self.config, 'on_bad_record': self.on_bad_record},
             'num_seen': self.num_seen, 'num_kept': self.num_kept,
             'skipped': dict(sorted(collections.Counter(s.reason for s in skipped).items())),
             'dropped': dict(sorted(self.dropped.items())), 'splits': {}}
    for split in sorted(self._writers):
      entries = []
      for track in sorted(self._tracks[split]):
        info = self._tracks[split][track]
        frame_ids = sorted(info['frames'])
        entries.append({'video_id': track, 'category': info['category'],
                        'instance_id': info['instance_id'], 'frame_ids': frame_ids,
                        'records': [info['frames'][f] for f in frame_ids]})
      index['splits'][split] = {'shards': self._writers[split].finish(),
                                'num_frames': self._writers[split].count, 'videos': entries}
    index_path = os.path.join(self.output_dir, INDEX_FILE)
    with open(index_path + '.tmp', 'w') as f:
      json.dump(index, f)
    os.replace(index_path + '.tmp', index_path)  # last step: its presence marks the store complete
    self._journal.remove()
    return StoreInfo.read(self.output_dir)


def ingest(records: Iterable[FrameRecord], output_dir: str, *, split_fn: Callable[[str], str],
           **options) -> StoreInfo:
  """Writes the kept frames of `records` (any order, e.g. shuffled shards) into a frame store.

  One-shot form of StoreWriter (same options): the whole iterable is a single source, so an
  interrupted call starts over. Only the first object instance is kept by default (the reference).
  """
  writer = StoreWriter(output_dir, split_fn=split_fn, **options)
  try:
    if not writer.done_sources:
      for rec in records:
        writer.add(rec)
      writer.commit('<records>')
  except BaseException:
    writer.abort()
    raise
  return writer.finish()
