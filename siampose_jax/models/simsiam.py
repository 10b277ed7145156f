"""SimSiam heads (projector and predictor) around a ResNet backbone (Chen & He 2020, as in the paper); the
NT-Xent and TCN baselines use the same network without the predictor."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from siampose_jax.models import resnet


class MLP(nn.Module):
  """Dense layers, BatchNorm after each, ReLU after all but the last `no_relu_last` layers.

  The projector is 3 layers with BN after each (ReLU after the first two); the predictor is a bottleneck of
  2 layers with BN+ReLU only on the hidden layer, whose output layer has a bias and no BN.
  """
  features: tuple[int, ...]
  bn_last: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    for i, f in enumerate(self.features):
      last = i == len(self.features) - 1
      x = nn.Dense(f, use_bias=last and not self.bn_last, dtype=self.dtype)(x)
      if not last or self.bn_last:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype,
                         use_scale=not last, use_bias=not last)(x)
      if not last:
        x = nn.relu(x)
    return x


class SimSiam(nn.Module):
  """Backbone -> projector (z) -> predictor (p). Returns the pooled backbone feature too (the embedding).

  With use_predictor=False it is the network of the NT-Xent and TCN baselines: the same backbone and
  3-layer projector (as in the reference, which trained them with SimSiam's heads and ignored the
  predictor), no predictor parameters, and no 'p' in the output.

  With heads=2 (the combined model) a second projector/predictor pair adds 'z2' and 'p2': one head is
  trained on nearby pairs, the other on distant ones. With split_feature the first head reads the first
  half of the backbone feature and the second head the other half, so the halves specialise: the first is
  the pose embedding (box fitting, classification), the second the identity embedding (re-identification);
  without it both heads read the whole feature (one embedding for every task).
  """
  backbone: str = 'resnet50'
  width: int = 64
  stem: str = 'imagenet'
  proj_dim: int = 2048
  pred_hidden: int = 512
  dtype: Any = jnp.float32
  use_predictor: bool = True
  heads: int = 1
  split_feature: bool = False
  conv_impl: str = 'auto'  # resnet._conv: 'auto' | 'xla' | 'im2col' (same parameters; for benchmarks/tests)

  def setup(self):
    if self.heads not in (1, 2) or (self.split_feature and self.heads != 2):
      raise ValueError(f'model.heads={self.heads} with split_feature={self.split_feature}: expected 1 head, '
                       'or 2 heads with or without a split feature')
    self.encoder = resnet.make_backbone(self.backbone, self.width, self.stem, self.dtype, self.conv_impl)
    self.projector = MLP((self.proj_dim,) * 3, bn_last=True, dtype=self.dtype)
    if self.use_predictor:
      self.predictor = MLP((self.pred_hidden, self.proj_dim), bn_last=False, dtype=self.dtype)
    if self.heads == 2:
      self.projector2 = MLP((self.proj_dim,) * 3, bn_last=True, dtype=self.dtype)
      self.predictor2 = MLP((self.pred_hidden, self.proj_dim), bn_last=False, dtype=self.dtype)

  def __call__(self, x, train: bool = True):
    feature = self.encoder(x, train=train)
    pose, identity = self.embedding_slices()
    z = self.projector(feature[:, pose], train=train).astype(jnp.float32)
    out = dict(feature=feature, z=z)
    if self.use_predictor:
      out['p'] = self.predictor(z, train=train).astype(jnp.float32)
    if self.heads == 2:
      out['z2'] = self.projector2(feature[:, identity], train=train).astype(jnp.float32)
      out['p2'] = self.predictor2(out['z2'], train=train).astype(jnp.float32)
    return out

  def embedding_slices(self) -> tuple[slice, slice]:
    """(pose, identity) slices of the backbone feature: its halves with split_feature, else the whole."""
    if not self.split_feature:
      return slice(None), slice(None)
    half = resnet.feature_dim(self.backbone, self.width) // 2
    return slice(0, half), slice(half, None)

  def embed(self, x):
    """Backbone feature of un-augmented images, in inference mode (running BN statistics)."""
    return self.encoder(x, train=False)


IMAGENET_MEAN = jnp.array([0.485, 0.456, 0.406]) * 255
IMAGENET_STD = jnp.array([0.229, 0.224, 0.225]) * 255


def preprocess(images, dtype=jnp.float32):
  """uint8 [..., H, W, 3] -> standardised floats, done on device so the host ships 4x fewer bytes."""
  return ((images.astype(jnp.float32) - IMAGENET_MEAN) / IMAGENET_STD).astype(dtype)
