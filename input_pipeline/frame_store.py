"""Random-access frame store: subsampled, annotated frames in ArrayRecord shards plus a video index.

Sequential Objectron records cannot be sampled in pairs, so they are ingested once into a store:

  <output_dir>/<split>/frames-00000-of-00002.array_record   one record per kept frame
  <output_dir>/index.json                                    written LAST: a store without it is incomplete

Record format (version 1): a msgpack map. Scalars are plain msgpack values; arrays are maps
``{'__nd__': 1, 'dtype': '<f4', 'shape': [...], 'data': bytes}`` (little-endian). Keys:
  image (JPEG bytes, RGB content, portrait), image_width, image_height (of the stored JPEG),
  video_id (str), frame_id, timestamp_us, category (index into CATEGORIES), instance_id,
  point_2d [9,3] (u, v normalised, depth), point_3d [9,3], rotation [3,3], translation [3], scale [3],
  visibility (float), intrinsics [3,3], projection/view/extrinsics [4,4], plane_center [3],
  plane_normal [3]   (float32; conventions of siampose_jax.geometry; only the first instance kept).
Intrinsics and projection refer to the landscape sensor, so downscaling the image (image_scale) leaves
them valid; `point_2d` is normalised and unaffected too.

index.json: {'format', 'version', 'config', 'categories', 'skipped',
  'splits': {split: {'shards': [file names], 'num_frames': N,
                     'videos': [{'video_id', 'category', 'instance_id', 'frame_ids', 'records'}]}}}
Videos are sorted by id; each video's `records` (global record indices in the split, shards
concatenated in order) are sorted by frame id.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import re
from typing import Any, Callable, Iterable

import cv2
import grain
import msgpack
import numpy as np

from input_pipeline import augment
from input_pipeline.frame_record import CATEGORIES, FrameRecord

FORMAT_NAME = 'siampose-frame-store'
FORMAT_VERSION = 1
INDEX_FILE = 'index.json'
_SPLIT_NAME = re.compile(r'^[A-Za-z0-9_\-]+$')
# Annotation arrays of the first instance (sliced from FrameRecord) and per-frame camera arrays.
_INSTANCE_ARRAYS = ('point_2d', 'point_3d', 'rotation', 'translation', 'scale')
_FRAME_ARRAYS = ('intrinsics', 'projection', 'view', 'extrinsics', 'plane_center', 'plane_normal')


class BadFrameError(ValueError):
  """A frame whose reference instance cannot be used (missing/NaN keypoints, empty box, bad image)."""


@dataclasses.dataclass(frozen=True)
class StoreInfo:
  """What `ingest` wrote: frames/videos/shards per split and the frames it skipped."""
  path: str
  splits: dict[str, dict[str, int]]
  num_seen: int
  num_kept: int
  skipped: list[tuple[str, int, str]]  # (video_id, frame_id, reason), only with skip_bad=True

  @property
  def num_skipped(self) -> int:
    return len(self.skipped)


# ----------------------------------------------------------------------------------------- records
def _pack(obj):
  if isinstance(obj, np.ndarray):
    a = np.ascontiguousarray(obj)
    return {'__nd__': 1, 'dtype': a.dtype.newbyteorder('<').str, 'shape': list(a.shape),
            'data': a.astype(a.dtype.newbyteorder('<'), copy=False).tobytes()}
  if isinstance(obj, np.generic):
    return obj.item()
  raise TypeError(f'cannot serialise {type(obj)}')


def _unpack(d):
  if d.get('__nd__') == 1:
    return np.frombuffer(d['data'], dtype=np.dtype(d['dtype'])).reshape(d['shape'])
  return d


def encode(fields: dict[str, Any]) -> bytes:
  return msgpack.packb(fields, default=_pack, use_bin_type=True)


def decode(raw: bytes, *, decode_image: bool = True) -> dict[str, Any]:
  """Record bytes -> dict; 'image' becomes an RGB uint8 [H, W, 3] array unless decode_image=False."""
  rec = msgpack.unpackb(raw, object_hook=_unpack, raw=False)
  if rec.get('version') != FORMAT_VERSION:
    raise ValueError(f'frame record version {rec.get("version")!r}, expected {FORMAT_VERSION}')
  if decode_image:
    rec['image'] = decode_jpeg(rec['image'], where=f'{rec["video_id"]} frame {rec["frame_id"]}')
  return rec


def decode_jpeg(data: bytes, where: str = '') -> np.ndarray:
  bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if bgr is None:
    raise BadFrameError(f'{where}: image bytes do not decode')
  return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _frame_fields(rec: FrameRecord, *, image_scale: float, jpeg_quality: int) -> dict[str, Any]:
  """Validates the reference (first) instance of `rec` and returns its store record fields."""
  where = f'video {rec.video_id!r} frame {rec.frame_id}'
  if rec.category not in CATEGORIES:
    raise BadFrameError(f'{where}: unknown category {rec.category!r}')
  p2 = np.asarray(rec.point_2d, np.float64)
  p3 = np.asarray(rec.point_3d, np.float64)
  if p2.ndim != 3 or p2.shape[0] < 1 or p2.shape[1:] != (9, 3) or p3.shape[1:] != (9, 3):
    raise BadFrameError(f'{where}: no instance with 9 keypoints (point_2d {p2.shape}, '
                        f'point_3d {p3.shape})')
  if not (np.isfinite(p2[0]).all() and np.isfinite(p3[0]).all()):
    raise BadFrameError(f'{where}: first instance has NaN/inf keypoints')
  extent = p2[0, :, :2].max(0) - p2[0, :, :2].min(0)
  if extent[0] * rec.image_width <= 0 or extent[1] * rec.image_height <= 0:
    raise BadFrameError(f'{where}: first instance has a zero-area 2D box')
  image = decode_jpeg(rec.image, where)
  if image.shape[:2] != (rec.image_height, rec.image_width):
    raise BadFrameError(f'{where}: image is {image.shape[1]}x{image.shape[0]}, record says '
                        f'{rec.image_width}x{rec.image_height}')
  if image_scale != 1.0:
    size = (max(1, round(image.shape[1] * image_scale)), max(1, round(image.shape[0] * image_scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
  ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                          [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
  if not ok:
    raise BadFrameError(f'{where}: JPEG encoding failed')
  ids = tuple(rec.instance_ids) or (0,)
  fields = {
      'version': FORMAT_VERSION, 'image': jpeg.tobytes(),
      'image_width': int(image.shape[1]), 'image_height': int(image.shape[0]),
      'video_id': rec.video_id, 'frame_id': int(rec.frame_id), 'timestamp_us': int(rec.timestamp_us),
      'category': CATEGORIES.index(rec.category), 'instance_id': int(ids[0]),
      'visibility': float(np.asarray(rec.visibility, np.float64).reshape(-1)[0])
                    if np.size(rec.visibility) else 1.0,
  }
  for k in _INSTANCE_ARRAYS:
    fields[k] = np.asarray(getattr(rec, k), np.float32)[0]
  for k in _FRAME_ARRAYS:
    fields[k] = np.asarray(getattr(rec, k), np.float32)
  return fields


# ----------------------------------------------------------------------------------------- ingest
class _SplitWriter:
  """Rolls ArrayRecord shards for one split; shards get their final `-of-N` names on close."""

  def __init__(self, directory: str, records_per_shard: int):
    from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
    self._module = array_record_module
    self.directory, self.records_per_shard = directory, records_per_shard
    os.makedirs(directory, exist_ok=True)
    self.tmp_paths: list[str] = []
    self.count = 0
    self._writer = None

  def write(self, data: bytes) -> int:
    if self._writer is None or self.count % self.records_per_shard == 0:
      self._close_writer()
      path = os.path.join(self.directory, f'frames-{len(self.tmp_paths):05d}.array_record.tmp')
      self.tmp_paths.append(path)
      # group_size:1 makes every record independently addressable (fast random access).
      self._writer = self._module.ArrayRecordWriter(path, 'group_size:1')
    self._writer.write(data)
    self.count += 1
    return self.count - 1

  def _close_writer(self):
    if self._writer is not None:
      self._writer.close()
      self._writer = None

  def finish(self) -> list[str]:
    self._close_writer()
    n, names = len(self.tmp_paths), []
    for i, tmp in enumerate(self.tmp_paths):
      names.append(f'frames-{i:05d}-of-{n:05d}.array_record')
      os.replace(tmp, os.path.join(self.directory, names[-1]))
    return names

  def abort(self):
    self._close_writer()


def ingest(records: Iterable[FrameRecord], output_dir: str, *, split_fn: Callable[[str], str],
           subsample: int = 5, image_scale: float = 1.0, jpeg_quality: int = 90,
           records_per_shard: int = 2000, skip_bad: bool = False) -> StoreInfo:
  """Writes the kept frames of `records` (any order, e.g. shuffled shards) into a frame store.

  A frame is kept iff `frame_id % subsample == 0`: a per-record rule, so ingest streams and the kept
  set does not depend on record order (Objectron frame ids count from 0, so this is every n-th frame).
  Only the first object instance is kept (the reference's choice). Bad frames raise BadFrameError
  naming video and frame, or with skip_bad=True are counted in StoreInfo.skipped.
  """
  if subsample < 1 or records_per_shard < 1 or not 0 < image_scale <= 1:
    raise ValueError(f'bad ingest options: subsample={subsample}, image_scale={image_scale}, '
                     f'records_per_shard={records_per_shard}')
  index_path = os.path.join(output_dir, INDEX_FILE)
  if os.path.exists(index_path):
    raise FileExistsError(f'{output_dir} already holds a complete frame store ({INDEX_FILE})')
  os.makedirs(output_dir, exist_ok=True)
  writers: dict[str, _SplitWriter] = {}
  videos: dict[str, dict[str, dict[str, Any]]] = {}  # split -> video_id -> info
  video_split: dict[str, str] = {}
  skipped: list[tuple[str, int, str]] = []
  num_seen = num_kept = 0
  try:
    for rec in records:
      num_seen += 1
      if rec.frame_id % subsample:
        continue
      try:
        fields = _frame_fields(rec, image_scale=image_scale, jpeg_quality=jpeg_quality)
      except BadFrameError as e:
        if not skip_bad:
          raise
        skipped.append((rec.video_id, int(rec.frame_id), str(e)))
        continue
      split = video_split.get(rec.video_id)
      if split is None:
        split = video_split[rec.video_id] = split_fn(rec.video_id)
        if not isinstance(split, str) or not _SPLIT_NAME.match(split):
          raise ValueError(f'split_fn({rec.video_id!r}) returned {split!r}, not a plain name')
      if split not in writers:
        writers[split] = _SplitWriter(os.path.join(output_dir, split), records_per_shard)
        videos[split] = {}
      info = videos[split].setdefault(rec.video_id, {
          'video_id': rec.video_id, 'category': fields['category'],
          'instance_id': fields['instance_id'], 'frames': {}})
      if info['category'] != fields['category']:
        raise BadFrameError(f'video {rec.video_id!r} frame {rec.frame_id}: category '
                            f'{rec.category!r} differs from earlier frames of the video')
      if rec.frame_id in info['frames']:
        raise BadFrameError(f'video {rec.video_id!r} frame {rec.frame_id}: duplicate frame')
      info['frames'][int(rec.frame_id)] = writers[split].write(encode(fields))
      num_kept += 1
    shards = {split: w.finish() for split, w in writers.items()}
  except BaseException:
    for w in writers.values():
      w.abort()
    raise
  index = {'format': FORMAT_NAME, 'version': FORMAT_VERSION, 'categories': list(CATEGORIES),
           'config': {'subsample': subsample, 'image_scale': image_scale,
                      'jpeg_quality': jpeg_quality, 'records_per_shard': records_per_shard},
           'skipped': [list(s) for s in skipped], 'splits': {}}
  for split in sorted(writers):
    entries = []
    for vid in sorted(videos[split]):
      info = videos[split][vid]
      frame_ids = sorted(info['frames'])
      entries.append({'video_id': vid, 'category': info['category'],
                      'instance_id': info['instance_id'], 'frame_ids': frame_ids,
                      'records': [info['frames'][f] for f in frame_ids]})
    index['splits'][split] = {'shards': shards[split], 'num_frames': writers[split].count,
                              'videos': entries}
  tmp = index_path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(index, f)
  os.replace(tmp, index_path)  # last step: its presence marks the store complete
  return StoreInfo(
      path=output_dir, num_seen=num_seen, num_kept=num_kept, skipped=skipped,
      splits={s: {'num_frames': v['num_frames'], 'num_videos': len(v['videos']),
                  'num_shards': len(v['shards'])} for s, v in index['splits'].items()})


# ----------------------------------------------------------------------------------------- reading
class FrameStore:
  """Read access to an ingested store; picklable (sources reopen lazily in Grain workers)."""

  def __init__(self, path: str):
    self.path = os.fspath(path)
    index_path = os.path.join(self.path, INDEX_FILE)
    if not os.path.exists(index_path):
      raise FileNotFoundError(f'{self.path} is not a complete frame store: {INDEX_FILE} missing '
                              '(it is written last, so ingest did not finish)')
    with open(index_path) as f:
      self.index = json.load(f)
    if self.index.get('format') != FORMAT_NAME or self.index.get('version') != FORMAT_VERSION:
      raise ValueError(f'{index_path}: not a {FORMAT_NAME} v{FORMAT_VERSION} index')
    self._sources: dict[str, Any] = {}

  def __getstate__(self):
    return {'path': self.path, 'index': self.index, '_sources': {}}

  @property
  def splits(self) -> tuple[str, ...]:
    return tuple(self.index['splits'])

  def _split(self, split: str) -> dict[str, Any]:
    if split not in self.index['splits']:
      raise KeyError(f'{self.path} has no split {split!r} (has {self.splits})')
    return self.index['splits'][split]

  def num_frames(self, split: str) -> int:
    return int(self._split(split)['num_frames'])

  def videos(self, split: str) -> list[dict[str, Any]]:
    """Per video (sorted by id): video_id, category, instance_id, frame_ids and records (frame order)."""
    return self._split(split)['videos']

  def source(self, split: str) -> grain.sources.ArrayRecordDataSource:
    if split not in self._sources:
      paths = [os.path.join(self.path, split, s) for s in self._split(split)['shards']]
      self._sources[split] = grain.sources.ArrayRecordDataSource(paths)
    return self._sources[split]

  def raw(self, split: str, index: int) -> bytes:
    return self.source(split)[int(index)]

  def __getitem__(self, key: tuple[str, int]) -> dict[str, Any]:
    """store[split, i] -> decoded record i of the split (image as RGB uint8)."""
    split, index = key
    return decode(self.raw(split, index))

  decode = staticmethod(decode)


def open_store(path: str) -> FrameStore:
  return FrameStore(path)


def eval_arrays(store: FrameStore, split: str, image_size: int, *, margin: float = 0.0,
                num_threads: int = 1) -> dict[str, np.ndarray]:
  """Every frame of a split, un-augmented, in (video id, frame id) order, for embedding and box fitting.

  Each crop is the window around the frame's own keypoint box, longest side resized to image_size
  and zero-padded to a square. `video` indexes `video_ids` (one string per video).
  """
  videos = store.videos(split)
  records = [r for v in videos for r in v['records']]
  video = np.array([i for i, v in enumerate(videos) for _ in v['records']], np.int32)

  def load(r):
    rec = store[split, r]
    window = augment.crop_window(rec['point_2d'], rec['image'].shape[:2], margin)
    rec['image'] = augment.crop_and_resize(rec['image'], window, image_size)
    rec['window'] = np.asarray(window, np.int32)
    return rec

  if num_threads > 1:
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
      recs = list(pool.map(load, records))
  else:
    recs = [load(r) for r in records]
  out = {'image': np.zeros((0, image_size, image_size, 3), np.uint8)} if not recs else {
      'image': np.stack([r['image'] for r in recs])}
  for key, dtype in (('category', np.int32), ('frame_id', np.int64), ('instance_id', np.int32),
                     ('visibility', np.float32), ('window', np.int32)):
    out[key] = np.asarray([r[key] for r in recs], dtype)
  for key in _INSTANCE_ARRAYS + _FRAME_ARRAYS:
    out[key] = np.stack([r[key] for r in recs]) if recs else np.zeros((0,), np.float32)
  out['image_hw'] = np.asarray([(r['image_height'], r['image_width']) for r in recs], np.int32)
  out['video'] = video
  out['record'] = np.asarray(records, np.int64)
  out['video_ids'] = np.asarray([v['video_id'] for v in videos], dtype=str)
  return out
