"""Train state and the jitted, mesh-sharded SimSiam train step."""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from siampose_jax import objectives, sharding
from siampose_jax.models import simsiam


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def make_model(config) -> simsiam.SimSiam:
  m = config.model
  dtype = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}.get(m.dtype)
  if dtype is None:
    raise ValueError(f'config.model.dtype={m.dtype!r}: expected float32 or bfloat16')
  return simsiam.SimSiam(backbone=m.backbone, width=m.width, stem=m.stem, proj_dim=m.proj_dim,
                         pred_hidden=m.pred_hidden, dtype=dtype)


def init_state(model, tx: optax.GradientTransformation, rng, image_size: int, mesh: Mesh) -> TrainState:
  """Initialises replicated parameters directly on the mesh (jit with replicated out_shardings)."""

  def init(rng):
    variables = model.init(rng, jnp.zeros((2, image_size, image_size, 3), model.dtype), train=True)
    params = variables['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables['batch_stats'], opt_state=tx.init(params))

  return jax.jit(init, out_shardings=sharding.replicated(mesh))(rng)


def train_step(state: TrainState, batch: dict, *, model, tx) -> tuple[TrainState, dict]:
  """One SimSiam update. Each view goes through the network separately, as in the reference, so
  BatchNorm statistics are per view over the global batch (the batch axis is sharded; XLA inserts the
  cross-device reductions)."""
  x1 = simsiam.preprocess(batch['view1'], model.dtype)
  x2 = simsiam.preprocess(batch['view2'], model.dtype)

  def loss_fn(params):
    variables = {'params': params, 'batch_stats': state.batch_stats}
    out1, upd = model.apply(variables, x1, train=True, mutable=['batch_stats'])
    variables = {'params': params, 'batch_stats': upd['batch_stats']}
    out2, upd = model.apply(variables, x2, train=True, mutable=['batch_stats'])
    loss = objectives.simsiam_loss(out1['p'], out2['p'], out1['z'], out2['z'])
    return loss, (upd['batch_stats'], out1['z'])

  (loss, (batch_stats, z1)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(loss=loss, z_std=objectives.embedding_std(z1), grad_norm=optax.tree.norm(grads))
  new_state = TrainState(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
  return new_state, metrics


def jit_train_step(model, tx, mesh: Mesh, max_traces: int = 1):
  """The step jitted over the mesh: state replicated, batch sharded on `data`, state buffers donated.

  A trace counter (per returned function, unlike `chex.assert_max_traces`, which counts per code object)
  turns an accidental retrace (a shape or dtype drifting between batches, which would silently recompile
  every step) into an error.
  """
  rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  traces = [0]

  def step(state, batch):
    traces[0] += 1
    if traces[0] > max_traces:
      raise AssertionError(f'the train step is being traced again ({traces[0]} traces): batch shapes or '
                           f'dtypes changed, got {jax.tree.map(lambda x: (x.shape, x.dtype), batch)}')
    return train_step(state, batch, model=model, tx=tx)

  return jax.jit(step, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=(0,))
