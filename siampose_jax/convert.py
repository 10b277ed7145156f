"""torchvision ResNet weights -> our Flax ResNet variables, for the paper's "ImageNet embeddings" baseline.

The user supplies a torchvision ResNet state dict (`.pth`/`.pt`, or `.safetensors`, which needs no torch).
The mapping is driven by our own variable tree (from `jax.eval_shape`), so every Flax leaf gets exactly one
torch tensor and every torch tensor (except the classifier and BN step counters) must be used: a partial or
foreign checkpoint fails loudly instead of leaving random weights in the embedding.

Use the result as the SimSiam encoder:

  backbone = load_imagenet_backbone(path)
  model = simsiam.SimSiam(backbone='resnet50', width=64, stem='imagenet')
  emb = model.apply(encoder_variables(backbone), simsiam.preprocess(images), method=simsiam.SimSiam.embed)

(`embed` only touches `encoder`, so the projector/predictor need no parameters.)
"""
from __future__ import annotations

import functools
import os
import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from siampose_jax.models import resnet

# Architectures torchvision ships with our layout (width 64, 7x7 stem, v1.5 strides).
TORCHVISION_BACKBONES = ('resnet18', 'resnet34', 'resnet50')
_WRAPPER_KEYS = ('state_dict', 'model')
_IGNORED = re.compile(r'^fc\.(weight|bias)$|(^|\.)num_batches_tracked$')
# Flax module name inside a block -> torchvision module name.
_BLOCK_MODULES = {'conv_proj': 'downsample.0', 'norm_proj': 'downsample.1'}
_BN_LEAVES = {'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean', 'var': 'running_var'}


def _unwrap(checkpoint: Mapping[str, Any], path: str) -> dict[str, Any]:
  """Strips training wrappers: {'state_dict': sd} / {'model': sd} and DataParallel's 'module.' prefix."""
  for key in _WRAPPER_KEYS:
    if isinstance(checkpoint.get(key), Mapping):
      checkpoint = checkpoint[key]
      break
  out = {}
  for k, v in checkpoint.items():
    k = k[len('module.'):] if k.startswith('module.') else k
    if k in out:
      raise ValueError(f'{path}: key {k!r} occurs both with and without the "module." prefix')
    out[k] = v
  return out


def _tensor_to_numpy(key, value, path):
  import torch  # pylint: disable=g-import-not-at-top
  if not isinstance(value, torch.Tensor):
    raise ValueError(f'{path}: entry {key!r} is a {type(value).__name__}, not a tensor; '
                     'expected a (possibly wrapped) torchvision state dict')
  value = value.detach().cpu()
  if value.is_floating_point():
    value = value.float()  # bfloat16 has no numpy dtype; float32 is what we compute in anyway.
  return value.numpy()


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a state dict as numpy arrays: `.safetensors` without torch, `.pth`/`.pt` with torch."""
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower()
  if ext == '.safetensors':
    import safetensors  # pylint: disable=g-import-not-at-top
    import safetensors.numpy  # pylint: disable=g-import-not-at-top
    try:
      return _unwrap(safetensors.numpy.load_file(path), path)
    except safetensors.SafetensorError as e:
      raise ValueError(f'{path}: not a readable safetensors file ({e})') from e
  if ext in ('.pth', '.pt'):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f'{path}: reading a .pth/.pt checkpoint needs torch; install it (pip install torch) or '
                        'convert the file to .safetensors (safetensors.torch.save_file) elsewhere') from e
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(checkpoint, Mapping):
      raise ValueError(f'{path}: holds a {type(checkpoint).__name__}, expected a state dict')
    return {k: _tensor_to_numpy(k, v, path) for k, v in _unwrap(checkpoint, path).items()}
  raise ValueError(f'{path}: unknown weights file extension {ext!r}; expected .safetensors, .pth or .pt')


@functools.cache
def _variable_shapes(backbone: str):
  model = resnet.make_backbone(backbone, 64, 'imagenet')
  init = functools.partial(model.init, train=False)
  return jax.eval_shape(init, jax.random.key(0), jnp.zeros((1, 64, 64, 3), jnp.float32))


def _torch_key(path: tuple[str, ...]) -> str:
  """('params', 'stage2_block1', 'BatchNorm_1', 'scale') -> 'layer2.0.bn2.weight'."""
  collection, *modules, leaf = path
  names = []
  for m in modules:
    if m == 'stem_conv':
      names.append('conv1')
    elif m == 'stem_norm':
      names.append('bn1')
    elif match := re.fullmatch(r'stage(\d+)_block(\d+)', m):
      names.append(f'layer{match[1]}.{int(match[2]) - 1}')
    elif match := re.fullmatch(r'(Conv|BatchNorm)_(\d+)', m):
      names.append(f'{"conv" if match[1] == "Conv" else "bn"}{int(match[2]) + 1}')
    elif m in _BLOCK_MODULES:
      names.append(_BLOCK_MODULES[m])
    else:
      raise AssertionError(f'unexpected module {m!r} in the {collection} tree')  # our model changed.
  names.append('weight' if leaf == 'kernel' else _BN_LEAVES[leaf])
  return '.'.join(names)


def torchvision_resnet_to_flax(state_dict: Mapping[str, np.ndarray], *,
                               backbone: str = 'resnet50') -> dict[str, Any]:
  """Maps a torchvision ResNet state dict onto `make_backbone(backbone, 64, 'imagenet')`'s variables.

  Returns {'params': ..., 'batch_stats': ...} of float32 numpy arrays. Conv kernels go OIHW -> HWIO; `fc.*`
  and `num_batches_tracked` are dropped. Raises ValueError listing every missing, misshapen or unused key.
  """
  if backbone not in TORCHVISION_BACKBONES:
    raise ValueError(f'backbone={backbone!r}: torchvision weights exist for {TORCHVISION_BACKBONES}')
  used, missing, bad_shape = set(), [], []

  def fill(key_path, target):
    path = tuple(k.key for k in key_path)
    key = _torch_key(path)
    if key not in state_dict:
      missing.append(key)
      return None
    used.add(key)
    value = np.asarray(state_dict[key], np.float32)
    if path[-1] == 'kernel' and value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)
    if value.shape != target.shape:
      want = target.shape if path[-1] != 'kernel' else tuple(target.shape[i] for i in (3, 2, 0, 1))
      bad_shape.append(f'{key} {tuple(np.shape(state_dict[key]))} (expected {want})')
      return None
    return value

  variables = jax.tree_util.tree_map_with_path(fill, _variable_shapes(backbone))
  unused = sorted(k for k in state_dict if k not in used and not _IGNORED.search(k))
  problems = [f'{name}: {", ".join(keys)}' for name, keys in
              (('missing', sorted(missing)), ('wrong shape', bad_shape), ('unknown', unused)) if keys]
  if problems:
    raise ValueError(f'state dict does not fit torchvision {backbone}: ' + '; '.join(problems))
  return {'params': variables['params'], 'batch_stats': variables['batch_stats']}


def load_imagenet_backbone(path: str | os.PathLike, backbone: str = 'resnet50') -> dict[str, Any]:
  """Backbone variables {'params', 'batch_stats'} from a torchvision weights file (see module docstring)."""
  state_dict = load_state_dict(path)  # its errors already name the file.
  try:
    return torchvision_resnet_to_flax(state_dict, backbone=backbone)
  except ValueError as e:
    raise ValueError(f'{os.fspath(path)}: {e}') from e


def encoder_variables(backbone_variables: Mapping[str, Any]) -> dict[str, Any]:
  """Puts backbone variables under SimSiam's `encoder` submodule, the layout `SimSiam.embed` reads."""
  return {col: {'encoder': backbone_variables[col]} for col in ('params', 'batch_stats')}
