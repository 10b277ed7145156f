"""Grain training pipeline: determinism, per-process sharding, epochs, checkpoint/resume of the iterator."""
from __future__ import annotations

import numpy as np
import pytest
from absl import flags

from tests import _frame_store_testdata as td
from input_pipeline import augment
from input_pipeline import datasets
from input_pipeline import frame_store

SIZE = 16


@pytest.fixture(scope='module')
def store_path(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('ds_store'))
  frame_store.ingest(td.all_records(), path, split_fn=td.split_fn, subsample=1, records_per_shard=8)
  return path


def _batches(it, n):
  return [next(it) for _ in range(n)]


def _assert_same(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _ds(store_path, **kw):
  args = dict(pair_mode='nearby', image_size=SIZE, global_batch_size=4, seed=0)
  args.update(kw)
  return datasets.train_dataset(store_path, **args)


def test_batches_shapes_and_pairs(store_path):
  b = next(datasets.train_iterator(_ds(store_path)))
  assert b['view1'].shape == b['view2'].shape == (4, SIZE, SIZE, 3) and b['view1'].dtype == np.uint8
  for k in ('category', 'video', 'frame_id', 'partner_frame_id'):
    assert b[k].shape == (4,) and b[k].dtype == np.int32
  lengths = np.array([12, 10])[b['video']]  # cup, shoe
  want = np.where(b['frame_id'] + 1 < lengths, b['frame_id'] + 1, b['frame_id'] - 1)
  np.testing.assert_array_equal(b['partner_frame_id'], want)


def test_same_seed_same_batches_different_seed_differs(store_path):
  a = _batches(datasets.train_iterator(_ds(store_path)), 3)
  b = _batches(datasets.train_iterator(_ds(store_path), read_threads=0), 3)
  c = _batches(datasets.train_iterator(_ds(store_path, seed=1)), 3)
  for x, y in zip(a, b):
    _assert_same(x, y)
  assert any(not np.array_equal(x['view1'], z['view1']) for x, z in zip(a, c))


def test_epochs_cover_all_anchors_and_reshuffle(store_path):
  ds = _ds(store_path, global_batch_size=1, aug=augment.NO_AUG)
  n = 22  # train frames
  keys = [(int(ds[i]['video'][0]), int(ds[i]['frame_id'][0])) for i in range(2 * n)]
  assert len(set(keys[:n])) == n and len(set(keys[n:])) == n
  assert keys[:n] != keys[n:]
  tcn = _ds(store_path, pair_mode='tcn', global_batch_size=1, aug=augment.NO_AUG, num_epochs=1)
  # Anchors without a frame >= 3 away are dropped: none here (videos have 10 and 12 frames).
  assert len(tcn) == n and tcn[0]['view3'].shape == (1, SIZE, SIZE, 3)


def test_process_shards_partition_the_global_batch(store_path):
  whole = _ds(store_path, global_batch_size=4)
  parts = [_ds(store_path, global_batch_size=4, process_index=p, process_count=2) for p in range(2)]
  for step in range(3):
    g = whole[step]
    p0, p1 = parts[0][step], parts[1][step]
    assert p0['view1'].shape[0] == p1['view1'].shape[0] == 2
    # Process p holds global elements p, p+2, ...: the union is the single-process batch.
    for k in g:
      np.testing.assert_array_equal(g[k][0::2], p0[k], err_msg=k)
      np.testing.assert_array_equal(g[k][1::2], p1[k], err_msg=k)


def test_batch_must_divide_among_processes(store_path):
  with pytest.raises(ValueError, match='not a positive multiple of the process count 4'):
    _ds(store_path, global_batch_size=6, process_count=4)
  with pytest.raises(ValueError, match='process_index'):
    _ds(store_path, process_index=2, process_count=2)


@pytest.mark.parametrize('workers', [0, 2])
def test_iterator_state_round_trip(store_path, workers):
  if workers:
    flags.FLAGS.mark_as_parsed()
  ds = _ds(store_path)
  reference = _batches(datasets.train_iterator(ds), 6)  # uninterrupted, in-process
  it = datasets.train_iterator(ds, worker_count=workers)
  first = _batches(it, 3)
  state = it.get_state()
  following = _batches(it, 3)
  if workers:
    it.close()
  for x, y in zip(first + following, reference):
    _assert_same(x, y)  # worker processes do not change the batches
  resumed = datasets.train_iterator(_ds(store_path), worker_count=workers)
  resumed.set_state(state)
  for x, y in zip(_batches(resumed, 3), following):
    _assert_same(x, y)
  if workers:
    resumed.close()
