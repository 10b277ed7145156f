"""Faults leave nothing behind (docs/reliability.md): loader workers end with their trainer, however it ends;
the process-level halves of the checkpoint and workdir protections (the rest is in test_checkpointing.py)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import psutil

from siampose_jax import train
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


def test_a_rerun_goes_on_from_the_last_good_checkpoint_past_a_truncated_latest_one(cache_dir, reference_run,
                                                                                 tmp_path, caplog):
  """The reference run's workdir with the array data of its latest checkpoint cut in half: training resumes
  from the one before, moves the damaged one aside, and ends exactly where the reference ended."""
  ref_dir, _ = reference_run
  workdir = str(tmp_path / 'run')
  shutil.copytree(ref_dir, workdir)
  assert runs.checkpoint_steps(workdir) == [6, 9, runs.TOTAL_STEPS]
  damaged = os.path.join(workdir, 'checkpoints', str(runs.TOTAL_STEPS))
  runs.truncated_array_file(damaged)
  with caplog.at_level('WARNING'):
    result = train.train_and_evaluate(runs.short_config(cache_dir), workdir)
  assert result['metrics']['final_step'] == runs.TOTAL_STEPS
  assert f'checkpoint step {runs.TOTAL_STEPS} is damaged: moved to ' in caplog.text
  (moved,) = os.listdir(os.path.join(workdir, 'checkpoints_damaged'))
  assert moved.startswith(f'{runs.TOTAL_STEPS}-')
  assert runs.checkpoint_steps(workdir) == [6, 9, runs.TOTAL_STEPS]
  got, _ = runs.checkpoint(workdir)
  want, _ = runs.checkpoint(ref_dir)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_array_equal(a, b)


FULL_AT_STEP = 9

_FULL_DISK_DRIVER = f'''
import errno, os, sys
from absl import app
from etils import epath
from siampose_jax import main
real_write = epath.gpath.PosixGPath.write_text
def full_disk(path, *args, **kwargs):  # where Orbax writes, in its background thread, as a full disk fails
  if '/checkpoints/{FULL_AT_STEP}.orbax-checkpoint-tmp/state.orbax-checkpoint-tmp/' in os.fspath(path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
  return real_write(path, *args, **kwargs)
epath.gpath.PosixGPath.write_text = full_disk
sys.argv[0] = 'siampose_jax.main'
app.run(main.main)
'''


def test_a_full_disk_during_a_save_stops_the_run_and_keeps_the_last_good_checkpoint(cache_dir, reference_run,
                                                                                     tmp_path):
  ref_dir, _ = reference_run
  workdir = str(tmp_path / 'full')
  out = subprocess.run([sys.executable, '-c', _FULL_DISK_DRIVER, *runs.cli_args(cache_dir, workdir)],
                       cwd=runs.REPO, env=dict(os.environ, JAX_PLATFORMS='cpu'), capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 1, out.stderr[-3000:]
  checkpoints = os.path.join(workdir, 'checkpoints')
  assert (f'error: could not save the checkpoint of step {FULL_AT_STEP} in {checkpoints}: the disk is full '
          '(OSError: [Errno 28] No space left on device') in out.stderr, out.stderr[-3000:]
  assert 'the last good checkpoint, step 6, is left as it was' in out.stderr
  assert runs.checkpoint_steps(workdir) == [3, 6]
  got, _ = runs.checkpoint(workdir, 6)
  want, _ = runs.checkpoint(ref_dir, 6)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_array_equal(a, b)
  assert not os.path.exists(os.path.join(workdir, 'table1.md'))  # and no evaluation after it


def test_a_second_run_on_a_held_workdir_stops_at_once_and_the_first_finishes(cache_dir, tmp_path):
  """The first run is paused (SIGSTOP) while the second starts, so that it is surely alive then, however
  slow the machine; it still holds the workdir, and goes on to the end once resumed."""
  workdir = str(tmp_path / 'run')
  first = runs.popen_cli(*runs.cli_args(cache_dir, workdir, '--config.mode=train'))
  try:
    _wait_for(first, r'step 1/\d+ \|')
    first.send_signal(signal.SIGSTOP)
    second = runs.cli(*runs.cli_args(cache_dir, workdir, '--config.mode=train', '--config.seed=1'))
    first.send_signal(signal.SIGCONT)
    _, rest = first.communicate(timeout=300)
  finally:
    if first.poll() is None:
      first.kill()
  assert second.returncode == 1, second.stderr[-3000:]
  assert (f'error: {workdir} is in use by another run (host {socket.gethostname()}, pid {first.pid}, '
          'started ') in second.stderr, second.stderr[-3000:]
  assert not re.search(r'step \d+/\d+ \|', second.stderr)
  assert first.returncode == 0, rest[-3000:]
  assert re.search(rf'step {runs.TOTAL_STEPS}/{runs.TOTAL_STEPS} \|', rest)
  assert runs.checkpoint_steps(workdir) == [6, 9, runs.TOTAL_STEPS]
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['seed'] == 0  # the second run wrote nothing
  with open(os.path.join(workdir, 'run.lock')) as f:
    assert f.read() == ''  # let go of at the end: nothing for a later run to take over
