"""Numerical faults: a NaN injected into one update stops the run naming that step, with the last good
checkpoint intact (config.train.on_nonfinite=stop), or drops that update and counts it (skip)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siampose_jax import step as step_lib
from siampose_jax import train
from tests import runs

FAULT_STEP = 8


def inject_nan_at(step: int):
  """step_lib.train_step whose update number `step` has a NaN loss and NaN parameters."""
  real = step_lib.train_step

  def faulty(state, batch, **kwargs):
    new, metrics = real(state, batch, **kwargs)
    bad = new.step == step
    metrics = dict(metrics, loss=jnp.where(bad, jnp.nan, metrics['loss']))
    return new.replace(params=jax.tree.map(lambda p: jnp.where(bad, jnp.nan, p), new.params)), metrics

  return faulty


_DRIVER = f'''
import sys
from absl import app
from siampose_jax import main, step as step_lib
from tests.test_nonfinite import inject_nan_at
step_lib.train_step = inject_nan_at({FAULT_STEP})
sys.argv[0] = 'siampose_jax.main'
app.run(main.main)
'''


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(cache_dir, reference_run, tmp_path):
  ref_dir, _ = reference_run
  workdir = str(tmp_path / 'nan')
  out = subprocess.run([sys.executable, '-c', _DRIVER, *runs.cli_args(cache_dir, workdir)], cwd=runs.REPO,
                       env=dict(os.environ, JAX_PLATFORMS='cpu'), capture_output=True, text=True, timeout=300)
  assert out.returncode == 1, out.stderr[-3000:]
  assert f'error: non-finite loss or gradient norm at step {FAULT_STEP} ' in out.stderr
  assert 'The last good checkpoint is step 6 ' in out.stderr
  assert runs.checkpoint_steps(workdir) == [3, 6]  # nothing saved from step 8 on (the next would be 9)
  got, _ = runs.checkpoint(workdir, 6)
  want, _ = runs.checkpoint(ref_dir, 6)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_array_equal(a, b)
  assert not os.path.exists(os.path.join(workdir, 'table1.md'))  # and no evaluation after it


def test_skip_drops_the_update_and_counts_it(cache_dir, tmp_path, monkeypatch):
  monkeypatch.setattr(step_lib, 'train_step', inject_nan_at(2))
  workdir = str(tmp_path / 'skip')
  config = runs.short_config(cache_dir, total_steps=3, checkpoint_every_steps=1, monitor_every_steps=100,
                             num_devices=1)
  config.train.on_nonfinite = 'skip'
  train.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = {r['step']: r for r in map(json.loads, f)}
  assert [rows[s]['skipped_updates'] for s in (1, 2, 3)] == [0, 1, 1]
  assert np.isnan(rows[2]['loss']) and np.isfinite(rows[3]['loss'])
  states = [runs.checkpoint(workdir, s)[0] for s in (1, 2, 3)]
  for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1])):  # update 2 dropped whole
    if a.ndim:  # every array but the step counter
      np.testing.assert_array_equal(a, b)
  assert int(states[1].step) == 2
  params = jax.tree.leaves(states[2].params)
  assert all(np.isfinite(p).all() for p in params)
  assert any(not np.array_equal(p, q) for p, q in zip(params, jax.tree.leaves(states[1].params)))


def test_bad_policy_is_an_error():
  with pytest.raises(ValueError, match='on_nonfinite'):
    train.guard_nonfinite(lambda s, b: (s, {}), 'ignore')
