"""Helpers of the end-to-end tests: the short training config, the CLI in a subprocess, checkpoints (and
damage done to them)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import jax

from siampose_jax.configs import distant

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOTAL_STEPS = 10  # enough steps after the first (the slow, compiling one) to signal a run mid-way


def short_config(cache_dir, **overrides):
  """configs/distant.py:test logging every step; `cli_args` gives the same run on the command line."""
  c = distant.get_config('test')
  c.data.cache_dir = cache_dir
  c.log_every_steps = 1
  c.total_steps = TOTAL_STEPS
  c.update(overrides)
  return c


def cli_args(cache_dir, workdir, *extra) -> list[str]:
  return ['--config=configs/distant.py:test', f'--config.data.cache_dir={cache_dir}',
          '--config.log_every_steps=1', f'--config.total_steps={TOTAL_STEPS}', f'--workdir={workdir}',
          *extra]


def cli(*args, timeout=300, env=None, **kwargs):
  env = dict(os.environ if env is None else env, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'siampose_jax.main', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout, **kwargs)


def popen_cli(*args, env=None):
  """The CLI started in the background, stderr (absl's log) readable line by line."""
  env = dict(os.environ if env is None else env, JAX_PLATFORMS='cpu')
  return subprocess.Popen([sys.executable, '-m', 'siampose_jax.main', *args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def checkpoint(workdir, step=None, config=None):
  """(host state, step) of a workdir's checkpoint (latest by default), restored into the run's structure."""
  from siampose_jax import checkpointing, encoder, sharding  # pylint: disable=g-import-not-at-top
  from siampose_jax import step as step_lib  # pylint: disable=g-import-not-at-top
  config = config or encoder.load_config(workdir)
  model = step_lib.make_model(config)
  template = step_lib.template_state(config, model, sharding.make_mesh(1))
  path = os.path.join(workdir, 'checkpoints', str(step)) if step is not None else workdir
  state, step = checkpointing.restore_params(path, template)
  return jax.device_get(state), step


def checkpoint_steps(workdir) -> list[int]:
  d = os.path.join(workdir, 'checkpoints')
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


# Damage done to a checkpoint step directory, as faults leave it.

def _largest_file(step_dir):
  return max((os.path.join(d, f) for d, _, fs in os.walk(step_dir) for f in fs), key=os.path.getsize)


def truncated_array_file(step_dir):
  path = _largest_file(step_dir)  # as a disk filled mid-save leaves it
  assert f'{os.sep}ocdbt.process_0{os.sep}d{os.sep}' in path  # the array data
  os.truncate(path, os.path.getsize(path) // 2)


def deleted_file(step_dir):
  os.remove(_largest_file(step_dir))  # as an interrupted bucket copy leaves it


def empty_step_dir(step_dir):
  shutil.rmtree(step_dir)
  os.mkdir(step_dir)
