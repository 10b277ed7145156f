"""Train state and the jitted, mesh-sharded train step: SimSiam, or the NT-Xent / TCN baselines."""
from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from siampose_jax import device_augment, objectives, optim, sharding
from siampose_jax.models import simsiam


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


OBJECTIVES = ('simsiam', 'dual_simsiam', 'ntxent', 'tcn')


@dataclasses.dataclass(frozen=True)
class Objective:
  """The loss on the per-view network outputs, and the batch views it takes (tcn: anchor, positive,
  negative; dual_simsiam: anchor, nearby and distant partners). NT-Xent and TCN act on the projector
  output z, as in the reference; dual_simsiam is SimSiam with one head on nearby pairs and the other on
  distant ones (the combined model)."""
  name: str = 'simsiam'
  temperature: float = 0.5   # ntxent
  margin: float = 0.2        # tcn

  @property
  def views(self) -> tuple[str, ...]:
    return ('view1', 'view2', 'view3') if self.name in ('tcn', 'dual_simsiam') else ('view1', 'view2')

  def __call__(self, outs: list[dict]) -> jax.Array:
    if self.name == 'ntxent':
      return objectives.ntxent_loss(outs[0]['z'], outs[1]['z'], self.temperature)
    if self.name == 'tcn':
      return objectives.triplet_loss(outs[0]['z'], outs[1]['z'], outs[2]['z'], self.margin)
    if self.name == 'dual_simsiam':
      return 0.5 * (objectives.simsiam_loss(outs[0]['p'], outs[1]['p'], outs[0]['z'], outs[1]['z'])
                    + objectives.simsiam_loss(outs[0]['p2'], outs[2]['p2'], outs[0]['z2'], outs[2]['z2']))
    return objectives.simsiam_loss(outs[0]['p'], outs[1]['p'], outs[0]['z'], outs[1]['z'])


def make_objective(config) -> Objective:
  """From `config.objective`; a config written before the baselines existed has none and is SimSiam."""
  o = config.get('objective')
  if o is None:
    return Objective()
  if o.name not in OBJECTIVES:
    raise ValueError(f'config.objective.name={o.name!r}: expected one of {OBJECTIVES}')
  for objective, pair_mode in (('tcn', 'tcn'), ('dual_simsiam', 'nearby_distant')):
    if (o.name == objective) != (config.data.pair_mode == pair_mode):
      raise ValueError(f'config.objective.name={o.name!r} with config.data.pair_mode='
                       f'{config.data.pair_mode!r}: the {objective} objective and {pair_mode} pairs go together')
  if (o.name == 'dual_simsiam') != (config.model.get('heads', 1) == 2):
    raise ValueError(f'config.objective.name={o.name!r} with config.model.heads={config.model.get("heads", 1)}: '
                     'the dual_simsiam objective trains a model with 2 heads')
  return Objective(o.name, float(o.ntxent_temperature), float(o.triplet_margin))


def make_model(config) -> simsiam.SimSiam:
  m = config.model
  dtype = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}.get(m.dtype)
  if dtype is None:
    raise ValueError(f'config.model.dtype={m.dtype!r}: expected float32 or bfloat16')
  return simsiam.SimSiam(backbone=m.backbone, width=m.width, stem=m.stem, proj_dim=m.proj_dim,
                         pred_hidden=m.pred_hidden, dtype=dtype,
                         use_predictor=make_objective(config).name in ('simsiam', 'dual_simsiam'),
                         heads=m.get('heads', 1), split_feature=m.get('split_feature', False))


def init_state(model, tx: optax.GradientTransformation, rng, image_size: int, mesh: Mesh) -> TrainState:
  """Initialises replicated parameters directly on the mesh (jit with replicated out_shardings)."""

  def init(rng):
    variables = model.init(rng, jnp.zeros((2, image_size, image_size, 3), model.dtype), train=True)
    params = variables['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables['batch_stats'], opt_state=tx.init(params))

  return jax.jit(init, out_shardings=sharding.replicated(mesh))(rng)


def template_state(config, model, mesh: Mesh, seed: int = 0) -> TrainState:
  """A freshly initialised state with the structure of `config`'s training state: the target to restore
  a checkpoint into (evaluation, encoder loading), or random-init weights for the random baseline."""
  tx, _ = optim.make_optimizer(config, config.batch_size,
                               max(config.total_steps, config.optim.warmup_steps + 1))
  return init_state(model, tx, jax.random.key(seed), config.data.image_size, mesh)


def train_step(state: TrainState, batch: dict, *, model, tx, objective: Objective = Objective(),
               augment: device_augment.DeviceAugment | None = None) -> tuple[TrainState, dict]:
  """One update. Each view goes through the network separately, as in the reference, so BatchNorm
  statistics are per view over the global batch (the batch axis is sharded; XLA inserts the
  cross-device reductions), and the loss sees global arrays (NT-Xent's negatives span the global batch).
  With `augment` (config.data.augment_on_device) the views are cropped only, and get their colour jitter,
  grayscale and pair flip here, keyed by the state's step."""
  missing = [k for k in objective.views if k not in batch]
  if missing:
    raise ValueError(f'the {objective.name} objective needs batch keys {objective.views}; missing {missing}')
  views = [batch[k] for k in objective.views]
  if augment is not None:
    views = augment(views, state.step)
  xs = [simsiam.preprocess(v, model.dtype) for v in views]

  def loss_fn(params):
    batch_stats, outs = state.batch_stats, []
    for x in xs:
      out, upd = model.apply({'params': params, 'batch_stats': batch_stats}, x, train=True,
                             mutable=['batch_stats'])
      batch_stats = upd['batch_stats']
      outs.append(out)
    return objective(outs), (batch_stats, outs[0]['z'])

  (loss, (batch_stats, z1)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(loss=loss, z_std=objectives.embedding_std(z1), grad_norm=optax.tree.norm(grads))
  new_state = TrainState(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
  return new_state, metrics


def jit_train_step(model, tx, mesh: Mesh, max_traces: int = 1, objective: Objective = Objective(),
                   augment: device_augment.DeviceAugment | None = None):
  """The step jitted over the mesh: state replicated, batch sharded on `data`, state buffers donated;
  `augment` (default none: the host did it all) is traced into the same program.

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
    return train_step(state, batch, model=model, tx=tx, objective=objective, augment=augment)

  return jax.jit(step, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=(0,))
