"""Random-access frame store: subsampled, annotated frames in ArrayRecord shards plus a video index.

Sequential Objectron records cannot be sampled in pairs, so they are ingested once into a store:

  <output_dir>/<split>/frames-00000-of-00002.array_record   one record per kept frame (per track)
  <output_dir>/skipped.jsonl                                 one {'reason', 'message'} per skipped item
  <output_dir>/index.json                                    written LAST: a store without it is incomplete

The writing side (validation, instance selection, resumable ingest) is input_pipeline/store/writer.py.

Record format (version 1): a msgpack map. Scalars are plain msgpack values; arrays are maps
``{'__nd__': 1, 'dtype': '<f4', 'shape': [...], 'data': bytes}`` (little-endian). Keys:
  image (JPEG bytes, RGB content, portrait), image_width, image_height (of the stored JPEG),
  video_id (str: the track), frame_id, timestamp_us, category (index into CATEGORIES), instance_id,
  point_2d [9,3] (u, v normalised, depth), point_3d [9,3], rotation [3,3], translation [3], scale [3],
  visibility (float), intrinsics [3,3], projection/view/extrinsics [4,4], plane_center [3],
  plane_normal [3]   (float32; conventions of input_pipeline.formats.geometry).
Clip frames (UCF101, input_pipeline/store/clips.py) carry only image, image_width, image_height,
video_id, frame_id, timestamp_us, category (an index into the index's 'categories', there the action
classes) and instance_id: no box, so their crop window is the whole (already centre-cropped) image.
Instances: with instances='first' (the reference) a track is a video and holds its first object
instance; with 'all' every visible instance is its own track `<video_id>#<instance_id>`, so pairs
never mix objects. Intrinsics and projection refer to the landscape sensor, so downscaling the image
(image_scale) leaves them valid; `point_2d` is normalised and unaffected too.

index.json: {'format', 'version', 'config', 'categories', 'num_seen', 'num_kept',
  'skipped': {reason: count}, 'dropped': {reason: count},
  'splits': {split: {'shards': [file names], 'num_frames': N,
                     'videos': [{'video_id', 'category', 'instance_id', 'frame_ids', 'records'}]}}}
Videos (tracks) are sorted by id; each one's `records` (global record indices in the split, shards
concatenated in order) are sorted by frame id. `skipped` counts bad data (with
on_bad_record='skip'); `dropped` counts frames filtered on purpose (min_visibility).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
from typing import Any, NamedTuple

import cv2
import grain
import msgpack
import numpy as np
from etils import epath

from input_pipeline.formats import paths
from input_pipeline.formats.tfrecord import RecordError
from input_pipeline.store import crops
from input_pipeline.store import remote

FORMAT_NAME = 'siampose-frame-store'
FORMAT_VERSION = 1
INDEX_FILE = 'index.json'
SKIP_FILE = 'skipped.jsonl'
# Annotation arrays of one instance (sliced from FrameRecord) and per-frame camera arrays.
INSTANCE_ARRAYS = ('point_2d', 'point_3d', 'rotation', 'translation', 'scale')
FRAME_ARRAYS = ('intrinsics', 'projection', 'view', 'extrinsics', 'plane_center', 'plane_normal')


class BadFrameError(RecordError):
  """A frame whose instance cannot be used (missing/NaN keypoints, empty box, bad image)."""


class Skip(NamedTuple):
  """One skipped piece of bad data: a `reason` code and a message naming file/record or video/frame."""
  reason: str
  message: str


@dataclasses.dataclass(frozen=True)
class StoreInfo:
  """What an ingest wrote: frames/videos/shards per split, and what it skipped or dropped."""
  path: str
  splits: dict[str, dict[str, int]]
  num_seen: int
  num_kept: int
  skip_counts: dict[str, int]   # reason -> count (bad data; only with on_bad_record='skip')
  dropped: dict[str, int]       # reason -> count (deliberate filters, e.g. low_visibility)
  skipped: list[Skip]

  @property
  def num_skipped(self) -> int:
    return sum(self.skip_counts.values())

  @classmethod
  def read(cls, path: str) -> 'StoreInfo':
    """The report of a complete store, from its index.json and skipped.jsonl."""
    index = json.loads((epath.Path(path) / INDEX_FILE).read_text())
    skipped = []
    if (epath.Path(path) / SKIP_FILE).exists():
      lines = (epath.Path(path) / SKIP_FILE).read_text().splitlines()
      skipped = [Skip(**json.loads(line)) for line in lines if line.strip()]
    return cls(path=path, num_seen=index['num_seen'], num_kept=index['num_kept'],
               skip_counts=index['skipped'], dropped=index['dropped'], skipped=skipped,
               splits={s: {'num_frames': v['num_frames'], 'num_videos': len(v['videos']),
                           'num_shards': len(v['shards'])} for s, v in index['splits'].items()})


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


# libjpeg DCT-domain downscaling while decoding: factor -> imdecode flag (RGB output added below).
_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}
JPEG_REDUCTIONS = tuple(_REDUCED_FLAGS)


def reduced_shape(image_hw: tuple[int, int], reduce: int) -> tuple[int, int]:
  """Size libjpeg decodes an image to at 1/reduce scale (each side rounded up)."""
  return -(-int(image_hw[0]) // reduce), -(-int(image_hw[1]) // reduce)


def decode_jpeg(data: bytes, where: str = '', reduce: int = 1) -> np.ndarray:
  """JPEG bytes -> RGB uint8 [H, W, 3], at 1/reduce scale (1, 2, 4 or 8) if asked.

  libjpeg writes RGB directly (the same pixels as decoding to BGR and swapping, without the extra pass).
  """
  if reduce not in _REDUCED_FLAGS:
    raise ValueError(f'{where}: JPEG reduction {reduce} not in {JPEG_REDUCTIONS}')
  flag = (_REDUCED_FLAGS[reduce] & ~cv2.IMREAD_COLOR) | cv2.IMREAD_COLOR_RGB
  rgb = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
  if rgb is None:
    raise BadFrameError(f'{where}: image bytes do not decode')
  return rgb


# ----------------------------------------------------------------------------------------- reading
class FrameStore:
  """Read access to an ingested store; picklable (sources reopen lazily in Grain workers)."""

  def __init__(self, path):
    self.path = os.fspath(path)
    index_path = epath.Path(self.path) / INDEX_FILE
    if not index_path.exists():
      raise FileNotFoundError(f'{self.path} is not a complete frame store: {INDEX_FILE} missing '
                              '(it is written last, so ingest did not finish)')
    self.index = json.loads(index_path.read_text())
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

  def has_frames(self, split: str) -> bool:
    return split in self.index['splits'] and self.num_frames(split) > 0

  def videos(self, split: str) -> list[dict[str, Any]]:
    """Per video (sorted by id): video_id, category, instance_id, frame_ids and records (frame order)."""
    return self._split(split)['videos']

  def source(self, split: str) -> grain.sources.ArrayRecordDataSource:
    if split not in self._sources:
      shards = [os.path.join(self.path, split, s) for s in self._split(split)['shards']]
      if not paths.is_local(self.path):  # ArrayRecord reads local files: a mirror, downloaded once
        mirror = remote.mirror_dir(self.path)
        shards = [remote.download(p, os.path.join(mirror, split, os.path.basename(p))) for p in shards]
      self._sources[split] = grain.sources.ArrayRecordDataSource(shards)
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


class CropSource:
  """The un-augmented object crops of some records of a split, decoded only when indexed.

  `len()`, `.shape`, `.dtype` as for the uint8 [N, S, S, 3] array it stands for; `source[i]`, `[a:b]` or
  `[index array]` decode those crops (JPEGs in `num_threads` threads: OpenCV releases the GIL) and return
  them as an array; `take(indices)` is a lazy subset; `np.asarray(source)` decodes everything. Callers that
  embed chunk by chunk (siampose_jax.embedding) thus hold one chunk of pixels, not the split's.
  """

  def __init__(self, store: 'FrameStore', split: str, records: np.ndarray, windows: np.ndarray,
               image_size: int, num_threads: int | None = None):
    self.store, self.split = store, split
    self.records, self.windows = np.asarray(records, np.int64), np.asarray(windows, np.int32)
    self.image_size = int(image_size)
    self.num_threads = num_threads or min(8, os.cpu_count() or 1)

  def __len__(self) -> int:
    return len(self.records)

  @property
  def shape(self) -> tuple[int, ...]:
    return (len(self), self.image_size, self.image_size, 3)

  dtype = np.dtype(np.uint8)
  ndim = 4

  def take(self, indices) -> 'CropSource':
    indices = np.asarray(indices, np.int64)
    return CropSource(self.store, self.split, self.records[indices], self.windows[indices], self.image_size,
                      self.num_threads)

  def _crop(self, i: int) -> np.ndarray:
    record = int(self.records[i])
    rec = decode(self.store.raw(self.split, record), decode_image=False)
    image = decode_jpeg(rec['image'], f'{self.store.path} split {self.split!r} record {record}')
    return crops.crop_and_resize(image, tuple(int(v) for v in self.windows[i]), self.image_size)

  def __getitem__(self, key) -> np.ndarray:
    if isinstance(key, (int, np.integer)):
      return self._crop(int(np.arange(len(self))[key]))
    indices = np.arange(len(self))[key]
    out = np.zeros((len(indices), self.image_size, self.image_size, 3), np.uint8)
    if self.num_threads > 1 and len(indices) > 1:
      with concurrent.futures.ThreadPoolExecutor(self.num_threads) as pool:
        for j, crop in enumerate(pool.map(self._crop, indices)):
          out[j] = crop
    else:
      for j, i in enumerate(indices):
        out[j] = self._crop(int(i))
    return out

  def __array__(self, dtype=None, copy=None):
    del copy
    out = self[:]
    return out if dtype is None else out.astype(dtype)


def eval_arrays(store: FrameStore, split: str, image_size: int, *, margin: float = 0.0,
                num_threads: int | None = None) -> dict[str, Any]:
  """Every frame of a split, un-augmented, in (video id, frame id) order, for embedding and box fitting.

  The labels are read without decoding any image; 'image' is a `CropSource` (the crops, decoded when
  indexed). Each crop is the window around the frame's own keypoint box, longest side resized to
  image_size and zero-padded to a square. `video` indexes `video_ids` (one string per video).
  """
  videos = store.videos(split)
  records = [r for v in videos for r in v['records']]
  video = np.array([i for i, v in enumerate(videos) for _ in v['records']], np.int32)
  recs = []
  for r in records:
    rec = decode(store.raw(split, r), decode_image=False)
    rec['window'] = np.asarray(crops.frame_window(rec.get('point_2d'),
                                                  (rec['image_height'], rec['image_width']), margin), np.int32)
    del rec['image']
    recs.append(rec)
  out = {}
  for key, dtype in (('category', np.int32), ('frame_id', np.int64), ('instance_id', np.int32),
                     ('window', np.int32)):
    out[key] = np.asarray([r[key] for r in recs], dtype)
  if not recs or 'point_2d' in recs[0]:  # object frames (clip frames have no box or camera)
    out['visibility'] = np.asarray([r['visibility'] for r in recs], np.float32)
    for key in INSTANCE_ARRAYS + FRAME_ARRAYS:
      out[key] = np.stack([r[key] for r in recs]) if recs else np.zeros((0,), np.float32)
  out['image_hw'] = np.asarray([(r['image_height'], r['image_width']) for r in recs], np.int32)
  out['video'] = video
  out['record'] = np.asarray(records, np.int64)
  out['video_ids'] = np.asarray([v['video_id'] for v in videos], dtype=str)
  out['window'] = out['window'].reshape(-1, 4)
  out['image'] = CropSource(store, split, out['record'], out['window'], image_size, num_threads)
  return out
