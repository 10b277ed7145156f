"""Orbax checkpoints holding the train state and the Grain iterator state together, so a resume is exact.

Portable across device and process counts: arrays are restored into the shardings of the target state
(a checkpoint saved on 8 devices restores on 1 and back). Grain stores its iterator state per process
(`process_<i>-of-<n>.json`), whose layout depends on the worker process count; when the process count or
the worker count changed (data.worker_count=-1 follows the machine's cores), the iterator is instead
positioned at the checkpoint's step (the loader's batch i is a pure function of i, whatever the process
and worker counts; see input_pipeline/loader/datasets.py), with a warning.

Faults (docs/reliability.md): a resume skips a damaged latest checkpoint (`resume`), and a checkpoint that
cannot be written (a full disk) stops the run with a `CheckpointError` (`save`, `wait`).
"""
from __future__ import annotations

import errno
import json
import os
import signal
import threading
import time
import weakref

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from input_pipeline.formats import paths


def checkpoint_dir(workdir) -> epath.Path:
  return paths.resolve(workdir) / 'checkpoints'


def make_manager(workdir, *, keep: int = 3, save_interval_steps: int = 1) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=save_interval_steps,
                                         create=True)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options, item_names=('state', 'data'))


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be written (a full disk), or a workdir none of whose checkpoints restores."""


_WRITING = weakref.WeakKeyDictionary()  # manager -> the step its background save is writing


def save(manager: ocp.CheckpointManager, step: int, state, data_iterator, *, force: bool = False) -> bool:
  """Starts saving `step` (Orbax writes in the background). A write that fails, here or in the background
  (reported by the next `save` or `wait`), raises a CheckpointError naming its step and the last good one."""
  wait(manager)
  args = {'state': ocp.args.StandardSave(state)}
  if data_iterator is not None:
    args['data'] = grain.checkpoint.CheckpointSave(data_iterator)
  try:
    saved = manager.save(step, args=ocp.args.Composite(**args), force=force)
  except Exception as e:  # pylint: disable=broad-except
    raise _write_error(manager, step, e) from e
  if saved:
    _WRITING[manager] = step
  return saved


def wait(manager: ocp.CheckpointManager) -> None:
  """`manager.wait_until_finished()`, a failed background write raised as a CheckpointError."""
  try:
    manager.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    raise _write_error(manager, _WRITING.get(manager), e) from e
  finally:
    _WRITING.pop(manager, None)


def _chain(e: BaseException) -> list[BaseException]:
  """An error and the ones it was raised from or while handling, outermost first."""
  chain = []
  while e is not None and all(e is not c for c in chain):
    chain.append(e)
    e = e.__cause__ or e.__context__
  return chain


def _reason(e: BaseException) -> str:
  """The innermost error of a chain (Orbax and tensorstore wrap the one that says what happened), short."""
  e = _chain(e)[-1]
  lines = str(e).strip().splitlines()
  return f'{type(e).__name__}: {lines[0][:400] if lines else ""}'


def _disk_full(e: BaseException) -> bool:
  """Whether an error chain says the disk is full (tensorstore raises ValueError naming the OS error)."""
  codes = (errno.ENOSPC, errno.EDQUOT)
  return any((isinstance(c, OSError) and c.errno in codes) or any(os.strerror(n) in str(c) for n in codes)
             for c in _chain(e))


def _write_error(manager: ocp.CheckpointManager, step: int | None, e: BaseException) -> CheckpointError:
  good = [s for s in manager.all_steps() if s != step]  # Orbax drops a failed step from its list
  last = (f'the last good checkpoint, step {max(good)}, is left as it was' if good else
          'no checkpoint was saved before it: the run starts again from step 0')
  what, fix = ('the disk is full', 'Free some space') if _disk_full(e) else ('the write failed', 'Fix the cause')
  return CheckpointError(
      f'could not save the checkpoint of step {step} in {manager.directory}: {what} ({_reason(e)}). '
      f'Stopped; {last}. {fix} and rerun the same command to resume')


def _abstract(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def restore(manager: ocp.CheckpointManager, state, data_iterator=None, step: int | None = None):
  """Restores `step` (default: latest) into the structure/shardings of `state`; returns (state, step).

  Returns (state, None) unchanged when the directory holds no checkpoint. The Grain iterator, if given, is
  restored in place: from its saved state, or positioned at `step` when the process or worker count changed.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    return state, None
  args = {'state': ocp.args.StandardRestore(_abstract(state))}
  same_processes = (data_iterator is not None and _saved_for_this_process(manager, step)
                    and _same_layout(manager, step, data_iterator))
  if same_processes:
    args['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
  restored = manager.restore(step, args=ocp.args.Composite(**args))
  if data_iterator is not None and not same_processes:
    position_iterator(data_iterator, step)
  return restored['state'], step


def resume(manager: ocp.CheckpointManager, state, data_iterator):
  """`restore` of the newest checkpoint that restores, for a run that goes on from it: (state, step), or
  (state, None) when there is none.

  A damaged newer one (a truncated or missing file, an empty step directory: a disk filled or a copy cut
  short) is named in a warning and moved into checkpoints_damaged/ beside checkpoints/, never deleted: the
  run saves that step number again, which Orbax refuses while it exists. When none restores, raises a
  CheckpointError listing each step tried and why, and moves nothing.
  """
  failed = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      state_at_step, _ = restore(manager, state, data_iterator, step)
    except Exception as e:  # pylint: disable=broad-except  (tensorstore's errors, KeyError, JSON, OSError...)
      failed.append((step, _reason(e)))
      logging.warning('checkpoint step %d in %s does not restore (%s): trying the one before', step,
                      manager.directory, failed[-1][1])
      continue
    if jax.process_count() > 1:  # all processes read the same files, so they fail alike; make sure
      multihost_utils.assert_equal(step, 'the processes restored different checkpoint steps')
    if failed:
      _move_aside(manager, [s for s, _ in failed], step)
    return state_at_step, step
  if failed:
    tried = '; '.join(f'step {s}: {why}' for s, why in failed)
    raise CheckpointError(f'no checkpoint in {manager.directory} restores (tried {tried}). Nothing was moved '
                          'or deleted; remove or repair them, or train in another --workdir')
  return state, None


def damaged_dir(manager: ocp.CheckpointManager) -> epath.Path:
  return epath.Path(manager.directory).parent / 'checkpoints_damaged'


def _move_aside(manager: ocp.CheckpointManager, steps: list[int], resumed: int) -> None:
  """Moves damaged step directories to checkpoints_damaged/<step>-<UTC time> (process 0; the others wait)."""
  stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
  if jax.process_index() == 0:
    damaged_dir(manager).mkdir(parents=True, exist_ok=True)
    for step in steps:
      dst = damaged_dir(manager) / f'{step}-{stamp}'
      (epath.Path(manager.directory) / str(step)).rename(dst)
      logging.warning('checkpoint step %d is damaged: moved to %s (not deleted); resuming from step %d, the '
                      'newest that restores', step, dst, resumed)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('damaged checkpoints moved aside')
  manager.reload()


def restore_params(path, state):
  """Loads the train state of a checkpoint step directory (…/checkpoints/<step>) or a workdir's latest."""
  path = paths.resolve(path)
  if (path / 'checkpoints').is_dir():
    path = checkpoint_dir(path)
  root, step = (path.parent, int(path.name)) if path.name.isdigit() else (path, None)
  manager = ocp.CheckpointManager(root, item_names=('state', 'data'))
  restored, step = restore(manager, state, None, step)
  if step is None:
    raise FileNotFoundError(f'no checkpoint found under {path}')
  return restored, step


def _layout(state: dict) -> tuple:
  """What a Grain state's shape depends on: in-process (keys) or the number of worker processes."""
  return tuple(sorted(state)), len(state.get('iterators_in_use_states', ()))


def _same_layout(manager: ocp.CheckpointManager, step: int, data_iterator) -> bool:
  saved = epath.Path(manager.directory) / str(step) / 'data' / (
      f'process_{jax.process_index()}-of-{jax.process_count()}.json')
  saved = json.loads(saved.read_text())
  if _layout(saved) == _layout(data_iterator.get_state()):
    return True
  logging.warning('checkpoint step %d holds a Grain iterator state of another worker count (%s, this run: '
                  '%s): the data iterator restarts at step %d from the step alone', step,
                  _layout(saved)[1], _layout(data_iterator.get_state())[1], step)
  return False


def position_iterator(data_iterator, step: int) -> None:
  """Sets a fresh Grain iterator over the batched training dataset to yield batch `step` next.

  In-process: {'next_index': step}. With n worker processes (grain 0.2.18's multiprocess prefetch), worker
  i serves batches i, i + n, ..., in turn: worker i has served ceil((step - i) / n) of them and the
  next batch comes from worker step % n."""
  fresh = data_iterator.get_state()
  step = int(step)
  if set(fresh) == {'next_index'}:
    data_iterator.set_state({'next_index': step})
    return
  workers = fresh.get('iterators_in_use_states')
  if not workers or any(set(w) != {'next_index'} for w in workers):
    raise ValueError(f'cannot position a Grain iterator with state {fresh} at step {step}: resume once '
                     'with config.data.worker_count=0')
  n = len(workers)
  data_iterator.set_state(dict(
      fresh, next_index_in_cycle=step % n, next_index_in_datasets=n,
      iterators_in_use_indices=list(range(n)),
      iterators_in_use_states=[{'next_index': -(-(step - i) // n)} for i in range(n)]))


def _saved_for_this_process(manager: ocp.CheckpointManager, step: int) -> bool:
  """Whether the checkpoint holds this process's Grain state; warns when it was saved by another count."""
  data_dir = epath.Path(manager.directory) / str(step) / 'data'
  if not data_dir.is_dir():
    raise FileNotFoundError(f'checkpoint step {step} has no data iterator state ({data_dir})')
  want = f'process_{jax.process_index()}-of-{jax.process_count()}.json'
  have = sorted(p.name for p in data_dir.iterdir() if p.name.endswith('.json'))
  if want in have:
    return True
  logging.warning('checkpoint %s holds Grain iterator states %s, saved by another process count; this run '
                  'is process %d of %d: the data iterator restarts at step %d from the step alone',
                  data_dir, have, jax.process_index(), jax.process_count(), step)
  return False


class PreemptionNotice:
  """Says at which step to checkpoint and stop after a preemption notice (SIGTERM: what a Cloud TPU
  preemption, `docker stop` and batch schedulers send, some seconds before killing the process).

  One process: a SIGTERM handler sets a flag that `reached(step)` returns. Several processes: JAX's
  preemption sync manager (started by `jax.distributed.initialize`, with its own SIGTERM handler) spreads
  a notice that any process gets to all of them and picks one step at which every process's
  `reached(step)` is True, so all of them save the same step. Call `reached` once per step, every step.
  """

  def __init__(self):
    self.received = False
    self._previous = None
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

  def _on_sigterm(self, signum, frame):
    del signum, frame
    self.received = True

  def reached(self, step: int) -> bool:
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step)
    return self.received

  def close(self) -> None:
    """Gives SIGTERM back its previous handler (after training, a SIGTERM stops the program again)."""
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
