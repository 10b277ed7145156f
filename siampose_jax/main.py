"""Command line: `python -m siampose_jax.main --config=configs/distant.py:cpu --workdir=DIR`.

Thin on purpose (flax examples style): flags -> config -> `train.train_and_evaluate` and/or evaluation.
"""
from __future__ import annotations

import contextlib
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from input_pipeline.formats import paths

import jax

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file[:preset].',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and reports.')
flags.mark_flags_as_required(['config'])

MODES = ('train', 'eval', 'train_and_eval')


def default_workdir(config) -> str:
  objective = config.objective.name
  name = config.data.pair_mode if objective in ('simsiam', 'tcn') else f'{objective}_{config.data.pair_mode}'
  if config.data.dataset != 'objectron':
    name = f'{config.data.dataset}_{name}'
  return os.path.join('runs', f'{name}_{config.preset}')


def initialize_distributed() -> None:
  """Multi-process runs (launch/): TPU VMs are auto-detected; elsewhere the SIAMPOSE_* variables say where
  the coordinator is and which process this is."""
  env = os.environ
  if 'SIAMPOSE_COORDINATOR' in env:
    jax.distributed.initialize(coordinator_address=env['SIAMPOSE_COORDINATOR'],
                               num_processes=int(env['SIAMPOSE_NUM_PROCESSES']),
                               process_id=int(env['SIAMPOSE_PROCESS_ID']))
  else:
    jax.distributed.initialize()


def evaluate(config, workdir) -> dict[str, str]:
  """The evaluation entry point of `config.data.dataset`: Objectron's Tables 1 and 2 (and figures), or
  UCF101's Table 3. Returns the files written."""
  # pylint: disable=g-import-not-at-top (the evaluation loads after flags are parsed, and only if needed)
  if config.data.dataset == 'ucf101':
    from siampose_jax.evaluation import ucf101
    return ucf101.evaluate(config, workdir)
  from siampose_jax.evaluation import objectron
  return objectron.evaluate(config, workdir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  if config.mode not in MODES:
    raise app.UsageError(f'config.mode={config.mode!r}: expected one of {MODES}')
  if os.environ.get('SIAMPOSE_DISTRIBUTED'):
    initialize_distributed()
  from siampose_jax import progress  # pylint: disable=g-import-not-at-top
  progress.quiet_library_logs()
  workdir = _WORKDIR.value or default_workdir(config)
  logging.info('config:\n%s', config)
  from siampose_jax import checkpointing, workdir_lock  # pylint: disable=g-import-not-at-top
  trains = config.mode in ('train', 'train_and_eval')
  # One run per workdir: held by process 0 from before anything is written there to the end of the command.
  holding = workdir_lock.hold(workdir) if trains and jax.process_index() == 0 else contextlib.nullcontext()
  try:
    with holding:
      run(config, workdir)
  except (workdir_lock.WorkdirBusy, FloatingPointError, checkpointing.CheckpointError) as e:
    # The workdir in use, on_nonfinite=stop, a checkpoint that cannot be saved or restored: a clear message
    # and exit status 1.
    sys.exit(f'error: {e}')


def run(config, workdir) -> None:
  """Training and/or evaluation, as config.mode says, then the list of files written."""
  written = {}
  from siampose_jax import train  # pylint: disable=g-import-not-at-top (after flags are parsed)
  if config.mode in ('train', 'train_and_eval'):
    result = train.train_and_evaluate(config, workdir)
    written.update({k: v for k, v in result['metrics'].items() if isinstance(v, str)})
    logging.info('final metrics: %s', {k: v for k, v in result['metrics'].items()
                                       if isinstance(v, float)})
    if 'preempted_at_step' in result['metrics']:  # checkpointed: exit 0 at once, resume on restart
      print(f'\npreempted at step {result["metrics"]["preempted_at_step"]}: checkpoint saved in '
            f'{workdir}; rerun the same command to resume')
      return
  if config.mode in ('eval', 'train_and_eval'):
    written.update(evaluate(config, workdir))
  if config.mode == 'eval' and jax.process_index() == 0:
    from siampose_jax import encoder  # pylint: disable=g-import-not-at-top
    if not (paths.resolve(workdir) / encoder.CONFIG_FILE).exists():  # evaluation only (e.g. random init)
      written['config_json'] = str(encoder.save_config(config, workdir))
  print(f'\nworkdir: {paths.resolve(workdir)}')
  for name, path in sorted(written.items()):
    print(f'  {name}: {path}')


if __name__ == '__main__':
  app.run(main)
