"""Faults leave nothing behind (docs/reliability.md): loader workers end with their trainer, however it ends;
the process-level halves of the checkpoint and workdir protections (the rest is in test_checkpointing.py)."""
from __future__ import annotations

import re
import signal
import time

import psutil

from tests import runs


def _wait_for(proc, pattern):
  """Reads the CLI's log until a line matches; returns the lines read."""
  lines = []
  for line in proc.stderr:
    lines.append(line)
    if re.search(pattern, line):
      return lines
  raise AssertionError(f'the run ended before {pattern!r}:\n' + ''.join(lines[-30:]))


def test_sigkill_of_the_trainer_ends_its_loader_workers(cache_dir, tmp_path):
  """Without the watch in input_pipeline/loader/datasets.py `_init_worker`, the workers (blocked on their
  full output queues) are re-parented to init and live on."""
  args = runs.cli_args(cache_dir, str(tmp_path / 'run'), '--config.mode=train', '--config.data.worker_count=2')
  proc = runs.popen_cli(*args)
  children = []
  try:
    _wait_for(proc, r'step 2/\d+ \|')
    children = psutil.Process(proc.pid).children(recursive=True)
    workers = [c for c in children if 'spawn_main' in ' '.join(c.cmdline())]
    assert len(workers) == 2, [c.cmdline() for c in children]
    proc.kill()
    proc.wait(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f'still running 5 s after the trainer was killed: {[c.cmdline() for c in alive]}'
  finally:
    proc.kill()
    for c in children:  # without the protection: not left behind by the test either
      try:
        c.kill()
      except psutil.NoSuchProcess:
        pass
    proc.communicate(timeout=30)
