"""ResNet backbones (v1.5) in Flax linen: ResNet-18/50 as in the paper, and narrow variants for CPU runs.

The backbone returns the globally pooled feature (2048-d for ResNet-50); SimSiam puts its projector on top and
the evaluation protocols use this pooled feature as the embedding.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

ModuleDef = Any


def _conv(features, kernel_size, strides=1, *, dtype=jnp.float32, name=None):
  """Bias-free conv with symmetric k//2 padding (torchvision's), not 'SAME': for stride 2 on even sizes
  'SAME' pads (0, 1) and shifts the sampling grid, which would break converted ImageNet weights."""
  if isinstance(strides, int):
    strides = (strides, strides)
  return nn.Conv(features, kernel_size, strides, padding=[(k // 2, k // 2) for k in kernel_size],
                 use_bias=False, dtype=dtype, name=name)


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

  @nn.compact
  def __call__(self, x, train: bool = True):
    conv = functools.partial(_conv, dtype=self.dtype)
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


def make_backbone(name: str, width: int = 64, stem: str = 'imagenet', dtype=jnp.float32) -> ResNet:
  if name not in ARCHS:
    raise ValueError(f'model.backbone={name!r}: expected one of {sorted(ARCHS)}')
  return ResNet(**ARCHS[name], width=width, stem=stem, dtype=dtype)
