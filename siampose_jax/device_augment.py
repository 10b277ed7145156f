"""Colour jitter, random grayscale and the pair's horizontal flip in jax.numpy, inside the jitted train step.

Why: on an accelerator the host's cores, not the device, limit the pair loader, and these per-pixel ops are
most of its work after decoding. With `config.data.augment_on_device` the host loader only crops and
resizes (RandomResizedCrop decides which pixels are decoded, so it stays on the host) and ships uint8 views;
the train step applies this module to each view before `simsiam.preprocess`.

Same maths, ranges and order semantics as the host version (input_pipeline/loader/augment.py, torchvision's
RandomApply(ColorJitter, p) then RandomGrayscale): with probability jitter_p the four ops (brightness,
contrast, saturation, hue) run in a random permutation per view, each factor uniform in its range and each op
clipping to [0, 1]; grayscale (BT.601 luma) with probability grayscale_p; the horizontal flip is decided once
per example and shared by all its views; the result is rounded to uint8 once, as on the host.

Two parts, so tests can check the maths apart from the randomness: `sample_params` (key -> per-example
parameters) and `apply` (images, parameters -> images, pure). Keys: `fold_in(key(seed), step)` with the train
state's step, so an exact resume draws the same augmentations. Every draw has the global batch shape, so the
values do not depend on how the batch is sharded (jit is sharding-invariant; with
`jax_threefry_partitionable`, the default, each device only computes its own rows). Changing that flag
changes the values themselves: resume with the JAX configuration the run started with.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from input_pipeline.loader import augment

BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
_LUMA = tuple(float(w) for w in augment.LUMA)


# ----------------------------------------------------------------------------------------- colour ops
# x: float32 [N, H, W, 3] in [0, 1]; factor: [N] (one per example).
def _per_example(f):
  return f[:, None, None, None]


def rgb_to_gray(x):
  """BT.601 luma [N, H, W] as a weighted sum (a matmul could run at reduced precision on TPU/GPU)."""
  return _LUMA[0] * x[..., 0] + _LUMA[1] * x[..., 1] + _LUMA[2] * x[..., 2]


def adjust_brightness(x, factor):
  return jnp.clip(x * _per_example(factor), 0, 1)


def adjust_contrast(x, factor):
  mean = rgb_to_gray(x).mean(axis=(1, 2))
  f = _per_example(factor)
  return jnp.clip(f * x + (1 - f) * _per_example(mean), 0, 1)


def adjust_saturation(x, factor):
  f = _per_example(factor)
  return jnp.clip(f * x + (1 - f) * rgb_to_gray(x)[..., None], 0, 1)


def adjust_hue(x, shift):
  """Rotates the HSV hue by `shift` turns: RGB -> HSV (hue in sextants, OpenCV's branch order) -> RGB."""
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  v = jnp.max(x, axis=-1)
  d = v - jnp.min(x, axis=-1)
  s = jnp.where(v > 0, d / jnp.where(v > 0, v, 1), 0)
  dd = jnp.where(d > 0, d, 1)
  h = jnp.where(v == r, (g - b) / dd, jnp.where(v == g, 2 + (b - r) / dd, 4 + (r - g) / dd))
  h = jnp.mod(jnp.where(d > 0, h, 0) + 6 * shift[:, None, None], 6)
  # HSV -> RGB without branches: channel n in (R, G, B) = (5, 3, 1) is v - v s clip(min(k, 4 - k), 0, 1),
  # k = (n + h) mod 6.
  channels = []
  for n in (5, 3, 1):
    k = jnp.mod(n + h, 6)
    channels.append(v - v * s * jnp.clip(jnp.minimum(k, 4 - k), 0, 1))
  return jnp.clip(jnp.stack(channels, axis=-1), 0, 1)


OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


# ----------------------------------------------------------------------------------------- apply
def color_jitter(x, jitter, order, factors):
  """For the examples with `jitter`, the 4 ops in each example's `order` ([N, 4], a permutation).

  Every op is computed at every position and kept where the example's permutation puts it (the per-pixel
  ops cost little next to the network). A hue shift of exactly 0 is skipped, as the host skips an op whose
  strength is 0; the other ops are exactly the identity at their neutral factor 1.
  """
  for position in range(4):
    op_here = jnp.where(jitter, order[:, position], -1)
    for k, op in enumerate(OPS):
      use = op_here == k
      if k == HUE:
        use &= factors[:, HUE] != 0
      x = jnp.where(_per_example(use), op(x, factors[:, k]), x)
  return x


def apply_float(images, params):
  """uint8 [N, H, W, 3] -> float32 in [0, 1]: flip, colour jitter, grayscale (before the rounding)."""
  images = jnp.where(_per_example(params['flip']), images[:, :, ::-1], images)
  x = images.astype(jnp.float32) * jnp.float32(1 / 255)
  x = color_jitter(x, params['jitter'], params['order'], params['factors'])
  gray = jnp.repeat(rgb_to_gray(x)[..., None], 3, axis=-1)
  return jnp.where(_per_example(params['gray']), gray, x)


def apply(images, params):
  """uint8 [N, H, W, 3] -> the augmented uint8 views, rounded once as on the host."""
  return jnp.clip(jnp.round(apply_float(images, params) * 255), 0, 255).astype(jnp.uint8)


# ----------------------------------------------------------------------------------------- sampling
@dataclasses.dataclass(frozen=True)
class DeviceAugment:
  """The colour/flip settings of config.data.aug and the seed; `self(views, step)` augments a batch."""
  seed: int = 0
  brightness: float = 0.2
  contrast: float = 0.2
  saturation: float = 0.2
  hue: float = 0.05
  jitter_p: float = 0.8
  grayscale_p: float = 0.2
  flip_p: float = 0.5

  @classmethod
  def from_aug(cls, aug: dict[str, Any] | None, seed: int) -> DeviceAugment:
    """From a host augmentation dict (`augment.aug_config` keys; the crop keys stay with the host)."""
    aug = augment.aug_config(aug)
    return cls(seed=int(seed), **{f.name: float(aug[f.name]) for f in dataclasses.fields(cls)
                                  if f.name != 'seed'})

  def key(self, step) -> jax.Array:
    return jax.random.fold_in(jax.random.key(self.seed), step)

  def __call__(self, views: Sequence[jax.Array], step) -> list[jax.Array]:
    """The augmented views (uint8, same shapes) of one batch at train step `step`."""
    params = sample_params(self.key(step), views[0].shape[0], len(views), self)
    return [apply(v, p) for v, p in zip(views, params)]


def sample_params(key, n: int, num_views: int, aug: DeviceAugment) -> list[dict[str, jax.Array]]:
  """Per-example parameters of each view: flip [n] (the same array for every view), jitter [n], order
  [n, 4] (a uniform permutation: the argsort of 4 uniforms), factors [n, 4] (brightness, contrast,
  saturation factors, hue shift in turns) and gray [n]. Global shapes only: see the module docstring."""
  flip = jax.random.uniform(jax.random.fold_in(key, 0), (n,)) < aug.flip_p
  b, c, s, h = aug.brightness, aug.contrast, aug.saturation, aug.hue
  lo = jnp.array([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -h], jnp.float32)
  hi = jnp.array([1 + b, 1 + c, 1 + s, h], jnp.float32)
  out = []
  for view in range(num_views):
    k_jitter, k_order, k_factors, k_gray = jax.random.split(jax.random.fold_in(key, view + 1), 4)
    out.append(dict(
        flip=flip,
        jitter=jax.random.uniform(k_jitter, (n,)) < aug.jitter_p,
        order=jnp.argsort(jax.random.uniform(k_order, (n, 4)), axis=-1).astype(jnp.int32),
        factors=jax.random.uniform(k_factors, (n, 4), minval=lo, maxval=hi),
        gray=jax.random.uniform(k_gray, (n,)) < aug.grayscale_p))
  return out


def from_config(config) -> DeviceAugment | None:
  """The train step's augmentation for `config`, or None when the host does it all (the flag is off, or
  a config written before it existed)."""
  if not config.data.get('augment_on_device', False):
    return None
  return DeviceAugment.from_aug(config.data.aug.to_dict(), config.seed)
