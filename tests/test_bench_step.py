"""bench/step.py's PyTorch reference is the same network as the JAX model (so its ratio compares like with
like), and the benchmark's row machinery runs end to end on a tiny row."""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siampose_jax.configs import distant
from siampose_jax import step as step_lib

torch = pytest.importorskip('torch')
from bench import step as bench_step  # noqa: E402  pylint: disable=g-import-not-at-top
from bench import torch_simsiam  # noqa: E402  pylint: disable=g-import-not-at-top


@pytest.mark.parametrize('preset,model', [
    (None, dict(backbone='resnet18', width=64, stem='imagenet')),
    ('cpu', {}),
    (None, dict(backbone='resnet50', width=16, stem='cifar')),
])
def test_torch_reference_has_the_jax_models_parameters(preset, model):
  c = distant.get_config(preset)
  c.model.update(**model)
  net = step_lib.make_model(c)
  v = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)), train=True))
  sizes = lambda tree: sorted(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))
  m = c.model
  t = torch_simsiam.SimSiam(m.backbone, m.width, m.stem, m.proj_dim, m.pred_hidden)
  assert sorted(p.numel() for p in t.parameters()) == sizes(v['params'])
  stats = [b.numel() for n, b in t.named_buffers() if not n.endswith('num_batches_tracked')]
  assert sorted(stats) == sizes(v['batch_stats'])


def test_a_tiny_row_runs_and_reports_the_ratio():
  c = distant.get_config('test')
  args = argparse.Namespace(conv_impl='auto', reference='torch', torch_channels_last=None, warmup=1, rounds=1,
                            iters=1, rows='cpu', device_augment=False)
  row = bench_step.run_row('cpu_preset', c, 8, 16, args)  # 8: the test session's 8 fake devices
  assert row['jax_step_s'] > 0 and row['torch_step_s'] > 0
  assert row['speedup_vs_torch'] == pytest.approx(row['torch_step_s'] / row['jax_step_s'])
  assert row['target'] == bench_step.MIN_RATIO and isinstance(row['target_met'], bool)


def test_device_augment_row_times_the_augmented_step_against_the_plain_one():
  c = distant.get_config('test')
  args = argparse.Namespace(conv_impl='auto', reference='jax:auto', torch_channels_last=None, warmup=1,
                            rounds=1, iters=1, rows='cpu', device_augment=True)
  row = bench_step.run_row('cpu_preset', c, 8, 16, args)
  assert row['device_augment'] is True and row['reference'] == 'jax:auto'
  assert row['speedup_vs_ref'] == pytest.approx(row['ref_step_s'] / row['jax_step_s'])
  assert 'target' not in row  # targets are for the plain step against torch
