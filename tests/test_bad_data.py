"""Bad data end to end through ingest (raise vs skip), resumable ingest, instance selection/visibility.

Roots are written in the real Objectron layout (tf.Example shards + index files) from the hand-made
records of _frame_store_testdata, then damaged on disk the way real downloads get damaged.
"""
from __future__ import annotations

import json
import os
import re

import cv2
import numpy as np
import pytest

from siampose_jax.configs import base
from input_pipeline.formats import objectron_records as orec
from input_pipeline.formats import protos
from input_pipeline.formats import tfrecord
from input_pipeline.store import frame_store
from input_pipeline.store import ingest
from input_pipeline.store import journal as ingest_journal
from input_pipeline.store import writer as store_writer
from tests import _frame_store_testdata as td

NUM_SHARDS = 2  # round robin: shard s holds frames s, s+2, ... as records 0, 1, ...


def _prefix(root, video: int) -> str:
  cat = td.VIDEOS[video][0].split('/')[0]
  return os.path.join(root, 'v1', 'records_shuffled', cat, f'{cat}_train')


def _shard(root, video: int, shard: int) -> str:
  return orec.shard_paths(_prefix(root, video), NUM_SHARDS)[shard]


def make_root(path) -> str:
  """cup (12 frames), shoe (10), book (11): all 'train', two shards per class, in order."""
  root = str(path)
  for v, (vid, n, _) in enumerate(td.VIDEOS):
    orec.write_shards(_prefix(root, v), [orec.encode_example(td.make_record(v, f)) for f in range(n)],
                      NUM_SHARDS)
    orec.write_index(root, vid.split('/')[0], 'train', [vid])
  return root


def _payloads(path):
  return [d for _, _, d in tfrecord.read_records(path)]


def _edit_example(path, k, edit):
  """Re-frames shard `path` with record k's tf.Example changed by `edit` (checksums stay valid)."""
  payloads = _payloads(path)
  ex = protos.Example.FromString(payloads[k])
  edit(ex.features.feature)
  payloads[k] = ex.SerializeToString()
  tfrecord.write_records(path, payloads)


def _record_offset(path, k) -> int:
  """Byte offset of record k, walking the length fields (8-byte length, 4-byte crc, data, 4-byte crc)."""
  raw, offset = open(path, 'rb').read(), 0
  for _ in range(k):
    offset += 16 + int.from_bytes(raw[offset:offset + 8], 'little')
  return offset


def _bad_jpeg(feats):
  jpeg = bytearray(feats['image/encoded'].bytes_list.value[0])
  jpeg[1] ^= 0x01  # the SOI marker: no decoder recognises the bytes any more
  assert cv2.imdecode(np.frombuffer(bytes(jpeg), np.uint8), cv2.IMREAD_COLOR) is None
  feats['image/encoded'].bytes_list.value[0] = bytes(jpeg)


def _nan_keypoint(feats):
  feats['point_2d'].float_list.value[4] = float('nan')


def _zero_area(feats):
  values = feats['point_2d'].float_list.value
  for j in range(9):  # first instance: every keypoint on one vertical line
    values[3 * j] = 0.5


def _flip_payload_byte(path, k):
  pos = _record_offset(path, k) + 12 + 40
  raw = bytearray(open(path, 'rb').read())
  raw[pos] ^= 0x10
  open(path, 'wb').write(raw)


def _truncate(path, k):
  """Cuts the file in the middle of record k's payload."""
  cut = _record_offset(path, k) + 12 + 30
  raw = open(path, 'rb').read()
  open(path, 'wb').write(raw[:cut])


# name -> (damage(root), reason, regex of the 'raise' message, (video, frame) pairs lost)
CORRUPTIONS = {
    'bad_image': (lambda r: _edit_example(_shard(r, 0, 0), 1, _bad_jpeg), 'bad_image',
                  r"cup_train-00000-of-00002' record 1, video 'cup/batch-0/0' frame 2: image bytes",
                  [(0, 2)]),
    'nan_keypoints': (lambda r: _edit_example(_shard(r, 0, 0), 2, _nan_keypoint), 'nan_keypoints',
                      r"cup_train-00000-of-00002' record 2: key 'point_2d' contains NaN", [(0, 4)]),
    'missing_keypoints': (lambda r: _edit_example(_shard(r, 0, 0), 3, lambda f: f.pop('point_3d')),
                          'missing_keypoints',
                          r"cup_train-00000-of-00002' record 3: missing required key 'point_3d'",
                          [(0, 6)]),
    'zero_area_box': (lambda r: _edit_example(_shard(r, 0, 1), 0, _zero_area), 'zero_area_box',
                      r"cup_train-00001-of-00002' record 0, video 'cup/batch-0/0' frame 1: instance 0 "
                      'has a zero-area 2D box', [(0, 1)]),
    'checksum': (lambda r: _flip_payload_byte(_shard(r, 0, 1), 2), 'checksum',
                 r"cup_train-00001-of-00002' record 2 \(byte offset \d+\): data checksum", [(0, 5)]),
    'truncated_file': (lambda r: _truncate(_shard(r, 1, 0), 3), 'truncated_file',
                       r"shoe_train-00000-of-00002' record 3 \(byte offset \d+\): truncated record",
                       [(1, 6), (1, 8)]),
    'missing_file': (lambda r: os.remove(_shard(r, 2, 1)), 'missing_file',
                     r'book_train-00001-of-00002: shard of an -of-N set does not exist',
                     [(2, f) for f in (1, 3, 5, 7, 9)]),
    'missing_video': (lambda r: orec.write_index(r, 'cup', 'train', ['cup/batch-0/0', 'cup/batch-0/9']),
                      'missing_video', r"cup_annotations_train names video 'cup/batch-0/9'", []),
}
_ERRORS = {'missing_file': FileNotFoundError, 'missing_video': FileNotFoundError}


def _frames(store):
  """{(video index, frame id)} of a store (first-instance tracks are the videos)."""
  names = [name for name, _, _ in td.VIDEOS]
  return {(names.index(v['video_id']), f) for s in store.splits for v in store.videos(s)
          for f in v['frame_ids']}


ALL_FRAMES = {(v, f) for v, (_, n, _) in enumerate(td.VIDEOS) for f in range(n)}


@pytest.mark.parametrize('name', sorted(CORRUPTIONS))
def test_raise_names_file_and_record(tmp_path, name):
  damage, _, pattern, _ = CORRUPTIONS[name]
  root = make_root(tmp_path / 'root')
  damage(root)
  out = str(tmp_path / 'store')
  with pytest.raises(_ERRORS.get(name, tfrecord.RecordError), match=pattern):
    ingest.ingest_dataset(root, out, subsample=1, progress=False)
  assert not os.path.exists(out)  # never half-written: only <out>.partial exists
  with pytest.raises(FileNotFoundError):
    frame_store.open_store(out + '.partial')


def test_skip_counts_every_reason_and_keeps_the_rest(tmp_path):
  root = make_root(tmp_path / 'root')
  for damage, _, _, _ in CORRUPTIONS.values():
    damage(root)
  info = ingest.ingest_dataset(root, str(tmp_path / 'store'), subsample=1, on_bad_record='skip',
                               records_per_shard=4, progress=False)
  assert info.skip_counts == {reason: 1 for _, reason, _, _ in CORRUPTIONS.values()}
  lost = {vf for *_, frames in CORRUPTIONS.values() for vf in frames}
  store = frame_store.open_store(info.path)
  assert _frames(store) == ALL_FRAMES - lost
  assert info.num_kept == len(ALL_FRAMES - lost) == 21
  # Undecodable records (nan, missing key, checksum) and lost ones never reach the frame checks.
  assert info.num_seen == len(ALL_FRAMES) - 3 - 2 - 5 == 23
  # The report: per reason in index.json, each item in skipped.jsonl with its message.
  assert store.index['skipped'] == info.skip_counts and store.index['config']['on_bad_record'] == 'skip'
  with open(os.path.join(info.path, frame_store.SKIP_FILE)) as f:
    items = [json.loads(line) for line in f]
  for _, reason, pattern, _ in CORRUPTIONS.values():
    assert any(i['reason'] == reason and re.search(pattern, i['message']) for i in items)
  assert frame_store.StoreInfo.read(info.path) == info
  # Every kept frame decodes to its own annotations.
  for v in store.videos('train'):
    video = [name for name, _, _ in td.VIDEOS].index(v['video_id'])
    for f, r in zip(v['frame_ids'], v['records']):
      np.testing.assert_allclose(store['train', r]['point_2d'], td.make_record(video, f).point_2d[0],
                                 atol=1e-6)


def test_tolerant_record_reader(tmp_path):
  path = str(tmp_path / 'x')
  tfrecord.write_records(path, [b'a' * 50, b'b' * 50, b'c' * 50, b'd' * 50])
  _flip_payload_byte(path, 1)
  errors = []
  assert [d[:1] for _, _, d in tfrecord.read_records(path, on_error=errors.append)] == [b'a', b'c', b'd']
  _truncate(path, 2)
  errors.clear()
  assert [i for _, i, _ in tfrecord.read_records(path, on_error=errors.append)] == [0]
  assert [e.reason for e in errors] == ['checksum', 'truncated_file']
  assert all(path in str(e) for e in errors)
  with pytest.raises(tfrecord.RecordError, match='record 1'):
    list(tfrecord.read_records(path))


# ---------------------------------------------------------------------------------------- resume
class _Interrupt(Exception):
  pass


def _spy_sources(monkeypatch, fail_on: int | None = None):
  """Records which sources ingest reads; raises _Interrupt inside source number `fail_on`."""
  read, real = [], ingest._read_source

  def spy(root, fmt, source, on_error):
    read.append(os.path.basename(source))
    for k, item in enumerate(real(root, fmt, source, on_error)):
      if len(read) == fail_on and k == 2:
        raise _Interrupt(source)  # after some frames of this source were written
      yield item

  monkeypatch.setattr(ingest, '_read_source', spy)
  return read


def test_interrupted_ingest_resumes_to_the_same_store(tmp_path, monkeypatch):
  root = make_root(tmp_path / 'root')
  kwargs = dict(subsample=1, records_per_shard=4, val_fraction=0.5, seed=1, progress=False)
  reference = ingest.ingest_dataset(root, str(tmp_path / 'ref'), **kwargs)

  out = str(tmp_path / 'store')
  read = _spy_sources(monkeypatch, fail_on=2)
  with pytest.raises(_Interrupt):
    ingest.ingest_dataset(root, out, **kwargs)
  assert read == ['book_train-00000-of-00002', 'book_train-00001-of-00002']
  # The second source's frames went to a shard that no progress line lists: resuming deletes it.
  # book's one training video stays in train (the validation carve keeps a training video per class)
  assert sorted(os.listdir(os.path.join(out + '.partial', 'train'))) == [
      f'frames-0000{i}.array_record.tmp' for i in range(3)]
  progress = os.path.join(out + '.partial', store_writer.PROGRESS_FILE)
  assert len(open(progress).readlines()) == 2  # header + the first source
  with open(progress, 'a') as f:
    f.write('{"source": "torn')  # a crash in the middle of an append
  with pytest.raises(ingest_journal.JournalMismatchError, match='subsample'):
    ingest.ingest_dataset(root, out, **{**kwargs, 'subsample': 2})

  read = _spy_sources(monkeypatch)
  info = ingest.ingest_dataset(root, out, **kwargs)
  assert 'book_train-00000-of-00002' not in read and len(read) == 5  # the first file is not re-read
  assert not os.path.exists(out + '.partial')
  assert not os.path.exists(os.path.join(out, store_writer.PROGRESS_FILE))
  a, b = frame_store.open_store(reference.path), frame_store.open_store(out)
  assert a.index == b.index and set(a.splits) == {'train'}  # one video per class: nothing carved for val
  assert (info.num_seen, info.num_kept, info.splits) == (
      reference.num_seen, reference.num_kept, reference.splits)
  for split in a.splits:
    assert sorted(os.listdir(os.path.join(out, split))) == a.index['splits'][split]['shards']
    for i in range(a.num_frames(split)):
      assert a.raw(split, i) == b.raw(split, i)


# ------------------------------------------------------------------------------ instances, visibility
def _ingest(tmp_path, name, **options):
  return store_writer.ingest(td.all_records(), str(tmp_path / name), split_fn=td.split_fn,
                            subsample=2, **options)


def test_all_instances_become_tracks(tmp_path):
  info = _ingest(tmp_path, 'all', instances='all')
  store = frame_store.open_store(info.path)
  assert info.num_kept == 2 * 17 and info.dropped == {}
  tracks = [v['video_id'] for v in store.videos('train')]
  assert tracks == ['cup/batch-0/0#7', 'cup/batch-0/0#8', 'shoe/batch-0/1#7', 'shoe/batch-0/1#8']
  assert [v['video_id'] for v in store.videos('val')] == ['book/batch-1/2#7', 'book/batch-1/2#8']
  names = [name for name, _, _ in td.VIDEOS]
  for split in store.splits:
    for v in store.videos(split):
      video_id, instance = v['video_id'].split('#')
      i = int(instance) - 7
      assert v['instance_id'] == int(instance) and v['frame_ids'] == list(range(0, td.VIDEOS[
          names.index(video_id)][1], 2))
      for f, r in zip(v['frame_ids'], v['records']):
        rec = store[split, r]
        want = td.make_record(names.index(video_id), f)
        assert rec['video_id'] == v['video_id'] and rec['instance_id'] == int(instance)
        assert rec['visibility'] == pytest.approx(want.visibility[i])
        for key in ('point_2d', 'point_3d', 'translation', 'scale'):
          np.testing.assert_allclose(rec[key], getattr(want, key)[i], atol=1e-6)


def test_min_visibility_drops_and_counts(tmp_path):
  info = _ingest(tmp_path, 'all06', instances='all', min_visibility=0.6)  # visibilities 0.9, 0.5
  store = frame_store.open_store(info.path)
  assert info.num_kept == 17 and info.dropped == {'low_visibility': 17}
  assert all(v['video_id'].endswith('#7') for s in store.splits for v in store.videos(s))
  assert store.index['dropped'] == {'low_visibility': 17}
  info = _ingest(tmp_path, 'first05', min_visibility=0.5)
  assert info.num_kept == 17 and info.dropped == {}
  info = _ingest(tmp_path, 'first095', min_visibility=0.95)
  assert info.num_kept == 0 and info.dropped == {'low_visibility': 17} and info.splits == {}
  with pytest.raises(ValueError, match='instances'):
    _ingest(tmp_path, 'bad', instances='second')
  with pytest.raises(ValueError, match='min_visibility'):
    _ingest(tmp_path, 'bad2', min_visibility=1.5)


def test_all_instances_skip_only_the_bad_instance(tmp_path):
  rec = td.make_record(0, 0)
  rec.point_2d = rec.point_2d.copy()
  rec.point_2d[1, :, 1] = 0.3  # instance 8: every keypoint on one horizontal line
  with pytest.raises(frame_store.BadFrameError, match='frame 0: instance 1 has a zero-area'):
    store_writer.ingest([rec], str(tmp_path / 'a'), split_fn=td.split_fn, subsample=1, instances='all')
  info = store_writer.ingest([rec, td.make_record(0, 1)], str(tmp_path / 'b'), split_fn=td.split_fn,
                            subsample=1, instances='all', on_bad_record='skip')
  assert info.skip_counts == {'zero_area_box': 1} and info.num_kept == 3
  tracks = {v['video_id']: v['frame_ids'] for v in frame_store.open_store(info.path).videos('train')}
  assert tracks == {'cup/batch-0/0#7': [0, 1], 'cup/batch-0/0#8': [1]}
  # With 'all', an instance out of view (visibility 0) is no track even at min_visibility=0.
  hidden = td.make_record(0, 2)
  hidden.visibility = np.array([0.0, 0.5])
  info = store_writer.ingest([hidden], str(tmp_path / 'c'), split_fn=td.split_fn, subsample=1,
                            instances='all')
  assert info.dropped == {'low_visibility': 1} and info.num_kept == 1
  assert [v['video_id'] for v in frame_store.open_store(info.path).videos('train')] == ['cup/batch-0/0#8']


def test_prepare_store_passes_instances_and_visibility(tmp_path):
  root = make_root(tmp_path / 'root')
  data = base.get_base_config('distant', 'test').data
  assert (data.instances, data.min_visibility) == ('first', 0.0)
  data.root, data.cache_dir, data.subsample = root, str(tmp_path / 'cache'), 1
  keys = {ingest._store_key(root, data)}
  data.instances = 'all'
  keys.add(ingest._store_key(root, data))
  data.min_visibility = 0.6
  keys.add(ingest._store_key(root, data))
  assert len(keys) == 3
  store = frame_store.open_store(ingest.prepare_store(data))
  assert os.path.basename(store.path) == ingest._store_key(root, data)
  assert store.index['config']['instances'] == 'all' and store.index['config']['min_visibility'] == 0.6
  assert [v['video_id'] for v in store.videos('train')] == [
      'book/batch-1/2#7', 'cup/batch-0/0#7', 'shoe/batch-0/1#7']
  assert store.index['dropped'] == {'low_visibility': len(ALL_FRAMES)}


def test_raw_missing_video_file(tmp_path):
  from input_pipeline.formats import objectron_raw
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  root = str(tmp_path / 'root')
  synthetic.generate(root, videos_per_category=2, frames_per_video=2, instances_per_category=1,
                     test_fraction=0.5, seed=0, num_shards=1, categories=('cup',), formats=('raw',))
  video = orec.read_index(root, 'cup', 'train')[0]
  os.remove(objectron_raw.raw_paths(root, video)[1])
  with pytest.raises(tfrecord.RecordError, match=f"video '{video}': .*video.MOV: video file does not"):
    ingest.ingest_dataset(root, str(tmp_path / 'a'), fmt='raw', subsample=1, progress=False)
  info = ingest.ingest_dataset(root, str(tmp_path / 'b'), fmt='raw', subsample=1, on_bad_record='skip',
                               progress=False)
  assert info.skip_counts == {'missing_file': 1} and info.splits == {
      'test': {'num_frames': 2, 'num_videos': 1, 'num_shards': 1}}
