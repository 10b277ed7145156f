"""ResNet backbones (v1.5) in Flax linen: ResNet-18/50 as in the paper, and narrow variants for CPU runs.

The backbone returns the globally pooled feature (2048-d for ResNet-50); SimSiam puts its projector on top and
the evaluation protocols use this pooled feature as the embedding.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

ModuleDef = Any


CONV_IMPLS = ('auto', 'xla', 'im2col')
_NHWC = ('NHWC', 'HWIO', 'NHWC')  # nn.Conv's layout, the only one im2col_conv handles


def use_im2col(out_hw: Sequence[int], kernel_hw: Sequence[int]) -> bool:
  """The 'auto' rule: im2col where the kernel covers the whole output map (k >= Ho and k >= Wo).

  There XLA:CPU's convolution (jax 0.10.2) is up to 58x slower (forward + gradients) than the same maths as
  one matmul, in the forward pass (stride 1: input map = output map) or in the input gradient (stride 2: a
  k x k conv on the dilated output gradient). Elsewhere im2col loses on large maps and gains at most ~1.5x
  on small ones, a few ms a step (bench/README.md, per-shape table). The `cpu` preset's smallest conv
  output is 4x4 under 3x3 kernels, so its network keeps XLA's convolution, bit for bit.
  """
  return all(k >= o for k, o in zip(kernel_hw, out_hw))


def _out_hw(in_hw, kernel_hw, strides, padding):
  return tuple((h + lo + hi - k) // s + 1 for h, k, s, (lo, hi) in zip(in_hw, kernel_hw, strides, padding))


def im2col_conv(x, kernel, strides, padding, precision=None):
  """NHWC x HWIO convolution as pad + kh*kw strided slices concatenated on channels + one matmul.

  Same maths as lax.conv_general_dilated (no dilation, one group); the slices' (i, j, c) order is the HWIO
  kernel's row-major order, so the kernel reshapes to [kh*kw*C, O] without a transpose.
  """
  (kh, kw, c, o), (sh, sw) = kernel.shape, strides
  x = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  ho, wo = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
  cols = [x[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]
  cols = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)
  return jnp.dot(cols, kernel.reshape(kh * kw * c, o), precision=precision)


def _conv_fn(impl: str):
  """A drop-in for lax.conv_general_dilated (nn.Conv's hook) that routes NHWC 2-D convs by `impl`."""

  def conv(lhs, rhs, window_strides, padding, *, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
           feature_group_count=1, precision=None, **kw):
    plain = (lhs.ndim == 4 and feature_group_count == 1 and not kw and not isinstance(padding, str)
             and dimension_numbers == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
             and all(d in (None, 1) or all(v == 1 for v in d) for d in (lhs_dilation, rhs_dilation)))
    if plain and (impl == 'im2col' or (impl == 'auto' and use_im2col(
        _out_hw(lhs.shape[1:3], rhs.shape[:2], window_strides, padding), rhs.shape[:2]))):
      return im2col_conv(lhs, rhs, window_strides, padding, precision)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                    feature_group_count=feature_group_count, precision=precision, **kw)

  return conv


_CONV_FNS = {impl: _conv_fn(impl) for impl in CONV_IMPLS}


def _conv(features, kernel_size, strides=1, *, dtype=jnp.float32, impl='auto', name=None):
  """Bias-free conv with symmetric k//2 padding (torchvision's), not 'SAME': for stride 2 on even sizes
  'SAME' pads (0, 1) and shifts the sampling grid, which would break converted ImageNet weights.
  impl: 'auto' (use_im2col decides per call), 'xla' or 'im2col'; parameters are the same either way."""
  if isinstance(strides, int):
    strides = (strides, strides)
  if impl not in _CONV_FNS:
    raise ValueError(f'conv impl={impl!r}: expected one of {CONV_IMPLS}')
  return nn.Conv(features, kernel_size, strides, padding=[(k // 2, k // 2) for k in kernel_size],
                 use_bias=False, dtype=dtype, conv_general_dilated=_CONV_FNS[impl], name=name)


class BasicBlock(nn.Module):
  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1
  expansion = 1

  @nn.compact
  def __call__(self, x):
    residual = x
    y = nn.relu(self.norm()(self.conv(self.filters, (3, 3), self.strides)(x)))
    y = self.norm(scale_init=nn.initializers.zeros)(self.conv(self.filters, (3, 3))(y))
    if residual.shape != y.shape:
      residual = self.norm(name='norm_proj')(
          self.conv(self.filters, (1, 1), self.strides, name='conv_proj')(residual))
    return nn.relu(residual + y)


class BottleneckBlock(nn.Module):
  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1
  expansion = 4

  @nn.compact
  def __call__(self, x):
    residual = x
    y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
    y = nn.relu(self.norm()(self.conv(self.filters, (3, 3), self.strides)(y)))  # stride on the 3x3 (v1.5)
    y = self.norm(scale_init=nn.initializers.zeros)(self.conv(self.filters * 4, (1, 1))(y))
    if residual.shape != y.shape:
      residual = self.norm(name='norm_proj')(
          self.conv(self.filters * 4, (1, 1), self.strides, name='conv_proj')(residual))
    return nn.relu(residual + y)


class ResNet(nn.Module):
  """ResNet trunk + global average pool.

  stem: 'imagenet' (7x7/2 conv + 3x3/2 max-pool, for 224 px), 'small' (3x3/2 conv, no pool: a 4x cheaper
  start for 64-96 px images) or 'cifar' (3x3/1 conv, no pool).
  """
  stage_sizes: Sequence[int]
  block_cls: ModuleDef
  width: int = 64
  stem: str = 'imagenet'
  dtype: Any = jnp.float32
  conv_impl: str = 'auto'  # see _conv; 'xla' is the plain-convolution network the tests compare against

  @nn.compact
  def __call__(self, x, train: bool = True):
    conv = functools.partial(_conv, dtype=self.dtype, impl=self.conv_impl)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5,
                             dtype=self.dtype)
    if self.stem == 'imagenet':
      x = conv(self.width, (7, 7), (2, 2), name='stem_conv')(x)
      x = nn.relu(norm(name='stem_norm')(x))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    elif self.stem in ('small', 'cifar'):
      s = 2 if self.stem == 'small' else 1
      x = conv(self.width, (3, 3), (s, s), name='stem_conv')(x)
      x = nn.relu(norm(name='stem_norm')(x))
    else:
      raise ValueError(f'model.stem={self.stem!r}: expected imagenet, small or cifar')
    for i, n in enumerate(self.stage_sizes):
      for j in range(n):
        strides = 2 if i > 0 and j == 0 else 1
        x = self.block_cls(self.width * 2**i, conv=conv, norm=norm, strides=strides,
                           name=f'stage{i + 1}_block{j + 1}')(x)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


ARCHS = {
    'resnet18': dict(stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock),
    'resnet34': dict(stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock),
    'resnet50': dict(stage_sizes=(3, 4, 6, 3), block_cls=BottleneckBlock),
    'tiny': dict(stage_sizes=(1, 1, 1, 1), block_cls=BasicBlock),
}


def feature_dim(name: str, width: int) -> int:
  arch = ARCHS[name]
  return width * 8 * arch['block_cls'].expansion


def make_backbone(name: str, width: int = 64, stem: str = 'imagenet', dtype=jnp.float32,
                  conv_impl: str = 'auto') -> ResNet:
  if name not in ARCHS:
    raise ValueError(f'model.backbone={name!r}: expected one of {sorted(ARCHS)}')
  return ResNet(**ARCHS[name], width=width, stem=stem, dtype=dtype, conv_impl=conv_impl)
