"""Orbax checkpoints holding the train state and the Grain iterator state together, so a resume is exact.

Grain stores its iterator state per process (`process_<i>-of-<n>.json`), so a run must resume with the same
number of processes it was saved with; a mismatch is reported as such instead of Grain's bare file error.
"""
from __future__ import annotations

import os

import grain
import jax
import orbax.checkpoint as ocp


def make_manager(workdir: str, *, keep: int = 3, save_interval_steps: int = 1) -> ocp.CheckpointManager:
  directory = os.path.join(os.path.abspath(os.path.expanduser(workdir)), 'checkpoints')
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=save_interval_steps,
                                         create=True)
  return ocp.CheckpointManager(directory, options=options, item_names=('state', 'data'))


def save(manager: ocp.CheckpointManager, step: int, state, data_iterator, *, force: bool = False) -> bool:
  args = {'state': ocp.args.StandardSave(state)}
  if data_iterator is not None:
    args['data'] = grain.checkpoint.CheckpointSave(data_iterator)
  return manager.save(step, args=ocp.args.Composite(**args), force=force)


def _abstract(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def restore(manager: ocp.CheckpointManager, state, data_iterator=None, step: int | None = None):
  """Restores `step` (default: latest) into the structure/shardings of `state`; returns (state, step).

  Returns (state, None) unchanged when the directory holds no checkpoint. The Grain iterator, if given, is
  restored in place.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    return state, None
  args = {'state': ocp.args.StandardRestore(_abstract(state))}
  if data_iterator is not None:
    _check_process_count(manager, step)
    args['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
  restored = manager.restore(step, args=ocp.args.Composite(**args))
  return restored['state'], step


def restore_params(path: str, state):
  """Loads the train state of a checkpoint step directory (…/checkpoints/<step>) or a workdir's latest."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(os.path.join(path, 'checkpoints')):
    path = os.path.join(path, 'checkpoints')
  if os.path.basename(path).isdigit():
    root, step = os.path.dirname(path), int(os.path.basename(path))
  else:
    root, step = path, None
  manager = ocp.CheckpointManager(root, item_names=('state', 'data'))
  restored, step = restore(manager, state, None, step)
  if step is None:
    raise FileNotFoundError(f'no checkpoint found under {path}')
  return restored, step


def _check_process_count(manager: ocp.CheckpointManager, step: int) -> None:
  data_dir = os.path.join(str(manager.directory), str(step), 'data')
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f'checkpoint step {step} has no data iterator state ({data_dir})')
  want = f'process_{jax.process_index()}-of-{jax.process_count()}.json'
  have = sorted(f for f in os.listdir(data_dir) if f.endswith('.json'))
  if want not in have:
    raise ValueError(
        f'checkpoint {data_dir} holds Grain iterator states {have} but this run is process '
        f'{jax.process_index()} of {jax.process_count()}: resume with the process count it was saved with')
