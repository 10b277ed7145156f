"""FrameRecord <-> Objectron tf.Example / tf.SequenceExample records, shards and index files.

Keys and layouts follow objectron/schema/features.py (see docs/metrics.md): floats are
float32 lists, matrices row-major, per-instance values concatenated over instances. Per-frame records
have no key for the video id, so it travels in `image/filename` as `<video_id>/<frame_id:06d>.<ext>`
(e.g. `cup/batch-3/12/000045.jpg`); explicit instance ids, when a record has them, are appended to the
stem as `_inst-<id>-<id>...`. Decoding validates every key it uses, so a bad record fails with an error
naming the record and the key instead of producing a wrong label.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable, Iterator, Mapping, TypeVar

import numpy as np
from google.protobuf import message as message_lib

from input_pipeline.formats import objectron_layout
from input_pipeline.formats import paths
from input_pipeline.formats import protos
from input_pipeline.formats import tfrecord
from input_pipeline.formats.frame_record import CATEGORIES, FrameRecord
from input_pipeline.formats.tfrecord import RecordError

# Float keys: key -> (FrameRecord field, shape per instance or of the whole value, per instance?).
_FLOAT_KEYS = {
    'point_2d': ('point_2d', (9, 3), True),
    'point_3d': ('point_3d', (9, 3), True),
    'object/orientation': ('rotation', (3, 3), True),
    'object/translation': ('translation', (3,), True),
    'object/scale': ('scale', (3,), True),
    'object/visibility': ('visibility', (), True),
    'camera/intrinsics': ('intrinsics', (3, 3), False),
    'camera/projection': ('projection', (4, 4), False),
    'camera/view': ('view', (4, 4), False),
    'camera/extrinsics': ('extrinsics', (4, 4), False),
    'plane/center': ('plane_center', (3,), False),
    'plane/normal': ('plane_normal', (3,), False),
}
# Labels a wrong value of which would silently corrupt training targets.
_FINITE_KEYS = ('point_2d', 'point_3d', 'object/orientation', 'object/translation', 'object/scale')
# Scalar int64 keys: key -> FrameRecord field.
# Keys whose absence or non-finite values are reported as missing/NaN keypoints (skip reasons).
_KEYPOINT_KEYS = ('point_2d', 'point_3d')
_INT_KEYS = {'image/id': 'frame_id', 'image/timestamp': 'timestamp_us', 'image/width': 'image_width',
             'image/height': 'image_height'}
_FILENAME_RE = re.compile(
    r'^(?P<video>[^/].*[^/])/(?P<frame>\d+)(?:_inst(?P<ids>(?:-\d+)+))?\.(?:jpg|jpeg|png)$')
SPLITS = objectron_layout.SPLITS


def _image_format(image: bytes) -> str:
  if image[:3] == b'\xff\xd8\xff':
    return 'jpeg'
  if image[:8] == b'\x89PNG\r\n\x1a\n':
    return 'png'
  raise ValueError('FrameRecord.image is neither JPEG nor PNG')


def _category_of(video_id: str, names: tuple[str, ...]) -> str:
  """The video id's class prefix when it is an Objectron class, else the first object name."""
  prefix = video_id.split('/', 1)[0]
  return prefix if prefix in CATEGORIES else (names[0] if names else '')


def _frame_features(rec: FrameRecord) -> dict[str, tuple[str, list]]:
  """The per-frame key -> (kind, values) map shared by Example and SequenceExample encoding."""
  n = rec.instance_num
  where = f'FrameRecord {rec.video_id!r} frame {rec.frame_id}'
  if not rec.video_id or rec.video_id.startswith('/') or rec.video_id.endswith('/'):
    raise ValueError(f'{where}: video_id must be a non-empty relative path like cup/batch-3/12')
  if rec.frame_id < 0:
    raise ValueError(f'{where}: frame_id must be >= 0')
  fmt = _image_format(rec.image)
  ids = tuple(int(i) for i in rec.instance_ids)
  if ids and (len(ids) != n or min(ids) < 0):
    raise ValueError(f'{where}: instance_ids {ids} must be {n} non-negative ints')
  names = tuple(rec.object_names) or (rec.category,) * n
  if len(names) != n:
    raise ValueError(f'{where}: {len(names)} object_names for {n} instances')
  if _category_of(rec.video_id, names) != rec.category:
    raise ValueError(f'{where}: category {rec.category!r} is not recoverable from the video id prefix '
                     'or the first object name')
  suffix = '_inst' + ''.join(f'-{i}' for i in ids) if ids else ''
  filename = f'{rec.video_id}/{rec.frame_id:06d}{suffix}.{"jpg" if fmt == "jpeg" else "png"}'
  feats = {
      'image/encoded': ('bytes', [rec.image]),
      'image/format': ('bytes', [fmt.encode()]),
      'image/filename': ('bytes', [filename.encode()]),
      'image/channels': ('int64', [3]),
      'image/colorspace': ('bytes', [b'RGB']),
      'camera/orientation': ('bytes', [b'portrait']),
      'instance_num': ('int64', [n]),
      'point_num': ('int64', [9] * n),
      'object/name': ('bytes', [s.encode() for s in names]),
  }
  for key, field in _INT_KEYS.items():
    feats[key] = ('int64', [int(getattr(rec, field))])
  for key, (field, shape, per_instance) in _FLOAT_KEYS.items():
    value = np.asarray(getattr(rec, field), np.float32)
    want = ((n,) if per_instance else ()) + shape
    if value.shape != want:
      raise ValueError(f'{where}: {field} has shape {value.shape}, expected {want} (for {key!r})')
    if key in _FINITE_KEYS and not np.isfinite(value).all():
      raise ValueError(f'{where}: {field} contains NaN or infinite values (for {key!r})')
    feats[key] = ('float', value.ravel().tolist())
  return feats


def _fill(feature, kind: str, values: list) -> None:
  lst = getattr(feature, f'{kind}_list')
  lst.SetInParent()  # an empty list must still record its kind
  lst.value.extend(values)


def _values(feats: Mapping, key: str, kind: str, source: str, required: bool = True):
  if key not in feats:
    if required:
      raise RecordError(f'{source}: missing required key {key!r}',
                        'missing_keypoints' if key in _KEYPOINT_KEYS else 'bad_record')
    return None
  which = feats[key].WhichOneof('kind')
  if which not in (None, f'{kind}_list'):
    raise RecordError(f'{source}: key {key!r} holds {which}, expected {kind}_list')
  return getattr(feats[key], f'{kind}_list').value


def _scalar(feats: Mapping, key: str, kind: str, source: str):
  values = _values(feats, key, kind, source)
  if len(values) != 1:
    raise RecordError(f'{source}: key {key!r} has {len(values)} values, expected 1')
  return values[0]


def _frame_from_features(feats: Mapping, source: str) -> FrameRecord:
  """Inverse of `_frame_features`, validating every key against the others."""
  n = int(_scalar(feats, 'instance_num', 'int64', source))
  if n < 0:
    raise RecordError(f'{source}: key \'instance_num\' is negative ({n})')
  arrays = {}
  for key, (field, shape, per_instance) in _FLOAT_KEYS.items():
    value = np.asarray(_values(feats, key, 'float', source), np.float32)
    size = int(np.prod(shape, dtype=np.int64))
    if per_instance and value.size % size:
      raise RecordError(f'{source}: key {key!r} has {value.size} floats, not a multiple of {size}')
    want = ((n,) if per_instance else ()) + shape
    if value.size != int(np.prod(want, dtype=np.int64)):
      raise RecordError(f'{source}: key {key!r} has {value.size} floats, expected {want} '
                        f'(instance_num={n})')
    if key in _FINITE_KEYS and not np.isfinite(value).all():
      raise RecordError(f'{source}: key {key!r} contains NaN or infinite values',
                        'nan_keypoints' if key in _KEYPOINT_KEYS else 'bad_record')
    arrays[field] = value.reshape(want)
  point_num = _values(feats, 'point_num', 'int64', source, required=False)
  if point_num is not None and list(point_num) != [9] * n:
    raise RecordError(f'{source}: key \'point_num\' is {list(point_num)}, expected 9 per instance')
  ints = {field: int(_scalar(feats, key, 'int64', source)) for key, field in _INT_KEYS.items()}

  filename = _scalar(feats, 'image/filename', 'bytes', source).decode('utf-8', 'replace')
  match = _FILENAME_RE.match(filename)
  if not match:
    raise RecordError(f'{source}: key \'image/filename\' is {filename!r}, expected '
                      '<class>/batch-i/j/<frame:06d>.jpg')
  if int(match['frame']) != ints['frame_id']:
    raise RecordError(f'{source}: key \'image/filename\' names frame {int(match["frame"])} but '
                      f'image/id is {ints["frame_id"]}')
  ids = tuple(int(i) for i in match['ids'][1:].split('-')) if match['ids'] else ()
  if ids and len(ids) != n:
    raise RecordError(f'{source}: key \'image/filename\' has {len(ids)} instance ids for {n} instances')
  video_id = match['video']

  names = _values(feats, 'object/name', 'bytes', source, required=False)
  names = tuple(s.decode('utf-8', 'replace') for s in names or ())
  if names and len(names) != n:
    raise RecordError(f'{source}: key \'object/name\' has {len(names)} names for {n} instances')
  category = _category_of(video_id, names)
  if not category:
    raise RecordError(f'{source}: no category in image/filename {filename!r} nor in object/name')
  if names and all(s == category for s in names):
    names = ()  # canonical form: names that only repeat the category are implied
  return FrameRecord(video_id=video_id, category=category,
                     image=bytes(_scalar(feats, 'image/encoded', 'bytes', source)),
                     object_names=names, instance_ids=ids, **ints, **arrays)


def encode_example(rec: FrameRecord) -> bytes:
  """Serialized tf.Example of one frame, as in Objectron's `records_shuffled` shards.

  object_names=() is written as the category once per instance (as real records have), and decodes
  back to () ; any other names round-trip as they are.
  """
  ex = protos.Example()
  for key, (kind, values) in _frame_features(rec).items():
    _fill(ex.features.feature[key], kind, values)
  return ex.SerializeToString(deterministic=True)


def _source(source: str) -> str:
  return source or '<bytes>'


def decode_example(data: bytes, *, source: str = '') -> FrameRecord:
  """FrameRecord from a serialized tf.Example; `source` (file and record index) goes in errors."""
  ex = protos.Example()
  try:
    ex.ParseFromString(data)
  except message_lib.DecodeError as e:
    raise RecordError(f'{_source(source)}: not a tf.Example ({e})') from e
  return _frame_from_features(ex.features.feature, _source(source))


def encode_sequence(recs: list[FrameRecord]) -> bytes:
  """Serialized tf.SequenceExample of one video's frames (context `sequence_id`, `count`)."""
  if not recs:
    raise ValueError('encode_sequence needs at least one frame')
  video_ids = {r.video_id for r in recs}
  if len(video_ids) != 1:
    raise ValueError(f'encode_sequence: frames from several videos {sorted(video_ids)}')
  seq = protos.SequenceExample()
  _fill(seq.context.feature['sequence_id'], 'bytes', [recs[0].video_id.encode()])
  _fill(seq.context.feature['count'], 'int64', [len(recs)])
  lists = seq.feature_lists.feature_list
  for rec in recs:
    for key, (kind, values) in _frame_features(rec).items():
      _fill(lists[key].feature.add(), kind, values)
  return seq.SerializeToString(deterministic=True)


def decode_sequence(data: bytes, *, source: str = '') -> list[FrameRecord]:
  """Frames of a serialized tf.SequenceExample, checked against its context."""
  source = _source(source)
  seq = protos.SequenceExample()
  try:
    seq.ParseFromString(data)
  except message_lib.DecodeError as e:
    raise RecordError(f'{source}: not a tf.SequenceExample ({e})') from e
  sequence_id = _scalar(seq.context.feature, 'sequence_id', 'bytes', f'{source} context').decode(
      'utf-8', 'replace')
  count = int(_scalar(seq.context.feature, 'count', 'int64', f'{source} context'))
  lists = seq.feature_lists.feature_list
  for key, fl in lists.items():
    if len(fl.feature) != count:
      raise RecordError(f'{source}: feature list {key!r} has {len(fl.feature)} frames, count is {count}')
  recs = []
  for i in range(count):
    rec = _frame_from_features({key: fl.feature[i] for key, fl in lists.items()},
                               f'{source} frame {i}')
    if rec.video_id != sequence_id:
      raise RecordError(f'{source} frame {i}: key \'image/filename\' names video {rec.video_id!r}, '
                        f'sequence_id is {sequence_id!r}')
    recs.append(rec)
  return recs


def shard_paths(path_prefix: str, num_shards: int) -> list[str]:
  """Objectron-style shard names `<prefix>-00000-of-00004`."""
  return [f'{path_prefix}-{i:05d}-of-{num_shards:05d}' for i in range(num_shards)]


def write_shards(path_prefix: str, payloads: Iterable[bytes], num_shards: int) -> list[str]:
  """Writes payloads round-robin (record k to shard k mod num_shards); returns the shard paths."""
  if num_shards < 1:
    raise ValueError(f'num_shards must be >= 1, got {num_shards}')
  paths = shard_paths(path_prefix, num_shards)
  writers = [tfrecord.TFRecordWriter(p) for p in paths]
  try:
    for k, data in enumerate(payloads):
      writers[k % num_shards].write(data)
  finally:
    for w in writers:
      w.close()
  return paths


_T = TypeVar('_T')


def _iter_decoded(paths_or_glob, decode: Callable[..., _T],
                  on_error: tfrecord.OnError | None) -> Iterator[tuple[str, _T]]:
  """(source, decoded) per record; with `on_error`, damaged or undecodable records go to it."""
  for path, index, data in tfrecord.read_records(paths_or_glob, on_error=on_error):
    source = f'{path!r} record {index}'
    try:
      value = decode(data, source=source)
    except RecordError as e:
      if on_error is None:
        raise
      on_error(e)
      continue
    yield source, value


def iter_examples(paths_or_glob, *, on_error: tfrecord.OnError | None = None
                  ) -> Iterator[tuple[str, FrameRecord]]:
  """(source, FrameRecord) from tf.Example shards; source is "'<path>' record <index>"."""
  return _iter_decoded(paths_or_glob, decode_example, on_error)


def iter_sequences(paths_or_glob, *, on_error: tfrecord.OnError | None = None
                   ) -> Iterator[tuple[str, list[FrameRecord]]]:
  """(source, frames) per tf.SequenceExample; a bad frame makes the whole sequence bad."""
  return _iter_decoded(paths_or_glob, decode_sequence, on_error)


def read_examples(paths_or_glob, *, on_error: tfrecord.OnError | None = None) -> Iterator[FrameRecord]:
  """FrameRecords from tf.Example shards (a path, glob or list), in file then record order.

  Bad records raise RecordError naming file and record, or with `on_error` are reported and skipped.
  """
  for _, rec in iter_examples(paths_or_glob, on_error=on_error):
    yield rec


def read_sequences(paths_or_glob, *, on_error: tfrecord.OnError | None = None
                   ) -> Iterator[list[FrameRecord]]:
  """One list of FrameRecords per tf.SequenceExample in the shards (`on_error` as in read_examples)."""
  for _, frames in iter_sequences(paths_or_glob, on_error=on_error):
    yield frames


def write_index(root, category: str, split: str, video_ids: Iterable[str]) -> str:
  """Writes `ROOT/index/<class>_annotations_<split>` (one `class/batch-i/j` per line); returns its path.

  Readers find index files through `objectron_layout.Layout`, which also accepts the bucket's v1/index/.
  """
  path = paths.resolve(root) / 'index' / objectron_layout.index_name(category, split)
  video_ids = list(video_ids)
  for vid in video_ids:
    objectron_layout.check_video_id(vid, category, str(path))
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(''.join(f'{vid}\n' for vid in video_ids))
  return str(path)


def read_index(root, category: str, split: str) -> list[str]:
  """Video ids listed in the index file of `category`/`split` of an Objectron root, in file order."""
  layout = objectron_layout.Layout.find(root)
  return objectron_layout.parse_index(layout.index_path(category, split), category)
