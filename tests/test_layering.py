"""Both packages import downward only. input_pipeline: formats < synthetic < store < loader, and the data
layer never imports the library above it (siampose_jax). siampose_jax: models < the core modules (step,
objectives, checkpoints, embeddings, ...) < evaluation < train < main and experiments."""
from __future__ import annotations

import ast
import pathlib

import pytest

LAYERS = ('formats', 'synthetic', 'store', 'loader')
ROOT = pathlib.Path(__file__).resolve().parents[1] / 'input_pipeline'
LIBRARY = ROOT.parent / 'siampose_jax'
# siampose_jax's layers, lowest first; a top-level module not named here is a core module.
LIBRARY_LAYERS = ('models', 'core', 'evaluation', 'train', 'top')
LIBRARY_LAYER_OF = {'models': 'models', 'evaluation': 'evaluation', 'train': 'train', 'main': 'top',
                    'experiments': 'top'}


def _imported_modules(path: pathlib.Path) -> set[str]:
  """Every module an `import` or `from ... import` names in a file, function-level imports included."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      out.add(node.module)
      out.update(f'{node.module}.{a.name}' for a in node.names)  # `from input_pipeline import synthetic`
  return out


@pytest.mark.parametrize('layer', LAYERS)
def test_each_layer_imports_only_itself_and_the_layers_below(layer):
  allowed = set(LAYERS[:LAYERS.index(layer) + 1])
  for path in sorted((ROOT / layer).rglob('*.py')):
    for module in _imported_modules(path):
      parts = module.split('.')
      assert parts[0] != 'siampose_jax', f'{path} imports {module}: the data layer must not import siampose_jax'
      if parts[0] == 'input_pipeline' and len(parts) > 1 and parts[1] in LAYERS:
        assert parts[1] in allowed, f'{path} ({layer}) imports {module}, a layer above it'


def test_no_modules_outside_the_layers():
  strays = [p.name for p in ROOT.glob('*.py') if p.name != '__init__.py']
  assert strays == [], f'modules outside the layer packages: {strays}'


def _library_layer(module_parts: list[str]) -> str:
  """The layer of siampose_jax.<parts...>: by its sub-package or module name, else core."""
  return LIBRARY_LAYER_OF.get(module_parts[0], 'core') if module_parts else 'core'


@pytest.mark.parametrize('layer', LIBRARY_LAYERS)
def test_library_layers_import_only_themselves_and_the_layers_below(layer):
  allowed = set(LIBRARY_LAYERS[:LIBRARY_LAYERS.index(layer) + 1])
  paths = [p for p in sorted(LIBRARY.rglob('*.py'))
           if _library_layer(list(p.relative_to(LIBRARY).with_suffix('').parts)) == layer]
  assert paths, f'no module in layer {layer}'
  for path in paths:
    for module in _imported_modules(path):
      parts = module.split('.')
      if parts[0] == 'siampose_jax' and len(parts) > 1:
        assert _library_layer(parts[1:]) in allowed, f'{path} ({layer}) imports {module}, a layer above it'
