"""Device augmentation (siampose_jax/device_augment.py) against the host version it replaces: the same maths
given the same parameters, the same statistics over many draws, keys that follow the train step and not the
device count, and a training run with it that resumes bit-identically."""
from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from siampose_jax.configs import distant, ucf101_distant
from input_pipeline.loader import augment, datasets
from input_pipeline.store import crops, frame_store
from input_pipeline.store import writer as store_writer
from siampose_jax import checkpointing, optim, sharding, train
from siampose_jax import device_augment as da
from siampose_jax import step as step_lib
from tests import _frame_store_testdata as td
from tests import runs
from tests.test_step import random_batch, tiny_config

HOST_OPS = (augment.adjust_brightness, augment.adjust_contrast, augment.adjust_saturation, augment.adjust_hue)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601, written out: independent of both modules


def _images(n, size=8, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _params(n, *, flip=False, jitter=False, order=None, factors=None, gray=False):
  """Explicit parameters in `sample_params`' layout (neutral by default: no change at all)."""
  return dict(flip=np.broadcast_to(np.asarray(flip), (n,)).copy(),
              jitter=np.broadcast_to(np.asarray(jitter), (n,)).copy(),
              order=np.tile(np.arange(4, dtype=np.int32), (n, 1)) if order is None else np.int32(order),
              factors=(np.tile(np.float32([1, 1, 1, 0]), (n, 1)) if factors is None
                       else np.float32(factors)),
              gray=np.broadcast_to(np.asarray(gray), (n,)).copy())


def _reference(images, params):
  """The float views built one example at a time from the host's ops (cv2's HSV for the hue), each in
  its own order, an op skipped as the host skips one of strength 0 (hue shift exactly 0)."""
  p = jax.device_get(params)
  out = []
  for i, img in enumerate(images):
    x = (img[:, ::-1] if p['flip'][i] else img).astype(np.float32) * np.float32(1 / 255)
    if p['jitter'][i]:
      for k in p['order'][i]:
        if k != da.HUE or p['factors'][i, k] != 0:
          x = HOST_OPS[k](x, float(p['factors'][i, k]))
    if p['gray'][i]:
      x = np.repeat((x @ LUMA)[..., None], 3, axis=-1)
    out.append(x)
  return np.stack(out)


_apply_float = jax.jit(da.apply_float)
_apply = jax.jit(da.apply)


# ----------------------------------------------------------------------------------------- maths
@pytest.mark.parametrize('op', range(4))
def test_each_op_alone_matches_the_host_op(op):
  n = 12
  rng = np.random.default_rng(op)
  factors = np.tile(np.float32([1, 1, 1, 0]), (n, 1))
  factors[:, op] = rng.uniform(-0.5, 0.5, n) if op == da.HUE else rng.uniform(0.0, 1.8, n)
  order = np.array([[op] + [k for k in range(4) if k != op]] * n)
  images = _images(n, seed=op)
  p = _params(n, jitter=True, order=order, factors=factors)
  got = np.asarray(_apply_float(images, p))
  np.testing.assert_allclose(got, _reference(images, p), atol=1e-5)
  if op != da.HUE:  # the neutral factors of the other positions really are the identity
    want = np.stack([HOST_OPS[op](img.astype(np.float32) / 255, f) for img, f in zip(images, factors[:, op])])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_random_orders_and_the_composition_match_the_reference():
  n = 48
  aug = da.DeviceAugment(brightness=0.6, contrast=0.6, saturation=0.6, hue=0.3, jitter_p=0.7,
                         grayscale_p=0.3)  # strong: clipping and order matter
  p = jax.device_get(da.sample_params(jax.random.key(1), n, 1, aug)[0])
  assert all(sorted(o) == [0, 1, 2, 3] for o in p['order'])
  assert len({tuple(o) for o in p['order']}) > 15  # many of the 24 permutations
  assert 0 < p['jitter'].sum() < n and 0 < p['gray'].sum() < n and 0 < p['flip'].sum() < n
  images = _images(n, seed=2)
  want = _reference(images, p)
  np.testing.assert_allclose(np.asarray(_apply_float(images, p)), want, atol=1e-5)
  # Rounded once, as on the host: at most 1 level apart where a value sits on a rounding boundary.
  got8 = np.asarray(_apply(images, p)).astype(int)
  want8 = np.clip(np.rint(want * 255), 0, 255).astype(int)
  assert np.abs(got8 - want8).max() <= 1 and (got8 != want8).mean() < 1e-3


def test_order_changes_the_result():
  """Brightness then contrast is not contrast then brightness once clipping acts: the order is applied."""
  images = _images(2, seed=3)
  factors = np.float32([[1.8, 0.3, 1, 0]] * 2)
  p = _params(2, jitter=True, factors=factors, order=[[0, 1, 2, 3], [1, 0, 2, 3]])
  got = np.asarray(_apply_float(np.concatenate([images[:1], images[:1]]), p))
  assert np.abs(got[0] - got[1]).max() > 0.05
  np.testing.assert_allclose(got, _reference(np.concatenate([images[:1], images[:1]]), p), atol=1e-5)


def test_grayscale_flip_and_the_identity():
  n = 6
  images = _images(n, seed=4)
  np.testing.assert_array_equal(np.asarray(_apply(images, _params(n))), images)
  np.testing.assert_array_equal(np.asarray(_apply(images, _params(n, flip=True))), images[:, :, ::-1])
  p = _params(n, gray=[True, False] * 3)
  got = np.asarray(_apply_float(images, p))
  np.testing.assert_allclose(got, _reference(images, p), atol=1e-5)
  assert (got[0] == got[0, ..., :1]).all() and not (got[1] == got[1, ..., :1]).all()


def test_flip_is_shared_by_the_views_of_a_pair():
  params = da.sample_params(jax.random.key(0), 64, 3, da.DeviceAugment())
  flips = [np.asarray(p['flip']) for p in params]
  assert all((f == flips[0]).all() for f in flips) and 0 < flips[0].sum() < 64
  assert not (np.asarray(params[0]['factors']) == np.asarray(params[1]['factors'])).all()


# ----------------------------------------------------------------------------------------- statistics
def _test_image(size=8, seed=5):
  """Bright warm left half, dark blue right half (with noise): a flip shows in which half is brighter,
  whatever the colour ops did, and no jittered view has equal channels unless it is grayscale."""
  rng = np.random.default_rng(seed)
  img = np.empty((size, size, 3), np.float32)
  img[:, :size // 2] = [220, 160, 90]
  img[:, size // 2:] = [40, 60, 110]
  return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def _summary(views):
  """Per-view quantities of uint8 views [n, H, W, 3]: channel means [n, 3], squared deviations from the
  pooled channel means [n, 3] (their mean is the pixel variance), grayscale? [n], flipped? [n]."""
  v = views.astype(np.float64)
  half = v.shape[2] // 2
  means = v.mean(axis=(1, 2))
  sq_dev = ((v - means.mean(axis=0)) ** 2).mean(axis=(1, 2))
  gray = (v[..., 0] == v[..., 1]).all(axis=(1, 2)) & (v[..., 1] == v[..., 2]).all(axis=(1, 2))
  flipped = v[:, :, :half].mean(axis=(1, 2, 3)) < v[:, :, half:].mean(axis=(1, 2, 3))
  return means, sq_dev, gray, flipped


def test_statistics_match_the_host_augmentation():
  """Same crop (the host's crop step set to the identity), many draws: the per-channel mean and std of the
  pixels and the grayscale and flip rates agree within 5 standard errors of their difference (from the
  per-view spread; the std's by the delta method), and the rates are the configured ones."""
  n, size = 4000, 8
  img = _test_image(size)
  host_aug = dict(augment.DEFAULT_AUG, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
  rng = np.random.default_rng(0)
  host = np.stack([augment.augment_view(img, rng, size, bool(rng.random() < host_aug['flip_p']), host_aug)
                   for _ in range(n)])
  aug = da.DeviceAugment.from_aug(host_aug, seed=0)
  device = np.asarray(jax.jit(lambda x: aug([x], 7)[0])(np.repeat(img[None], n, axis=0)))
  (hm, hq, hg, hf), (dm, dq, dg, df) = _summary(host), _summary(device)
  for name, h, d in (('mean', hm, dm), ('grayscale', hg, dg), ('flip', hf, df)):
    h, d = h.astype(np.float64), d.astype(np.float64)
    se = np.sqrt(h.var(axis=0) / n + d.var(axis=0) / n)
    assert (np.abs(h.mean(axis=0) - d.mean(axis=0)) < 5 * se + 1e-9).all(), (name, h.mean(0), d.mean(0), se)
  h_std, d_std = np.sqrt(hq.mean(axis=0)), np.sqrt(dq.mean(axis=0))
  se = np.sqrt((hq.std(axis=0) / (2 * h_std)) ** 2 / n + (dq.std(axis=0) / (2 * d_std)) ** 2 / n)
  assert (np.abs(h_std - d_std) < 5 * se).all(), ('std', h_std, d_std, se)
  assert abs(dg.mean() - 0.2) < 0.03 and abs(df.mean() - 0.5) < 0.04  # ~5 SE of a rate over 4000 views


# ----------------------------------------------------------------------------------------- keys
def test_key_is_the_step_folded_into_the_seed():
  aug = da.DeviceAugment(seed=3)
  want = jax.random.key_data(jax.random.fold_in(jax.random.key(3), 5))
  np.testing.assert_array_equal(jax.random.key_data(aug.key(5)), want)
  views = [_images(8, seed=6), _images(8, seed=7)]
  fn = jax.jit(lambda v, s: aug(v, s))
  a, b, c = fn(views, 5), fn(views, 5), fn(views, 6)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert any((np.asarray(x) != np.asarray(y)).any() for x, y in zip(a, c))
  other_seed = jax.jit(lambda v, s: da.DeviceAugment(seed=4)(v, s))(views, 5)
  assert any((np.asarray(x) != np.asarray(y)).any() for x, y in zip(a, other_seed))


@pytest.mark.parametrize('partitionable', [True, False])
def test_eight_devices_augment_like_one(partitionable):
  """Global-shape draws: each example's parameters are bit-identical whatever the mesh (either threefry
  mode), and so are its views (a different program could round a value to the next level: at most 1)."""
  assert jax.device_count() >= 8, 'tests/conftest.py fakes 8 CPU devices'
  aug = da.DeviceAugment(seed=1)
  views = {'view1': _images(16, seed=8), 'view2': _images(16, seed=9)}
  params, outs = [], []
  with jax.threefry_partitionable(partitionable):
    for n_devices in (1, 8):
      mesh = sharding.make_mesh(n_devices)
      data, rep = sharding.batch_sharding(mesh), sharding.replicated(mesh)
      sample = jax.jit(lambda s: da.sample_params(aug.key(s), 16, 2, aug), out_shardings=data)
      params.append(jax.device_get(sample(np.int32(11))))
      fn = jax.jit(lambda v, s: aug([v['view1'], v['view2']], s), in_shardings=(data, rep), out_shardings=data)
      out = fn(sharding.shard_batch(views, mesh), np.int32(11))
      if n_devices == 8:
        assert len(out[0].addressable_shards) == 8
      outs.append(jax.device_get(out))
  for one, eight in zip(jax.tree.leaves(params[0]), jax.tree.leaves(params[1]), strict=True):
    np.testing.assert_array_equal(one, eight)
  for one, eight in zip(*outs):
    diff = np.abs(one.astype(int) - eight)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


# ----------------------------------------------------------------------------------------- wiring
def test_config_flag_per_preset():
  assert distant.get_config().data.augment_on_device is True
  assert distant.get_config('cpu').data.augment_on_device is False
  assert distant.get_config('test').data.augment_on_device is False
  assert da.from_config(distant.get_config('test')) is None
  c = ucf101_distant.get_config()
  c.seed = 4
  assert da.from_config(c) == da.DeviceAugment(seed=4, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)


@pytest.fixture(scope='module')
def store_path(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('devaug_store'))
  store_writer.ingest(td.all_records(), path, split_fn=td.split_fn, subsample=1)
  return path


def test_host_loader_only_crops_when_augmenting_on_device(store_path):
  """Views are the random resized crops alone (no flip draw, no colour): the plain composition."""
  size = 16
  t = datasets.PairTransform(frame_store.FrameStore(store_path), 'train', 'nearby', size,
                             augment_on_device=True)
  for anchor in range(0, 20, 4):
    got = t.random_map(anchor, np.random.default_rng(anchor))
    rng = np.random.default_rng(anchor)
    frames = [t.store[t.split, r] for r in t.sample(anchor, rng)]
    window = crops.crop_window(frames[0]['point_2d'], frames[0]['image'].shape[:2], t.margin)
    for i, frame in enumerate(frames):
      crop = crops.crop_and_resize(frame['image'], window, size)
      want = augment.random_resized_crop(crop, rng, size, t.aug['crop_scale'], t.aug['crop_ratio'])
      np.testing.assert_array_equal(got[f'view{i + 1}'], want, err_msg=f'anchor {anchor} view{i + 1}')


def test_step_augments_on_device_and_compiles_once():
  """The step's loss is the plain step's on the views augmented beforehand with the key of the state's
  step; the augmented step is traced once and refuses a new shape."""
  config = tiny_config()
  mesh = sharding.make_mesh(2)
  model = step_lib.make_model(config)
  tx, _ = optim.make_optimizer(config, 16, 100)
  host_state = jax.device_get(step_lib.init_state(model, tx, jax.random.key(0), 16, mesh))
  aug = da.DeviceAugment(seed=2)
  batch = random_batch(16)
  plain = step_lib.jit_train_step(model, tx, mesh)
  pre = dict(zip(('view1', 'view2'), jax.device_get(jax.jit(aug)([batch['view1'], batch['view2']], 0))))
  _, m_pre = plain(sharding.replicate(host_state, mesh), sharding.shard_batch(pre, mesh))
  _, m_raw = plain(sharding.replicate(host_state, mesh), sharding.shard_batch(batch, mesh))
  step = step_lib.jit_train_step(model, tx, mesh, augment=aug)
  state = sharding.replicate(host_state, mesh)
  for i in range(3):
    state, m = step(state, sharding.shard_batch(random_batch(16, seed=i), mesh))
    if i == 0:  # another program: a view value may round to the next uint8 level, hence the tolerances
      np.testing.assert_allclose(float(m['loss']), float(m_pre['loss']), atol=1e-5)
      np.testing.assert_allclose(float(m['grad_norm']), float(m_pre['grad_norm']), rtol=1e-4)
      assert abs(float(m_raw['loss']) - float(m_pre['loss'])) > 1e-2  # far from the un-augmented views'
      assert abs(float(m_raw['grad_norm']) - float(m_pre['grad_norm'])) > 0.1
  assert int(state.step) == 3 and np.isfinite(float(m['loss']))
  with pytest.raises(AssertionError, match='trace'):
    step(state, sharding.shard_batch(random_batch(8), mesh))


def test_training_with_device_augmentation_resumes_bit_identically(cache_dir, tmp_path, monkeypatch):
  """The `test` preset with augment_on_device: one run of 4 steps, and one preempted after step 2 then
  rerun (in process: the notice is faked), end with bit-identical states and losses. Each run's step is
  traced once (jit_train_step's guard would raise otherwise)."""
  def config():
    c = runs.short_config(cache_dir, total_steps=4, monitor_every_steps=100)
    c.data.augment_on_device = True
    return c

  ref_dir, run_dir = str(tmp_path / 'ref'), str(tmp_path / 'run')
  train.train_and_evaluate(config(), ref_dir)
  with monkeypatch.context() as m:
    m.setattr(checkpointing.PreemptionNotice, 'reached', lambda self, step: step == 2)
    out = train.train_and_evaluate(config(), run_dir)
  assert out['metrics']['preempted_at_step'] == 2 and runs.checkpoint_steps(run_dir) == [2]
  train.train_and_evaluate(config(), run_dir)
  got, step = runs.checkpoint(run_dir)
  want, ref_step = runs.checkpoint(ref_dir)
  assert step == ref_step == 4
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_array_equal(a, b)

  def losses(workdir):
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
      return {r['step']: r['loss'] for r in map(json.loads, f) if 'loss' in r}
  assert losses(run_dir) == losses(ref_dir) and sorted(losses(ref_dir)) == [1, 2, 3, 4]
