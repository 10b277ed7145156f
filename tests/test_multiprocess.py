"""Two processes (jax.distributed on CPU, launch/local_multiprocess.sh) train exactly like one process with
two devices: each process feeds its own slice of every global batch and holds its own Grain state."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return {r['step']: r['loss'] for r in map(json.loads, f) if 'loss' in r}


def test_two_processes_match_one_process_with_two_devices(tmp_path, cache_dir):
  args = ['--config=configs/distant.py:test', f'--config.data.cache_dir={cache_dir}',
          '--config.mode=train']
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env.update(JAX_PLATFORMS='cpu', SIAMPOSE_PORT=str(_free_port()))
  multi = subprocess.run(['bash', 'launch/local_multiprocess.sh', '2', *args, f'--workdir={tmp_path / "mp"}'],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert multi.returncode == 0, multi.stderr[-3000:]
  data_dir = tmp_path / 'mp' / 'checkpoints' / '6' / 'data'
  assert {'process_0-of-2.json', 'process_1-of-2.json'} <= set(os.listdir(data_dir))

  env['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'
  single = subprocess.run([sys.executable, '-m', 'siampose_jax.main', *args, f'--workdir={tmp_path / "sp"}'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]
  a, b = _losses(tmp_path / 'mp'), _losses(tmp_path / 'sp')
  assert sorted(a) == sorted(b) == [2, 4, 6]
  # Same data, same maths; only the order of the cross-process sums differs. The loss (a cosine, in [-1, 1])
  # can sit near 0 after a few steps, so the tolerance is absolute, on that scale.
  for step in a:
    assert a[step] == pytest.approx(b[step], rel=1e-4, abs=1e-5), step
