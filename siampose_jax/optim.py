"""Optimiser and learning-rate schedule (the reference's, docs/metrics.md), written out explicitly.

SGD with momentum and coupled weight decay (as torch.optim.SGD), the learning rate scaled linearly with the
batch size, linear warm-up then cosine decay to zero over `total_steps`. The predictor keeps a constant
learning rate (SimSiam's `fix_pred_lr`), times `optim.predictor_lr_scale` (an ablation knob, default 1).
"""
from __future__ import annotations

import flax
import ml_collections
import optax


def learning_rate(config: ml_collections.ConfigDict, batch_size: int) -> float:
  return config.optim.base_lr * batch_size / config.optim.base_batch_size


def schedule(config: ml_collections.ConfigDict, batch_size: int, total_steps: int) -> optax.Schedule:
  peak = learning_rate(config, batch_size)
  warmup = int(config.optim.warmup_steps)
  if warmup >= total_steps:
    raise ValueError(f'optim.warmup_steps={warmup} must be smaller than total_steps={total_steps}')
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else peak, peak_value=peak, warmup_steps=warmup, decay_steps=total_steps,
      end_value=0.0)


def make_optimizer(config: ml_collections.ConfigDict, batch_size: int, total_steps: int):
  """Returns (optax transformation, schedule of the backbone+projector learning rate)."""
  sched = schedule(config, batch_size, total_steps)

  def sgd(lr):
    return optax.chain(
        optax.add_decayed_weights(config.optim.weight_decay),
        optax.sgd(lr, momentum=config.optim.momentum))

  scale = config.optim.predictor_lr_scale
  if config.optim.constant_predictor_lr:
    pred_lr = learning_rate(config, batch_size) * scale
  elif scale != 1.0:
    pred_lr = lambda step: sched(step) * scale
  else:  # one schedule for every parameter
    return sgd(sched), sched

  def labels(params):
    flat = flax.traverse_util.flatten_dict(params)
    return flax.traverse_util.unflatten_dict(
        {k: 'predictor' if k[0] in ('predictor', 'predictor2') else 'rest' for k in flat})

  tx = optax.multi_transform(
      {'rest': sgd(sched), 'predictor': sgd(pred_lr)}, labels)
  return tx, sched
