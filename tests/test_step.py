"""The SimSiam objective, optimiser and the mesh-sharded train step."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from siampose_jax.configs import combined, distant, ntxent, tcn
from siampose_jax import objectives, optim, sharding
from siampose_jax import step as step_lib
from siampose_jax.models import resnet, simsiam

IMAGE = 16


def tiny_config(**optim_overrides):
  c = distant.get_config('test')
  c.model.update(width=4, proj_dim=16, pred_hidden=8)
  c.optim.update(**optim_overrides)
  return c


def random_batch(n, seed=0, views=('view1', 'view2')):
  rng = np.random.default_rng(seed)
  return {k: rng.integers(0, 256, (n, IMAGE, IMAGE, 3), dtype=np.uint8) for k in views}


def test_negative_cosine_matches_numpy():
  rng = np.random.default_rng(0)
  p, z = rng.normal(size=(2, 5, 7))
  want = -np.mean(np.sum(p * z, -1) / np.linalg.norm(p, axis=-1) / np.linalg.norm(z, axis=-1))
  np.testing.assert_allclose(objectives.negative_cosine(p, z), want, rtol=1e-5)
  assert float(objectives.negative_cosine(p, p)) == pytest.approx(-1.0, abs=1e-6)


def test_stop_gradient_on_targets():
  rng = np.random.default_rng(1)
  p1, p2, z1, z2 = (jnp.asarray(a) for a in rng.normal(size=(4, 6, 8)))
  g = jax.grad(objectives.simsiam_loss, argnums=(0, 1, 2, 3))(p1, p2, z1, z2)
  assert np.all(np.asarray(g[2]) == 0) and np.all(np.asarray(g[3]) == 0)
  assert np.abs(np.asarray(g[0])).sum() > 0 and np.abs(np.asarray(g[1])).sum() > 0
  # Without the stop-gradient the same loss would send gradient into the targets.
  plain = lambda z: -jnp.mean(jnp.sum(p1 * z, -1) / jnp.linalg.norm(p1, axis=-1) / jnp.linalg.norm(z, axis=-1))
  assert np.abs(np.asarray(jax.grad(plain)(z2))).sum() > 0


def test_backbone_feature_dims():
  for name, width, want in (('resnet18', 64, 512), ('resnet50', 64, 2048), ('tiny', 16, 128)):
    model = resnet.make_backbone(name, width, 'imagenet')
    shapes = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x, train=False)[0],
                            jnp.zeros((1, 64, 64, 3)))
    assert shapes.shape == (1, want) == (1, resnet.feature_dim(name, width))


def test_schedule_warmup_cosine_and_constant_predictor_lr():
  c = tiny_config(base_lr=0.1, base_batch_size=64, warmup_steps=10, weight_decay=0.0, momentum=0.0)
  tx, sched = optim.make_optimizer(c, batch_size=128, total_steps=110)
  peak = 0.1 * 128 / 64
  assert float(sched(0)) == pytest.approx(0.0)
  assert float(sched(5)) == pytest.approx(peak * 0.5)
  assert float(sched(10)) == pytest.approx(peak)
  assert float(sched(60)) == pytest.approx(peak * 0.5 * (1 + np.cos(np.pi * 50 / 100)), rel=1e-5)
  assert float(sched(110)) == pytest.approx(0.0, abs=1e-7)
  for i, updates in enumerate(_unit_grad_updates(tx, 7)):
    # plain SGD (momentum 0, no decay): update = -lr * grad
    assert float(updates['encoder']['w'][0]) == pytest.approx(-float(sched(i)), abs=1e-7)
    assert float(updates['predictor']['w'][0]) == pytest.approx(-peak, rel=1e-6)


def _unit_grad_updates(tx, steps):
  """The updates of `tx` for `steps` steps of gradient 1 on an encoder and a predictor parameter."""
  params = {'encoder': {'w': jnp.ones(3)}, 'predictor': {'w': jnp.ones(3)}}
  grads = jax.tree.map(jnp.ones_like, params)
  opt_state = tx.init(params)
  for _ in range(steps):
    updates, opt_state = tx.update(grads, opt_state, params)
    yield updates


@pytest.mark.parametrize('constant', [True, False])
def test_predictor_lr_scale(constant):
  c = tiny_config(base_lr=0.1, base_batch_size=64, warmup_steps=10, weight_decay=0.0, momentum=0.0,
                  constant_predictor_lr=constant, predictor_lr_scale=10.0)
  tx, sched = optim.make_optimizer(c, batch_size=64, total_steps=110)
  for i, updates in enumerate(_unit_grad_updates(tx, 12)):
    assert float(updates['encoder']['w'][0]) == pytest.approx(-float(sched(i)), abs=1e-7)
    pred_lr = 0.1 if constant else float(sched(i))
    assert float(updates['predictor']['w'][0]) == pytest.approx(-10.0 * pred_lr, rel=1e-5, abs=1e-7)


def test_weight_decay_and_momentum_match_torch_sgd_formula():
  c = tiny_config(base_lr=0.1, base_batch_size=64, warmup_steps=0, weight_decay=0.01, momentum=0.9,
                  constant_predictor_lr=False)
  tx, sched = optim.make_optimizer(c, batch_size=64, total_steps=1000)
  w = jnp.array([2.0])
  params, buf, want = {'w': w}, 0.0, 2.0
  opt_state = tx.init(params)
  for i in range(3):
    g = jnp.array([0.5])
    updates, opt_state = tx.update({'w': g}, opt_state, params)
    params = optax.apply_updates(params, updates)
    d = 0.5 + 0.01 * want          # torch: d_p = grad + wd * p; buf = momentum * buf + d_p; p -= lr * buf
    buf = 0.9 * buf + d
    want = want - float(sched(i)) * buf
    assert float(params['w'][0]) == pytest.approx(want, rel=1e-5)


def _init(config, mesh, total_steps=100):
  model = step_lib.make_model(config)
  tx, _ = optim.make_optimizer(config, 16, total_steps)
  return model, tx, step_lib.init_state(model, tx, jax.random.key(0), IMAGE, mesh)


def test_sharded_step_matches_single_device():
  assert jax.device_count() >= 8, 'tests/conftest.py fakes 8 CPU devices'
  config = tiny_config()
  mesh1, mesh8 = sharding.make_mesh(1), sharding.make_mesh(8)
  model, tx, state1 = _init(config, mesh1)
  state8 = sharding.replicate(jax.device_get(state1), mesh8)
  batch = random_batch(16)
  step1 = step_lib.jit_train_step(model, tx, mesh1)
  step8 = step_lib.jit_train_step(model, tx, mesh8)
  for i in range(2):
    b = random_batch(16, seed=i)
    state1, m1 = step1(state1, sharding.shard_batch(b, mesh1))
    state8, m8 = step8(state8, sharding.shard_batch(b, mesh8))
    np.testing.assert_allclose(m1['loss'], m8['loss'], rtol=1e-4, atol=1e-5)
  assert batch['view1'].shape[0] % 8 == 0
  leaves1 = jax.tree.leaves(jax.device_get((state1.params, state1.batch_stats)))
  leaves8 = jax.tree.leaves(jax.device_get((state8.params, state8.batch_stats)))
  for a, b in zip(leaves1, leaves8):
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
  # The batch axis really is split across the 8 devices.
  arr = sharding.shard_batch(batch, mesh8)['view1']
  assert len(arr.addressable_shards) == 8 and arr.addressable_shards[0].data.shape[0] == 2


def test_batch_stats_cover_the_global_batch():
  """BatchNorm running means after one step must equal those computed on the whole batch at once."""
  config = tiny_config()
  mesh8 = sharding.make_mesh(8)
  model, tx, state = _init(config, mesh8)
  before = jax.device_get(state.batch_stats)
  params = jax.device_get(state.params)  # fetched before the step donates the state's buffers
  b = random_batch(16, seed=3)
  new, _ = step_lib.jit_train_step(model, tx, mesh8)(state, sharding.shard_batch(b, mesh8))
  stem_mean = jax.device_get(new.batch_stats)['encoder']['stem_norm']['mean']
  # Recompute the stem conv output of view1 on the host and its batch mean over all 16 images.
  from siampose_jax.models import simsiam
  x = simsiam.preprocess(b['view1'])
  kernel = params['encoder']['stem_conv']['kernel']
  y = jax.lax.conv_general_dilated(x, kernel, (2, 2), [(1, 1)] * 2, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  mean1 = np.asarray(y).mean(axis=(0, 1, 2))
  x2 = simsiam.preprocess(b['view2'])
  y2 = jax.lax.conv_general_dilated(x2, kernel, (2, 2), [(1, 1)] * 2, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  mean2 = np.asarray(y2).mean(axis=(0, 1, 2))
  m0 = before['encoder']['stem_norm']['mean']
  want = 0.9 * (0.9 * m0 + 0.1 * mean1) + 0.1 * mean2  # view1 then view2 update the running mean
  np.testing.assert_allclose(stem_mean, want, rtol=1e-4, atol=1e-5)


def test_step_compiles_once_and_rejects_retrace():
  config = tiny_config()
  mesh = sharding.make_mesh(2)
  model, tx, state = _init(config, mesh)
  step = step_lib.jit_train_step(model, tx, mesh)
  for i in range(3):
    state, m = step(state, sharding.shard_batch(random_batch(16, seed=i), mesh))
  assert int(state.step) == 3 and np.isfinite(float(m['loss']))
  with pytest.raises(AssertionError, match='trace'):
    step(state, sharding.shard_batch(random_batch(8), mesh))  # a new shape would recompile


def test_batch_not_divisible_by_devices_is_a_clear_error():
  with pytest.raises(ValueError, match='batch_size=12 is not divisible by the 8 devices'):
    sharding.check_batch_size(12, sharding.make_mesh(8))


def test_bad_config_values_are_named():
  c = tiny_config()
  c.model.dtype = 'float16x'
  with pytest.raises(ValueError, match='model.dtype'):
    step_lib.make_model(c)
  with pytest.raises(ValueError, match='model.backbone'):
    resnet.make_backbone('resnet7')
  with pytest.raises(ValueError, match='warmup_steps'):
    optim.make_optimizer(tiny_config(warmup_steps=50), 16, 10)


def baseline_config(module, **optim_overrides):
  c = module.get_config('test')
  c.model.update(width=4, proj_dim=16)
  c.optim.update(**optim_overrides)
  return c


def test_ntxent_sharded_step_is_the_global_batch_loss():
  """8 devices give the 1-device step, and its loss is NT-Xent over all 2N crops (not per device)."""
  config = baseline_config(ntxent)
  objective = step_lib.make_objective(config)
  assert (objective.name, objective.temperature) == ('ntxent', 0.5)
  mesh1, mesh8 = sharding.make_mesh(1), sharding.make_mesh(8)
  model, tx, state1 = _init(config, mesh1)
  assert 'predictor' not in state1.params and not model.use_predictor
  state8 = sharding.replicate(jax.device_get(state1), mesh8)
  # The loss recomputed from the two views' projector outputs over the whole batch at once.
  host = jax.device_get((state1.params, state1.batch_stats))
  b = random_batch(16, seed=5)
  outs, stats = [], host[1]
  for k in ('view1', 'view2'):
    out, upd = model.apply({'params': host[0], 'batch_stats': stats}, simsiam.preprocess(b[k]), train=True,
                           mutable=['batch_stats'])
    stats = upd['batch_stats']
    outs.append(np.asarray(out['z']))
  want = float(objectives.ntxent_loss(outs[0], outs[1], 0.5))
  per_device = np.mean([float(objectives.ntxent_loss(outs[0][i:i + 2], outs[1][i:i + 2], 0.5))
                        for i in range(0, 16, 2)])
  assert abs(want - per_device) > 1e-2  # so matching `want` really shows the global batch
  step1 = step_lib.jit_train_step(model, tx, mesh1, objective=objective)
  step8 = step_lib.jit_train_step(model, tx, mesh8, objective=objective)
  for i in range(2):
    b = random_batch(16, seed=5 + i)
    state1, m1 = step1(state1, sharding.shard_batch(b, mesh1))
    state8, m8 = step8(state8, sharding.shard_batch(b, mesh8))
    if i == 0:
      assert float(m8['loss']) == pytest.approx(want, rel=1e-4)
    np.testing.assert_allclose(m1['loss'], m8['loss'], rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree.leaves(jax.device_get((state1.params, state1.batch_stats))),
                  jax.tree.leaves(jax.device_get((state8.params, state8.batch_stats)))):
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


def test_tcn_step_uses_three_views_and_learns_a_fixed_batch():
  config = baseline_config(tcn, base_lr=0.05, warmup_steps=0)
  objective = step_lib.make_objective(config)
  assert objective.views == ('view1', 'view2', 'view3') and objective.margin == 0.2
  mesh = sharding.make_mesh(2)
  model, tx, state = _init(config, mesh)
  step = step_lib.jit_train_step(model, tx, mesh, objective=objective)
  b = random_batch(16, seed=7, views=('view1', 'view2', 'view3'))
  b['view2'] = np.clip(b['view1'].astype(int) + 20, 0, 255).astype(np.uint8)  # positives near anchors
  losses = []
  for _ in range(8):
    state, m = step(state, sharding.shard_batch(b, mesh))
    losses.append(float(m['loss']))
  assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0], losses
  with pytest.raises(ValueError, match='view3'):
    step_lib.train_step(state, random_batch(16), model=model, tx=tx, objective=objective)


def test_dual_simsiam_is_one_simsiam_loss_per_head_on_its_own_half():
  """The combined model's loss is the mean of SimSiam on (anchor, nearby) through head 1 and on (anchor,
  distant) through head 2; with a split feature each head reads only its half of the backbone feature."""
  config = baseline_config(combined)
  objective = step_lib.make_objective(config)
  assert objective.views == ('view1', 'view2', 'view3')
  mesh = sharding.make_mesh(1)
  model, tx, state = _init(config, mesh)
  d = resnet.feature_dim(config.model.backbone, config.model.width)
  assert model.embedding_slices() == (slice(0, d // 2), slice(d // 2, None))
  for head in ('projector', 'projector2'):  # each head's first layer reads half of the feature
    assert state.params[head]['Dense_0']['kernel'].shape[0] == d // 2
  assert set(state.params) == {'encoder', 'projector', 'predictor', 'projector2', 'predictor2'}
  b = random_batch(8, seed=9, views=objective.views)
  host = jax.device_get((state.params, state.batch_stats))
  outs, stats = [], host[1]
  for k in objective.views:
    out, upd = model.apply({'params': host[0], 'batch_stats': stats}, simsiam.preprocess(b[k]), train=True,
                           mutable=['batch_stats'])
    stats = upd['batch_stats']
    outs.append(jax.device_get(out))
  want = 0.5 * (float(objectives.simsiam_loss(outs[0]['p'], outs[1]['p'], outs[0]['z'], outs[1]['z']))
                + float(objectives.simsiam_loss(outs[0]['p2'], outs[2]['p2'], outs[0]['z2'], outs[2]['z2'])))
  _, metrics = step_lib.jit_train_step(model, tx, mesh, objective=objective)(state, sharding.shard_batch(b, mesh))
  assert float(metrics['loss']) == pytest.approx(want, rel=1e-5)
  # Head 1 does not see the identity half: changing it leaves z unchanged.
  feature = jnp.asarray(np.random.default_rng(0).normal(size=(4, d)), jnp.float32)
  moved = feature.at[:, d // 2:].add(1.0)
  z = lambda f: model.apply({'params': host[0], 'batch_stats': host[1]}, f[:, :d // 2], train=False,
                            method=lambda m, x, train: m.projector(x, train=train))
  np.testing.assert_allclose(z(feature), z(moved))
  # The second predictor keeps the constant learning rate too (at step 0 the others' warm-up rate is 0).
  config.optim.update(warmup_steps=5, momentum=0.0, weight_decay=0.0)
  tx, sched = optim.make_optimizer(config, batch_size=64, total_steps=10)
  params = {k: {'w': jnp.ones(2)} for k in ('encoder', 'projector', 'predictor', 'projector2', 'predictor2')}
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
  constant = optim.learning_rate(config, 64)
  assert float(sched(0)) == 0.0
  for k, lr in (('predictor', constant), ('predictor2', constant), ('projector2', 0.0), ('encoder', 0.0)):
    assert float(updates[k]['w'][0]) == pytest.approx(-lr), k


def test_objective_config_errors_and_old_configs():
  c = baseline_config(tcn)
  c.data.pair_mode = 'nearby'
  with pytest.raises(ValueError, match="objective.name='tcn'.*pair_mode='nearby'"):
    step_lib.make_model(c)
  c = baseline_config(ntxent)
  c.data.pair_mode = 'tcn'
  with pytest.raises(ValueError, match="objective.name='ntxent'"):
    step_lib.make_objective(c)
  c.objective.name = 'byol'
  with pytest.raises(ValueError, match='objective.name'):
    step_lib.make_objective(c)
  c = baseline_config(combined)
  c.model.heads = 1
  with pytest.raises(ValueError, match='2 heads'):
    step_lib.make_objective(c)
  c = baseline_config(combined)
  c.data.pair_mode = 'distant'
  with pytest.raises(ValueError, match='nearby_distant'):
    step_lib.make_objective(c)
  # A workdir config.json from before the baselines has no `objective`: SimSiam with its predictor.
  old = ml_collections.ConfigDict(tiny_config().to_dict())
  del old['objective']
  assert step_lib.make_objective(old).name == 'simsiam' and step_lib.make_model(old).use_predictor


def test_optimizer_without_predictor_params():
  """The constant-predictor-lr multi_transform still works when the model has no predictor."""
  c = baseline_config(ntxent, constant_predictor_lr=True, base_lr=0.1, warmup_steps=0, weight_decay=0.0,
                      momentum=0.0)
  tx, sched = optim.make_optimizer(c, batch_size=64, total_steps=10)
  params = {'encoder': {'w': jnp.ones(3)}, 'projector': {'w': jnp.ones(2)}}
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
  assert float(updates['projector']['w'][0]) == pytest.approx(-float(sched(0)), rel=1e-6)
