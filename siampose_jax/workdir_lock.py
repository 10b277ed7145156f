"""One run per workdir: a training run holds <workdir>/run.lock (fcntl.flock) for its whole life.

A second run on the same workdir stops at once, naming the holder's host and pid, before it writes anything
there. The kernel releases the lock when its holder ends, however it ends (SIGKILL included), so a hold whose
holder is gone is taken over, with a warning naming that holder. A workdir on Cloud Storage (gs://) cannot
be locked this way: a warning says so and nothing stops a second run there (docs/reliability.md).
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket

from absl import logging

from input_pipeline.formats import paths

LOCK_FILE = 'run.lock'


class WorkdirBusy(RuntimeError):
  """The workdir is held by a live run."""


def _read(fd: int) -> str:
  return os.pread(fd, 4096, 0).decode(errors='replace').strip()


def _holder(record: str) -> str:
  if not record:
    return 'a run that is starting'
  try:
    h = json.loads(record)
    return f'host {h["host"]}, pid {h["pid"]}, started {h["started"]}'
  except (ValueError, KeyError, TypeError):
    return f'holder record {record[:200]!r}'


@contextlib.contextmanager
def hold(workdir):
  """Holds `workdir` for the body of the `with`; raises WorkdirBusy at once when a live run holds it."""
  path = paths.resolve(workdir)
  if not paths.is_local(path):
    logging.warning('%s is not on a local file system: it cannot be locked, and nothing stops a second run '
                    'on it from writing into the same checkpoints; start one run per workdir', path)
    yield
    return
  path.mkdir(parents=True, exist_ok=True)
  lock = path / LOCK_FILE
  fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      locked = True
    except BlockingIOError:
      raise WorkdirBusy(
          f'{path} is in use by another run ({_holder(_read(fd))}; {lock}): two runs would write into the '
          'same checkpoints. Stop that run first, or pass another --workdir') from None
    except OSError as e:  # a file system without flock (some FUSE mounts): run unprotected rather than not
      logging.warning('cannot lock %s (%s): nothing stops a second run on this workdir', lock, e)
      locked = False
    if locked:
      previous = _read(fd)
      if previous:
        logging.warning('%s was held by a run that ended without letting go of it (%s: killed, or its '
                        'machine stopped); taking it over', path, _holder(previous))
      record = json.dumps({'host': socket.gethostname(), 'pid': os.getpid(),
                           'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds')})
      os.ftruncate(fd, 0)
      os.pwrite(fd, record.encode() + b'\n', 0)
    try:
      yield
    finally:
      if locked:
        os.ftruncate(fd, 0)  # a run that ends normally leaves no hold to take over
  finally:
    os.close(fd)  # releases the lock
