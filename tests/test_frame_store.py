"""Frame store: ingest (subsampling, first instance, shards, index last, bad frames), read-back, eval."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests import _frame_store_testdata as td
from input_pipeline.formats.frame_record import CATEGORIES
from input_pipeline.store import frame_store
from input_pipeline.store import writer as store_writer


@pytest.fixture(scope='module')
def store_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('store'))
  info = store_writer.ingest(td.all_records(), path, split_fn=td.split_fn, subsample=2,
                            records_per_shard=4)
  return path, info


def test_ingest_counts_shards_and_index(store_dir):
  path, info = store_dir
  # cup: 12 raw frames -> 0,2,..,10 (6); shoe: 10 -> 5; book (val): 11 -> 0..10 step 2 (6).
  assert info.num_seen == 33 and info.num_kept == 17 and info.num_skipped == 0
  assert info.splits == {'train': {'num_frames': 11, 'num_videos': 2, 'num_shards': 3},
                         'val': {'num_frames': 6, 'num_videos': 1, 'num_shards': 2}}
  assert sorted(os.listdir(os.path.join(path, 'train'))) == [
      f'frames-0000{i}-of-00003.array_record' for i in range(3)]
  store = frame_store.open_store(path)
  assert store.splits == ('train', 'val')
  assert store.num_frames('train') == 11 and store.num_frames('val') == 6
  videos = store.videos('train')
  assert [v['video_id'] for v in videos] == ['cup/batch-0/0', 'shoe/batch-0/1']
  assert videos[0]['frame_ids'] == [0, 2, 4, 6, 8, 10] and videos[1]['frame_ids'] == [0, 2, 4, 6, 8]
  assert videos[0]['category'] == CATEGORIES.index('cup') and videos[0]['instance_id'] == 7
  all_records = sorted(r for v in videos for r in v['records'])
  assert all_records == list(range(11))
  with pytest.raises(KeyError, match='no split'):
    store.num_frames('test')


def test_read_back_first_instance_annotations(store_dir):
  path, _ = store_dir
  store = frame_store.FrameStore(path)
  for split in store.splits:
    for v in store.videos(split):
      video = [name for name, _, _ in td.VIDEOS].index(v['video_id'])
      for frame_id, r in zip(v['frame_ids'], v['records']):
        rec = store[split, r]
        want = td.make_record(video, frame_id)
        assert rec['video_id'] == v['video_id'] and rec['frame_id'] == frame_id
        assert rec['timestamp_us'] == want.timestamp_us
        assert rec['category'] == CATEGORIES.index(want.category)
        assert rec['instance_id'] == 7 and rec['visibility'] == pytest.approx(0.9)
        for key in ('point_2d', 'point_3d', 'rotation', 'translation', 'scale'):
          np.testing.assert_allclose(rec[key], getattr(want, key)[0], rtol=1e-6, atol=1e-6)
          assert not np.allclose(rec[key], getattr(want, key)[1]) or key == 'rotation'
        for key in ('intrinsics', 'projection', 'view', 'extrinsics', 'plane_center', 'plane_normal'):
          np.testing.assert_allclose(rec[key], getattr(want, key), rtol=1e-6, atol=1e-6)
        assert rec['image'].shape == (td.HEIGHT, td.WIDTH, 3) and rec['image'].dtype == np.uint8
        expected = td.render(want.point_2d[0], td.VIDEOS[video][2], seed=video * 1000 + frame_id)
        assert np.abs(rec['image'].astype(int) - expected).mean() < 4  # two JPEG round trips


def test_decode_without_image_and_version_check(store_dir):
  path, _ = store_dir
  store = frame_store.FrameStore(path)
  raw = store.raw('val', 0)
  rec = frame_store.decode(raw, decode_image=False)
  assert isinstance(rec['image'], bytes) and rec['image'][:2] == b'\xff\xd8'
  rec['version'] = 99
  with pytest.raises(ValueError, match='version'):
    frame_store.decode(frame_store.encode(rec))


def test_image_scale_downscales(tmp_path):
  recs = [td.make_record(0, f) for f in range(3)]
  store_writer.ingest(recs, str(tmp_path), split_fn=lambda v: 'train', subsample=1, image_scale=0.5)
  rec = frame_store.FrameStore(str(tmp_path))['train', 0]
  assert rec['image'].shape == (td.HEIGHT // 2, td.WIDTH // 2, 3)
  assert (rec['image_width'], rec['image_height']) == (td.WIDTH // 2, td.HEIGHT // 2)


def test_index_written_last_and_missing_index_is_an_error(tmp_path, monkeypatch):
  seen = {}
  real_dump = json.dump

  def spy_dump(obj, f, *args, **kwargs):
    seen['files'] = sorted(os.listdir(tmp_path / 'train'))
    seen['index_present'] = (tmp_path / 'index.json').exists()
    return real_dump(obj, f, *args, **kwargs)

  monkeypatch.setattr(frame_store.json, 'dump', spy_dump)
  store_writer.ingest([td.make_record(0, f) for f in range(4)], str(tmp_path),
                     split_fn=lambda v: 'train', subsample=1, records_per_shard=2)
  assert seen == {'files': ['frames-00000-of-00002.array_record',
                            'frames-00001-of-00002.array_record'], 'index_present': False}
  frame_store.FrameStore(str(tmp_path))  # complete
  with pytest.raises(FileExistsError):
    store_writer.ingest([td.make_record(0, 0)], str(tmp_path), split_fn=lambda v: 'train')
  os.remove(tmp_path / 'index.json')
  with pytest.raises(FileNotFoundError, match='index.json missing'):
    frame_store.open_store(str(tmp_path))


def test_bad_frame_raises_naming_video_and_frame(tmp_path):
  recs = [td.make_record(0, 0), td.make_record(0, 1, nan=True), td.make_record(0, 2)]
  with pytest.raises(frame_store.BadFrameError, match=r"cup/batch-0/0.*frame 1.*NaN"):
    store_writer.ingest(recs, str(tmp_path), split_fn=lambda v: 'train', subsample=1)
  with pytest.raises(FileNotFoundError):  # the failed ingest left no index
    frame_store.open_store(str(tmp_path))
  # A bad frame that subsampling drops is never looked at.
  store_writer.ingest(recs, str(tmp_path / 'sub'), split_fn=lambda v: 'train', subsample=2)


def test_zero_area_box_and_skip_bad(tmp_path):
  flat = td.make_record(1, 2)
  flat.point_2d = flat.point_2d.copy()
  flat.point_2d[0, :, 0] = 0.5  # all keypoints on one vertical line
  recs = [td.make_record(1, 0), td.make_record(1, 1, nan=True), flat, td.make_record(1, 3)]
  with pytest.raises(ValueError, match=r"shoe/batch-0/1.*frame 2.*zero-area"):
    store_writer.ingest(recs[2:], str(tmp_path / 'a'), split_fn=lambda v: 'train', subsample=1)
  info = store_writer.ingest(recs, str(tmp_path / 'b'), split_fn=lambda v: 'train', subsample=1,
                            on_bad_record='skip')
  assert info.num_skipped == 2 and info.num_kept == 2
  assert info.skip_counts == {'nan_keypoints': 1, 'zero_area_box': 1}
  assert [s.reason for s in info.skipped] == ['nan_keypoints', 'zero_area_box']
  assert "'shoe/batch-0/1' frame 1" in info.skipped[0].message
  assert "'shoe/batch-0/1' frame 2" in info.skipped[1].message
  store = frame_store.FrameStore(str(tmp_path / 'b'))
  assert store.videos('train')[0]['frame_ids'] == [0, 3]
  assert store.index['skipped'] == {'nan_keypoints': 1, 'zero_area_box': 1}
  assert frame_store.StoreInfo.read(str(tmp_path / 'b')) == info


def test_bad_split_name_and_inconsistent_video(tmp_path):
  with pytest.raises(ValueError, match='not a plain name'):
    store_writer.ingest([td.make_record(0, 0)], str(tmp_path / 'a'), split_fn=lambda v: '../x')
  dup = [td.make_record(0, 0), td.make_record(0, 0)]
  with pytest.raises(ValueError, match='duplicate'):
    store_writer.ingest(dup, str(tmp_path / 'b'), split_fn=lambda v: 'train', subsample=1)


def test_eval_arrays_order_and_crops(store_dir):
  path, _ = store_dir
  store = frame_store.FrameStore(path)
  size = 40
  out = frame_store.eval_arrays(store, 'train', size)
  n = store.num_frames('train')
  assert out['image'].shape == (n, size, size, 3) and out['image'].dtype == np.uint8
  names = [name for name, _, _ in td.VIDEOS]
  assert list(out['video_ids']) == ['cup/batch-0/0', 'shoe/batch-0/1']
  assert list(out['video']) == [0] * 6 + [1] * 5
  assert list(out['frame_id']) == [0, 2, 4, 6, 8, 10, 0, 2, 4, 6, 8]
  assert (out['category'] == np.array([CATEGORIES.index('cup')] * 6 + [CATEGORIES.index('shoe')] * 5)).all()
  for i in range(n):
    video = names.index(str(out['video_ids'][out['video'][i]]))
    want = td.make_record(video, int(out['frame_id'][i]))
    np.testing.assert_allclose(out['point_2d'][i], want.point_2d[0], atol=1e-6)
    # The window is the keypoints' pixel box, rounded outwards.
    xy = want.point_2d[0, :, :2] * [td.WIDTH, td.HEIGHT]
    np.testing.assert_array_equal(out['window'][i], np.r_[np.floor(xy.min(0)), np.ceil(xy.max(0))])
    # The drawn rectangle fills the crop: its centre has the video's colour; padding is black.
    x0, y0, x1, y1 = out['window'][i]
    w, h = x1 - x0, y1 - y0
    img = out['image'][i].astype(int)
    np.testing.assert_allclose(img[size // 2, size // 2], td.VIDEOS[video][2], atol=30)
    pad = (size - round(min(w, h) * size / max(w, h))) // 2
    assert pad >= 2, 'test boxes are not square, so crops must be padded'
    edge = img[:pad] if w > h else img[:, :pad]
    assert edge.max() == 0
  threaded = frame_store.eval_arrays(store, 'train', size, num_threads=2)
  np.testing.assert_array_equal(out['image'], threaded['image'])
