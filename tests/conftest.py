"""Test-session setup: 8 fake CPU devices, so sharded code paths run on any machine; XLA optimisations off;
one persistent XLA compilation cache for the session, so the many small training runs (in process and in
subprocesses, which inherit the variables) compile each program once; session fixtures shared by the
end-to-end tests.

XLA reads the flags when the backend starts, so they must be set before anything imports jax.
"""
from __future__ import annotations

import os
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# The suite's programs are tiny and compiled once each: XLA's optimisation passes cost more than they save
# (test_step.py: ~1.8x faster without them). Subprocesses inherit it, so in-process and CLI runs agree bitwise.
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', tempfile.mkdtemp(prefix='siampose_jax_xla_cache_'))

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory):
  """One data cache (synthetic set of the `test` preset and its frame store) for every end-to-end test."""
  return str(tmp_path_factory.mktemp('cache'))


@pytest.fixture(scope='session')
def reference_run(cache_dir, tmp_path_factory):
  """One uninterrupted training run of `runs.short_config`, shared by the tests that compare against it."""
  from siampose_jax import train  # pylint: disable=g-import-not-at-top
  from tests import runs  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path_factory.mktemp('ref'))
  return workdir, train.train_and_evaluate(runs.short_config(cache_dir), workdir)
