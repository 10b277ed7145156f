"""Experiment configs (big_vision style: `--config=configs/<name>.py[:preset]`), installed as the package
`siampose_jax.configs` (setup.py maps it to this folder), so a config file finds its base from any working
directory and programs find the files with `siampose_jax.configs.path(name)`."""
import os

DIR = os.path.dirname(os.path.abspath(__file__))


def path(name: str) -> str:
  """The file of config `name` (e.g. 'distant'), to pass as --config=PATH[:preset]."""
  file = os.path.join(DIR, f'{name}.py')
  if not os.path.exists(file):
    known = sorted(f[:-3] for f in os.listdir(DIR) if f.endswith('.py') and not f.startswith('_'))
    raise ValueError(f'no config {name!r} in {DIR}; known: {known}')
  return file
