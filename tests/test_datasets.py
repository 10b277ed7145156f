"""Grain training pipeline: determinism, per-process sharding, epochs, checkpoint/resume of the iterator."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from absl import flags

from siampose_jax.configs import distant
from input_pipeline.loader import augment
from input_pipeline.loader import datasets
from input_pipeline.loader import pairs
from input_pipeline.store import crops
from input_pipeline.store import writer as store_writer
from input_pipeline.store import frame_store
from tests import _frame_store_testdata as td

SIZE = 16


@pytest.fixture(scope='module')
def store_path(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('ds_store'))
  store_writer.ingest(td.all_records(), path, split_fn=td.split_fn, subsample=1, records_per_shard=8)
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


@pytest.mark.parametrize('workers,nice', [(0, 0), (2, 5)])
def test_iterator_state_round_trip(store_path, workers, nice):
  if workers:
    flags.FLAGS.mark_as_parsed()
  ds = _ds(store_path)
  reference = _batches(datasets.train_iterator(ds), 6)  # uninterrupted, in-process
  it = datasets.train_iterator(ds, worker_count=workers, worker_nice=nice)
  first = _batches(it, 3)
  state = it.get_state()
  following = _batches(it, 3)
  if workers:
    it.close()
  for x, y in zip(first + following, reference):
    _assert_same(x, y)  # worker processes do not change the batches
  resumed = datasets.train_iterator(_ds(store_path), worker_count=workers, worker_nice=nice)
  resumed.set_state(state)
  for x, y in zip(_batches(resumed, 3), following):
    _assert_same(x, y)
  if workers:
    resumed.close()


# ----------------------------------------------------------------------------------------- loader speed-ups
def _plain_pair(t: datasets.PairTransform, anchor: int, rng: np.random.Generator) -> dict:
  """The pair built the plain way (every frame fully decoded, windows from the decoded image, nothing
  shared): what PairTransform computed before it learnt to skip work."""
  records = t.sample(anchor, rng)
  frames = [t.store[t.split, r] for r in records]
  flip = bool(rng.random() < t.aug['flip_p'])
  out, window = {}, None
  for i, frame in enumerate(frames):
    if window is None or t.per_frame_window:
      window = crops.crop_window(frame['point_2d'], frame['image'].shape[:2], t.margin)
    crop = crops.crop_and_resize(frame['image'], window, t.image_size)
    out[f'view{i + 1}'] = augment.augment_view(crop, rng, t.image_size, flip, t.aug)
  return out


@pytest.mark.parametrize('mode', pairs.PAIR_MODES)
@pytest.mark.parametrize('per_frame_window', [False, True])
def test_pair_views_bit_identical_to_plain_composition(store_path, mode, per_frame_window):
  store = frame_store.FrameStore(store_path)
  t = datasets.PairTransform(store, 'train', mode, SIZE, margin=0.3, per_frame_window=per_frame_window)
  for anchor in range(0, 22, 3):
    got = t.random_map(anchor, np.random.default_rng(anchor))
    want = _plain_pair(t, anchor, np.random.default_rng(anchor))
    for k in want:
      np.testing.assert_array_equal(got[k], want[k], err_msg=f'{mode} anchor {anchor} {k}')


def test_jpeg_reduction_keeps_the_window_at_least_image_size():
  assert datasets.jpeg_reduction((0, 0, 100, 50), 64) == 1   # 100 < 2 * 64
  assert datasets.jpeg_reduction((0, 0, 100, 50), 50) == 2
  assert datasets.jpeg_reduction((0, 0, 100, 50), 25) == 4   # 100 >= 4 * 25, < 8 * 25
  assert datasets.jpeg_reduction((-5, 0, 5, 200), 20) == 8   # height counts, 200 >= 160
  assert datasets.jpeg_reduction((0, 0, 3, 3), 64) == 1


def test_decode_jpeg_rgb_and_reduced_sizes():
  img = np.random.default_rng(0).integers(0, 256, (45, 61, 3), np.uint8)
  data = cv2.imencode('.jpg', img)[1].tobytes()
  buf = np.frombuffer(data, np.uint8)
  np.testing.assert_array_equal(frame_store.decode_jpeg(data),
                                cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
  for f, flag in ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
                  (8, cv2.IMREAD_REDUCED_COLOR_8)):
    got = frame_store.decode_jpeg(data, reduce=f)
    assert got.shape[:2] == frame_store.reduced_shape((45, 61), f) == (-(-45 // f), -(-61 // f))
    np.testing.assert_array_equal(got, cv2.imdecode(buf, flag)[..., ::-1])
  with pytest.raises(ValueError, match='reduction 3'):
    frame_store.decode_jpeg(data, 'here', reduce=3)
  with pytest.raises(frame_store.BadFrameError, match='here: image bytes do not decode'):
    frame_store.decode_jpeg(b'not a jpeg', 'here')


def test_decode_reduced_crops_the_smaller_jpeg(store_path):
  store = frame_store.FrameStore(store_path)
  size, reductions = 8, set()
  for margin in (0.0, 0.8, 1.5):
    t = datasets.PairTransform(store, 'train', 'same_frame', size, margin=margin, aug=augment.NO_AUG,
                            decode_reduced=True)
    full = datasets.PairTransform(store, 'train', 'same_frame', size, margin=margin, aug=augment.NO_AUG)
    for anchor in range(0, 22, 2):
      frame = frame_store.decode(store.raw('train', anchor), decode_image=False)
      x0, y0, x1, y1 = crops.crop_window(frame['point_2d'], (td.HEIGHT, td.WIDTH), margin)
      f = max(f for f in (1, 2, 4) if max(x1 - x0, y1 - y0) >= f * size)
      reductions.add(f)
      flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}[f]
      small = cv2.imdecode(np.frombuffer(frame['image'], np.uint8), flag)[..., ::-1]
      window = crops.crop_window(frame['point_2d'], small.shape[:2], margin)
      want = crops.crop_and_resize(small, window, size)
      got = t.random_map(anchor, np.random.default_rng(0))
      np.testing.assert_array_equal(got['view1'], want)  # NO_AUG: the view is the crop
      np.testing.assert_array_equal(got['view2'], want)
      # Same content as the full-size decode, up to resampling and the window's rounding in the
      # smaller image (up to a pixel there: 4 px of the full image, half a pixel of an 8 px crop).
      ref = full.random_map(anchor, np.random.default_rng(0))['view1'].astype(float)
      np.testing.assert_allclose(got['view1'].mean((0, 1)), ref.mean((0, 1)), atol=25)
  assert reductions == {1, 2, 4}


def test_record_image_size_mismatch_names_the_record(store_path, monkeypatch):
  store = frame_store.FrameStore(store_path)
  rec = frame_store.decode(store.raw('train', 0), decode_image=False)
  rec['image_height'] = td.HEIGHT - 4
  bad = frame_store.encode(rec)
  monkeypatch.setattr(store, 'raw', lambda split, index: bad)
  t = datasets.PairTransform(store, 'train', 'same_frame', SIZE)
  with pytest.raises(frame_store.BadFrameError, match=r"split 'train' record 0: JPEG decodes to 48x64"):
    t.random_map(0, np.random.default_rng(0))


def test_config_dataset_and_iterator_follow_the_config(store_path):
  config = distant.get_config('test')
  config.data.update(image_size=SIZE, decode_reduced=True, read_threads=1, prefetch=2)
  got = next(datasets.config_iterator(datasets.config_dataset(config, store_path), config.data))
  want = datasets.train_dataset(store_path, pair_mode='distant', image_size=SIZE,
                                global_batch_size=config.batch_size, seed=config.seed,
                                decode_reduced=True)[0]
  _assert_same(got, want)
  config.data.worker_nice = 20
  with pytest.raises(ValueError, match='worker_nice=20'):
    datasets.config_iterator(datasets.config_dataset(config, store_path), config.data)


def test_config_aug_margin_and_window_reach_the_pairs(store_path):
  """config.data.aug / crop_margin / per_frame_window change the batches exactly as the
  corresponding train_dataset arguments do; aug values are validated by augment.aug_config."""
  config = distant.get_config('test')
  config.data.update(image_size=SIZE, crop_margin=0.25, per_frame_window=True)
  config.data.aug.update(hue=0.2, grayscale_p=0.0, crop_scale=(0.5, 1.0))
  got = datasets.config_dataset(config, store_path)[0]
  aug = dict(augment.DEFAULT_AUG, hue=0.2, grayscale_p=0.0, crop_scale=(0.5, 1.0))
  want = datasets.train_dataset(store_path, pair_mode='distant', image_size=SIZE,
                                global_batch_size=config.batch_size, seed=config.seed, aug=aug,
                                margin=0.25, per_frame_window=True)[0]
  _assert_same(got, want)
  default = distant.get_config('test')
  default.data.image_size = SIZE
  assert not np.array_equal(datasets.config_dataset(default, store_path)[0]['view1'], got['view1'])
  config.lock()  # as main.py's config flag does: an unknown key is an error naming it
  with pytest.raises(AttributeError, match='blur'):
    config.data.aug.blur = 0.5
