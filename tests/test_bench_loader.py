"""bench/loader.py's core-scaling measurement and its flag checks (the timings themselves are bench output)."""
from __future__ import annotations

import os
import subprocess
import sys

import ml_collections
import pytest

from bench import loader


@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity'), reason='needs Linux CPU affinity')
def test_loader_is_timed_confined_to_the_given_cores_and_the_affinity_comes_back(monkeypatch):
  before = os.sched_getaffinity(0)
  seen = []
  monkeypatch.setattr(loader, 'time_loader',
                      lambda config, warmup, batches: seen.append(os.sched_getaffinity(0)) or 123.0)
  config = ml_collections.ConfigDict({'data': {'worker_count': -1}})
  one = min(before)
  rate, workers = loader.time_loader_on_cores(config, {one}, 1, 2)
  assert (rate, workers, seen) == (123.0, 0, [{one}])  # one core: in-process, no worker processes
  assert os.sched_getaffinity(0) == before
  rate, workers = loader.time_loader_on_cores(config, before, 1, 2)
  assert workers == (len(before) if len(before) > 1 else 0) and seen[-1] == before


def test_preset_with_config_overrides_is_refused():
  out = subprocess.run([sys.executable, '-m', 'bench.loader', '--preset=paper', '--config.batch_size=8'],
                       capture_output=True, text=True, timeout=120,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert out.returncode != 0
  assert "--preset replaces --config and its overrides, got ['--config.batch_size=8']" in out.stderr
