"""Accelerator correctness check of the train step (run on a GPU/TPU machine; prints JSON, exits non-zero on
failure): the same step on the accelerator and on the host CPU agree (fp32), bf16 compute stays close to fp32
and trains (loss falls on a fixed batch), and the step compiles once.

  python -m bench.gpu_check
"""
from __future__ import annotations

import json
import sys

import jax
import numpy as np
from jax.sharding import Mesh

from siampose_jax.configs import distant
from siampose_jax import optim, sharding
from siampose_jax import step as step_lib

IMAGE, BATCH = 64, 32


def _setup(dtype, mesh):
  c = distant.get_config('cpu')
  c.model.dtype = dtype
  model = step_lib.make_model(c)
  tx, _ = optim.make_optimizer(c, BATCH, 100)
  state = step_lib.init_state(model, tx, jax.random.key(0), IMAGE, mesh)
  return state, step_lib.jit_train_step(model, tx, mesh)


def _max_rel_diff(a, b):
  la, lb = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))
  return max(float(np.max(np.abs(x - y)) / (np.max(np.abs(x)) + 1e-12)) for x, y in zip(la, lb))


def main():
  accel = jax.devices()
  cpu = jax.devices('cpu')[:1]
  out = {'device': accel[0].device_kind, 'platform': accel[0].platform, 'num_devices': len(accel)}
  rng = np.random.default_rng(0)
  batches = [{k: rng.integers(0, 256, (BATCH, IMAGE, IMAGE, 3), dtype=np.uint8) for k in ('view1', 'view2')}
             for _ in range(3)]
  meshes = {'accel': sharding.make_mesh(), 'cpu': Mesh(np.asarray(cpu), (sharding.DATA_AXIS,))}
  with jax.default_matmul_precision('highest'):
    results = {}
    for name, mesh in meshes.items():
      state, step = _setup('float32', mesh)
      losses = []
      for b in batches:
        state, m = step(state, sharding.shard_batch(b, mesh))
        losses.append(float(m['loss']))
      results[name] = (losses, state.params)
  out['fp32_losses_accel'], out['fp32_losses_cpu'] = results['accel'][0], results['cpu'][0]
  out['fp32_loss_max_abs_diff'] = float(np.max(np.abs(np.subtract(results['accel'][0], results['cpu'][0]))))
  out['fp32_params_max_rel_diff'] = _max_rel_diff(results['accel'][1], results['cpu'][1])

  mesh = meshes['accel']
  state32, step32 = _setup('float32', mesh)
  state16, step16 = _setup('bfloat16', mesh)
  fixed = sharding.shard_batch(batches[0], mesh)
  _, m32 = step32(state32, fixed)
  losses16 = []
  for _ in range(20):
    state16, m16 = step16(state16, fixed)
    losses16.append(float(m16['loss']))
  out['bf16_first_loss'], out['fp32_first_loss'] = losses16[0], float(m32['loss'])
  out['bf16_losses'] = losses16[::4] + [losses16[-1]]
  checks = {
      'fp32_accel_matches_cpu': out['fp32_loss_max_abs_diff'] < 1e-3 and out['fp32_params_max_rel_diff'] < 1e-2,
      'bf16_close_to_fp32': abs(losses16[0] - out['fp32_first_loss']) < 0.05,
      'bf16_trains': bool(np.all(np.isfinite(losses16))) and losses16[-1] < losses16[0] - 0.05,
  }
  out['checks'] = checks
  print(json.dumps(out))
  sys.exit(0 if all(checks.values()) else 1)


if __name__ == '__main__':
  main()
