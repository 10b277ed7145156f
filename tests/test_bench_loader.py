"""bench/loader.py's core-scaling measurement and its flag checks (the timings themselves are bench output).

bench.loader defines absl flags (`--config`, as siampose_jax.main does), so it is imported in subprocesses
only: importing both into the test process would define `--config` twice."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFINED = """
import os
import ml_collections
from bench import loader
before = os.sched_getaffinity(0)
seen = []
loader.time_loader = lambda config, warmup, batches: seen.append(os.sched_getaffinity(0)) or 123.0
config = ml_collections.ConfigDict({'data': {'worker_count': -1}})
one = min(before)
assert loader.time_loader_on_cores(config, {one}, 1, 2) == (123.0, 0)  # one core: in-process
assert seen == [{one}] and os.sched_getaffinity(0) == before
rate, workers = loader.time_loader_on_cores(config, before, 1, 2)
assert workers == (len(before) if len(before) > 1 else 0) and seen[-1] == before
print('ok')
"""


def _run(args):
  return subprocess.run([sys.executable] + args, capture_output=True, text=True, timeout=120, cwd=REPO,
                        env=dict(os.environ, JAX_PLATFORMS='cpu'))


@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity'), reason='needs Linux CPU affinity')
def test_loader_is_timed_confined_to_the_given_cores_and_the_affinity_comes_back():
  out = _run(['-c', _CONFINED])
  assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr[-2000:]


def test_preset_with_config_overrides_is_refused():
  out = _run(['-m', 'bench.loader', '--preset=paper', '--config.batch_size=8'])
  assert out.returncode != 0
  assert "--preset replaces --config and its overrides, got ['--config.batch_size=8']" in out.stderr
