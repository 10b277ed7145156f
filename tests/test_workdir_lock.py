"""One run per workdir (siampose_jax/workdir_lock.py): a live hold refuses a second one naming its host and
pid, a hold whose holder died is taken over with a warning, a gs:// workdir cannot be held and says so. A
second `main` on the workdir of a live training run: tests/test_faults.py."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from siampose_jax import workdir_lock
from tests import _gcs, runs

_DIE_HOLDING = '''
import os, signal, sys
from siampose_jax import workdir_lock
with workdir_lock.hold(sys.argv[1]):
  os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_live_hold_refuses_a_second_one_naming_its_host_and_pid(tmp_path):
  with workdir_lock.hold(str(tmp_path)):
    with pytest.raises(workdir_lock.WorkdirBusy) as e:
      with workdir_lock.hold(str(tmp_path)):
        pass
  assert str(e.value).startswith(f'{tmp_path} is in use by another run (host {socket.gethostname()}, '
                                 f'pid {os.getpid()}, started ')
  assert (tmp_path / workdir_lock.LOCK_FILE).read_text() == ''  # let go of: nothing to take over


def test_a_stale_hold_is_taken_over_with_a_warning_naming_the_dead_holder(tmp_path, caplog):
  dead = subprocess.Popen([sys.executable, '-c', _DIE_HOLDING, str(tmp_path)], cwd=runs.REPO)
  assert dead.wait(timeout=120) == -signal.SIGKILL
  assert json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())['pid'] == dead.pid  # its hold stays
  with caplog.at_level('WARNING'):
    with workdir_lock.hold(str(tmp_path)):
      assert json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())['pid'] == os.getpid()
  assert (f'{tmp_path} was held by a run that ended without letting go of it (host {socket.gethostname()}, '
          f'pid {dead.pid}, started ') in caplog.text
  assert 'taking it over' in caplog.text


def test_a_gs_workdir_cannot_be_held_and_says_so(tmp_path, caplog):
  """The documented limitation (docs/reliability.md): Cloud Storage has no lock that its holder's death
  releases, so two runs on one gs:// workdir both run; each warns."""
  with _gcs.mock_gcs(str(tmp_path)), caplog.at_level('WARNING'):
    with workdir_lock.hold('gs://bucket/run'), workdir_lock.hold('gs://bucket/run'):
      pass
  assert caplog.text.count('gs://bucket/run is not on a local file system: it cannot be locked') == 2
  assert not os.path.exists(tmp_path / 'bucket' / 'run' / workdir_lock.LOCK_FILE)
