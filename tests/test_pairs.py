"""Pair/triplet sampling rules and the PairTransform (windows, shared flip, outputs)."""
from __future__ import annotations

import collections

import numpy as np
import pytest

from tests import _frame_store_testdata as td
from input_pipeline.loader import augment
from input_pipeline.loader import datasets
from input_pipeline.loader import pairs
from input_pipeline.store import crops
from input_pipeline.store import frame_store
from input_pipeline.store import writer as store_writer


@pytest.fixture(scope='module')
def store(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('pairs_store'))
  store_writer.ingest(td.all_records(), path, split_fn=td.split_fn, subsample=1)
  return frame_store.FrameStore(path)


@pytest.fixture(scope='module')
def index(store):
  return pairs.VideoIndex.from_store(store, 'train')


def _frame(store, record):
  rec = frame_store.decode(store.raw('train', record), decode_image=False)
  return rec['video_id'], rec['frame_id']


def test_video_index_matches_records(store, index):
  assert len(index) == store.num_frames('train') == 22
  for r in range(len(index)):
    vid, fid = _frame(store, r)
    assert store.videos('train')[index.record_video[r]]['video_id'] == vid
    assert index.record_position[r] == fid  # subsample=1: position == frame id


def test_same_frame_and_nearby(store, index):
  rng = np.random.default_rng(0)
  for a in range(len(index)):
    assert pairs.partner_index(index, a, 'same_frame', rng) == a
    vid, fid = _frame(store, a)
    n = len(index.video_records[index.record_video[a]])
    for offset in (1, 2):
      pvid, pfid = _frame(store, pairs.partner_index(index, a, 'nearby', rng, offset))
      assert pvid == vid
      assert pfid == (fid + offset if fid + offset < n else fid - offset)
  with pytest.raises(ValueError, match='unknown pair mode'):
    pairs.partner_index(index, 0, 'far', rng)


def test_nearby_position_reflects_and_clamps():
  assert [pairs.nearby_position(p, 5, 1) for p in range(5)] == [1, 2, 3, 4, 3]
  assert [pairs.nearby_position(p, 5, 3) for p in range(5)] == [3, 4, 0, 0, 1]
  assert pairs.nearby_position(0, 1, 1) == 0 and pairs.nearby_position(1, 2, 4) == 0


def test_distant_is_uniform_within_the_video(store, index):
  rng = np.random.default_rng(1)
  a = int(index.video_records[0][3])
  vid, _ = _frame(store, a)
  counts = collections.Counter(pairs.partner_index(index, a, 'distant', rng) for _ in range(1200))
  assert set(counts) == set(index.video_records[0].tolist())  # every frame of the video, no other
  expected = 1200 / len(index.video_records[0])
  assert all(abs(c - expected) < 0.4 * expected for c in counts.values())
  assert all(_frame(store, p)[0] == vid for p in counts)


def test_mixed_is_nearby_or_distant_half_the_time(store, index):
  a = int(index.video_records[0][3])
  nearby = pairs.partner_index(index, a, 'nearby', np.random.default_rng(0))
  records = index.video_records[0]
  rng = np.random.default_rng(3)
  draws = [pairs.partner_index(index, a, 'mixed', rng) for _ in range(2000)]
  assert set(draws) == set(records.tolist())
  # Half the draws are the nearby partner; of the distant half, 1/len(records) land on it too.
  share = np.mean(np.asarray(draws) == nearby)
  assert abs(share - (0.5 + 0.5 / len(records))) < 0.04


def test_tcn_triplets(store, index):
  rng = np.random.default_rng(2)
  for a in range(len(index)):
    vid, fid = _frame(store, a)
    positives, negatives = set(), set()
    for _ in range(40):
      anchor, pos, neg = pairs.tcn_triplet(index, a, rng)
      assert anchor == a
      (pv, pf), (nv, nf) = _frame(store, pos), _frame(store, neg)
      assert pv == nv == vid and abs(pf - fid) == 1 and abs(nf - fid) >= 3
      positives.add(pf)
      negatives.add(nf)
    n = len(index.video_records[index.record_video[a]])
    assert positives == {f for f in (fid - 1, fid + 1) if 0 <= f < n}
    assert len(negatives) >= min(5, n - 5)


def test_tcn_without_negative_raises():
  idx = pairs.VideoIndex.from_videos([{'records': [0, 1, 2, 3, 4]}])
  assert pairs.has_tcn_negative(idx, 0) and not pairs.has_tcn_negative(idx, 2)
  with pytest.raises(ValueError, match='no TCN negative'):
    pairs.tcn_triplet(idx, 2, np.random.default_rng(0))


def test_pair_transform_uses_the_first_frames_window(store, index):
  size = 24
  a = int(index.video_records[0][2])
  b = int(index.video_records[0][3])
  fa, fb = store['train', a], store['train', b]
  win_a = crops.crop_window(fa['point_2d'], fa['image'].shape[:2])
  win_b = crops.crop_window(fb['point_2d'], fb['image'].shape[:2])
  assert win_a != win_b  # the box moves between frames
  t = datasets.PairTransform(store, 'train', 'nearby', size, aug=augment.NO_AUG)
  out = t.random_map(a, np.random.default_rng(0))
  np.testing.assert_array_equal(out['view1'], crops.crop_and_resize(fa['image'], win_a, size))
  np.testing.assert_array_equal(out['view2'], crops.crop_and_resize(fb['image'], win_a, size))
  assert not np.array_equal(out['view2'], crops.crop_and_resize(fb['image'], win_b, size))
  assert (out['frame_id'], out['partner_frame_id']) == (2, 3)
  assert out['video'] == 0 and out['category'] == fa['category']
  t = datasets.PairTransform(store.path, 'train', 'nearby', size, aug=augment.NO_AUG, per_frame_window=True)
  out = t.random_map(a, np.random.default_rng(0))
  np.testing.assert_array_equal(out['view2'], crops.crop_and_resize(fb['image'], win_b, size))


def test_pair_transform_shares_the_flip_and_augments_independently(store):
  aug = dict(augment.NO_AUG, flip_p=0.5)
  t = datasets.PairTransform(store, 'train', 'same_frame', 16, aug=aug)
  plain = datasets.PairTransform(store, 'train', 'same_frame', 16, aug=augment.NO_AUG).random_map(
      5, np.random.default_rng(0))['view1']
  flips = 0
  for seed in range(40):
    out = t.random_map(5, np.random.default_rng(seed))
    np.testing.assert_array_equal(out['view1'], out['view2'])
    flipped = np.array_equal(out['view1'], plain[:, ::-1])
    assert flipped or np.array_equal(out['view1'], plain)
    flips += flipped
  assert 8 < flips < 32
  t = datasets.PairTransform(store, 'train', 'same_frame', 16)  # default (reference) augmentation
  out = t.random_map(5, np.random.default_rng(0))
  assert out['view1'].shape == (16, 16, 3) and out['view1'].dtype == np.uint8
  assert not np.array_equal(out['view1'], out['view2'])


def test_pair_transform_tcn_outputs(store, index):
  t = datasets.PairTransform(store, 'train', 'tcn', 16, aug=augment.NO_AUG)
  out = t.random_map(int(index.video_records[1][0]), np.random.default_rng(0))
  assert set(out) == {'view1', 'view2', 'view3', 'category', 'video', 'frame_id',
                      'partner_frame_id', 'third_frame_id'}
  assert out['frame_id'] == 0 and out['partner_frame_id'] == 1 and out['third_frame_id'] >= 3
  # nearby_distant: the nearby partner second, a uniformly drawn one of the same video third.
  t = datasets.PairTransform(store, 'train', 'nearby_distant', 16, aug=augment.NO_AUG)
  thirds = set()
  for seed in range(30):
    out = t.random_map(int(index.video_records[1][0]), np.random.default_rng(seed))
    assert out['frame_id'] == 0 and out['partner_frame_id'] == 1 and out['view3'].shape == (16, 16, 3)
    thirds.add(int(out['third_frame_id']))
  assert len(thirds) > 3
  with pytest.raises(ValueError, match='unknown pair mode'):
    datasets.PairTransform(store, 'train', 'far', 16)
