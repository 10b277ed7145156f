"""Presets are small diffs of one base: cpu_long is the cpu preset trained longer and nothing else."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from siampose_jax import configs
from siampose_jax.configs import base

CONFIGS = ('nearby', 'distant', 'same_frame', 'ntxent', 'tcn', 'combined', 'ucf101_nearby', 'ucf101_distant',
           'ucf101_ntxent')
SCHEDULE_KEYS = {'total_steps', 'log_every_steps', 'checkpoint_every_steps', 'monitor_every_steps', 'preset'}


def _flat(d, prefix=''):
  out = {}
  for k, v in d.items():
    if hasattr(v, 'items'):
      out.update(_flat(v, f'{prefix}{k}.'))
    else:
      out[prefix + k] = v
  return out


@pytest.mark.parametrize('name', CONFIGS)
def test_cpu_long_is_cpu_trained_longer(name):
  module = importlib.import_module(f'siampose_jax.configs.{name}')
  cpu, long = _flat(module.get_config('cpu').to_dict()), _flat(module.get_config('cpu_long').to_dict())
  assert set(cpu) == set(long)
  changed = {k for k in cpu if cpu[k] != long[k]}
  assert changed <= SCHEDULE_KEYS and 'total_steps' in changed, changed
  assert long['total_steps'] == base.CPU_LONG_FACTOR * cpu['total_steps']


def test_cpu_recipe_is_objectron_only():
  """The Objectron recipe (crop windows per frame, rate 0.3) is the cpu preset's; UCF101 keeps the rate
  that its Table 3 was measured at, and the test preset the slow, stable one its tests were sized for."""
  flat = {(n, p): _flat(importlib.import_module(f'siampose_jax.configs.{n}').get_config(p).to_dict())
          for n in ('distant', 'ucf101_distant') for p in ('cpu', 'test')}
  assert flat['distant', 'cpu']['data.per_frame_window'] and flat['distant', 'cpu']['optim.base_lr'] == 0.3
  assert flat['distant', 'cpu']['data.image_size'] == base.CPU_IMAGE_SIZE
  assert flat['distant', 'cpu']['total_steps'] == base.CPU_STEPS
  for key in (('ucf101_distant', 'cpu'), ('distant', 'test'), ('ucf101_distant', 'test')):
    assert not flat[key]['data.per_frame_window'] and flat[key]['optim.base_lr'] == 0.05, key


def test_unknown_preset_names_the_known_ones():
  with pytest.raises(ValueError, match=r"unknown config preset 'cpu-long'.*cpu_long"):
    base.get_base_config('nearby', 'cpu-long')


@pytest.mark.parametrize('preset', ('cpu', 'test', None))
def test_ucf101_ntxent_is_the_ntxent_diff_on_ucf101(preset):
  """ucf101_ntxent changes the UCF101 config exactly as ntxent changes the Objectron one."""
  mods = {n: importlib.import_module(f'siampose_jax.configs.{n}')
          for n in ('nearby', 'ntxent', 'ucf101_nearby', 'ucf101_ntxent')}
  flat = {n: _flat(m.get_config(preset).to_dict()) for n, m in mods.items()}
  objectron = {k: v for k, v in flat['ntxent'].items() if flat['nearby'][k] != v}
  ucf = {k: v for k, v in flat['ucf101_ntxent'].items() if flat['ucf101_nearby'][k] != v}
  assert ucf == objectron and ucf['objective.name'] == 'ntxent'


def test_configs_load_from_any_directory_without_opencv(tmp_path):
  """The configs are the package siampose_jax.configs (no top-level `configs` is installed): a config
  imports from any working directory, and naming the augmentations does not load OpenCV."""
  code = ('import importlib.util, sys\n'
          'from siampose_jax import configs\n'
          'from siampose_jax.configs import distant\n'
          'assert distant.get_config("cpu").data.pair_mode == "distant"\n'
          'assert "cv2" not in sys.modules, "importing a config loaded OpenCV"\n'
          'assert importlib.util.find_spec("configs") is None, "a top-level configs package is importable"\n'
          'print(configs.path("distant"))\n')
  out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs', 'distant.py')
  with pytest.raises(ValueError, match="no config 'bogus'.*distant"):
    configs.path('bogus')


def _documented_overrides(page: str, heading: str) -> list[str]:
  """The `--config.key=value` flags of the first code block under `heading` in docs/<page>."""
  text = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), 'docs', page)).read()
  section = text.split(heading, 1)[1]
  block = section.split('```', 2)[1]
  return [tok for tok in block.split() if tok.startswith('--config.')]


_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('heading, written', [
    ('## The old recipe', 'tests/data/old_recipe_config.json'),
    ('## The 40 px recipe', 'results/recipe_40px/cpu/distant/seed0/config.json'),
])
def test_earlier_recipes_overrides_give_back_their_preset(heading, written):
  """docs/recipe.md's overrides of an earlier recipe, applied to today's cpu preset, give exactly the config
  that the `cpu` preset wrote then (a config.json of its runs), so its numbers keep their command."""
  import ast
  import json
  flags = _documented_overrides('recipe.md', heading)
  assert flags, f'no overrides found under "{heading}"'
  c = importlib.import_module('siampose_jax.configs.distant').get_config('cpu')
  for flag in flags:
    key, value = flag[len('--config.'):].split('=', 1)
    *parents, leaf = key.split('.')
    node = c
    for p in parents:
      node = node[p]
    assert leaf in node, flag
    node[leaf] = ast.literal_eval(value)
  with open(os.path.join(_REPO, written)) as f:
    old = json.load(f)
  new = json.loads(c.to_json())
  assert _flat(new) == _flat(old)
