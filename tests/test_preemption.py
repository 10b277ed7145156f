"""Real processes stopped the ways machines stop them: SIGTERM (a preemption notice) checkpoints the step in
hand and exits 0 quickly; SIGKILL at a random step loses only the steps since the last checkpoint; either
way, rerunning the same command ends with parameters bit-identical to an uninterrupted run."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time

import jax
import numpy as np

from tests import runs


def _run_until(args, pattern, sig):
  """Starts the CLI, sends `sig` once a stderr line matches `pattern`; returns (rc, log, seconds to exit)."""
  proc = runs.popen_cli(*args)
  lines = []
  try:
    for line in proc.stderr:
      lines.append(line)
      if re.search(pattern, line):
        t = time.monotonic()
        proc.send_signal(sig)
        break
    else:
      raise AssertionError(f'the run ended before {pattern!r}:\n' + ''.join(lines[-30:]))
    _, rest = proc.communicate(timeout=120)
    lines.append(rest)
    return proc.returncode, ''.join(lines), time.monotonic() - t
  finally:
    if proc.poll() is None:
      proc.kill()


def _steps_logged(log):
  return [int(m) for m in re.findall(r'step (\d+)/\d+ \|', log)]


def test_sigterm_then_sigkill_then_resume_is_bit_identical(cache_dir, reference_run, tmp_path):
  ref_dir, _ = reference_run
  workdir = str(tmp_path / 'run')
  args = runs.cli_args(cache_dir, workdir, '--config.mode=train')

  # SIGTERM after the first step: the run saves the step in hand (not a periodic one: every 1000) and exits 0.
  rc, log, seconds = _run_until(args + ['--config.checkpoint_every_steps=1000'], r'step 1/\d+ \|',
                                signal.SIGTERM)
  assert rc == 0, log[-3000:]
  assert seconds < 30
  (saved,) = runs.checkpoint_steps(workdir)
  assert 1 <= saved < runs.TOTAL_STEPS and max(_steps_logged(log)) == saved
  assert f'preempted: saved the checkpoint of step {saved} ' in log

  # The same command resumes there; SIGKILL at a random later step leaves only complete checkpoints.
  rng = random.Random()
  kill_at = rng.randint(saved + 1, runs.TOTAL_STEPS - 1)
  rc, log, _ = _run_until(args, rf'step {kill_at}/\d+ \|', signal.SIGKILL)
  assert rc == -signal.SIGKILL, f'kill at step {kill_at}: rc {rc}\n{log[-3000:]}'
  assert f'resumed from {os.path.join(workdir, "checkpoints")} at step {saved}' in log
  assert min(_steps_logged(log)) == saved + 1
  resume_from = runs.checkpoint_steps(workdir)[-1]
  assert saved <= resume_from <= runs.TOTAL_STEPS

  # Rerun to the end: every parameter, statistic and optimiser slot is bit-identical to the reference.
  out = runs.cli(*args)
  assert out.returncode == 0, out.stderr[-3000:]
  assert min(_steps_logged(out.stderr)) == resume_from + 1, f'killed at step {kill_at}'
  got, step = runs.checkpoint(workdir)
  want, ref_step = runs.checkpoint(ref_dir)
  assert step == ref_step == runs.TOTAL_STEPS
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_array_equal(a, b)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    losses = {r['step']: r['loss'] for r in map(json.loads, f) if 'loss' in r}
  with open(os.path.join(ref_dir, 'metrics.jsonl')) as f:
    ref_losses = {r['step']: r['loss'] for r in map(json.loads, f) if 'loss' in r}
  assert losses == ref_losses


def test_sigterm_to_one_of_two_processes_stops_both_at_the_same_checkpointed_step(cache_dir, tmp_path):
  """Multi-host: the notice reaches one process (as a TPU VM's own SIGTERM would); JAX's preemption sync
  point spreads it, and both processes save the same step, then exit 0."""
  from tests.test_multiprocess import _free_port  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / 'mp'
  args = ['--config=configs/distant.py:test', f'--config.data.cache_dir={cache_dir}', '--config.mode=train',
          '--config.total_steps=1000', '--config.log_every_steps=1', '--config.checkpoint_every_steps=1000',
          f'--workdir={workdir}']
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env.update(JAX_PLATFORMS='cpu', SIAMPOSE_PORT=str(_free_port()))
  launcher = subprocess.Popen(['bash', 'launch/local_multiprocess.sh', '2', *args], cwd=runs.REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    lines = []
    for line in launcher.stderr:  # both processes' logs, interleaved
      lines.append(line)
      if re.search(r'step 3/1000 \|', line):
        break
    workers = sorted(int(p) for p in subprocess.run(
        ['pgrep', '-f', f'siampose_jax.main .*--workdir={workdir}'], capture_output=True, text=True
    ).stdout.split())
    assert len(workers) == 2, ''.join(lines[-30:])
    t = time.monotonic()
    os.kill(workers[0], signal.SIGTERM)
    out, rest = launcher.communicate(timeout=120)
    seconds = time.monotonic() - t
  finally:
    if launcher.poll() is None:
      launcher.kill()
  log = ''.join(lines) + rest
  assert launcher.returncode == 0, log[-3000:]
  assert seconds < 30
  saved = [int(s) for s in re.findall(r'preempted: saved the checkpoint of step (\d+) ', log)]
  assert len(saved) == 2 and saved[0] == saved[1] and 3 <= saved[0] < 1000, log[-3000:]
  assert runs.checkpoint_steps(str(workdir)) == [saved[0]]
  data_dir = workdir / 'checkpoints' / str(saved[0]) / 'data'
  assert {'process_0-of-2.json', 'process_1-of-2.json'} <= set(os.listdir(data_dir))
  assert out.count(f'preempted at step {saved[0]}') == 2
