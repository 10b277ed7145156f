"""Object crops and SimSiam augmentations in numpy/OpenCV, each driven by an explicit np.random.Generator.

Images are RGB, uint8 at the public boundaries and float32 in [0, 1] inside `augment_view`, so a view is
rounded once. The augmentations follow the reference (torchvision/albumentations semantics):
RandomResizedCrop, a horizontal flip decided once per pair, colour jitter in random order with p=0.8,
grayscale with p=0.2.
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from input_pipeline.loader.aug_params import DEFAULT_AUG, NO_AUG, aug_config  # noqa: F401 (augment.X users)

# ITU-R BT.601 luma weights (what cv2.COLOR_RGB2GRAY and PIL's 'L' use).
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def random_resized_crop_params(image_hw: tuple[int, int], rng: np.random.Generator,
                               scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
  """(top, left, height, width) of a random crop, torchvision's RandomResizedCrop sampling."""
  h, w = image_hw
  area = h * w
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(*log_ratio))
    cw = int(round(math.sqrt(target * aspect)))
    ch = int(round(math.sqrt(target / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
  in_ratio = w / h  # fallback: the largest centred crop with an allowed aspect ratio
  if in_ratio < min(ratio):
    cw, ch = w, int(round(w / min(ratio)))
  elif in_ratio > max(ratio):
    ch, cw = h, int(round(h * max(ratio)))
  else:
    cw, ch = w, h
  return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, size: int,
                        scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)) -> np.ndarray:
  top, left, ch, cw = random_resized_crop_params(image.shape[:2], rng, scale, ratio)
  crop = image[top:top + ch, left:left + cw]
  if (ch, cw) == (size, size):
    return crop.copy()
  return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)


# ----------------------------------------------------------------------------------------- colour
def rgb_to_gray(x: np.ndarray) -> np.ndarray:
  """ITU-R 601 luma [..., H, W] of float RGB x [..., H, W, 3]."""
  return x @ LUMA


def adjust_brightness(x: np.ndarray, factor: float) -> np.ndarray:
  return np.clip(x * np.float32(factor), 0, 1)


def adjust_contrast(x: np.ndarray, factor: float) -> np.ndarray:
  mean = rgb_to_gray(x).mean(dtype=np.float32)
  return np.clip(np.float32(factor) * x + np.float32(1 - factor) * mean, 0, 1)


def adjust_saturation(x: np.ndarray, factor: float) -> np.ndarray:
  gray = rgb_to_gray(x)[..., None]
  return np.clip(np.float32(factor) * x + np.float32(1 - factor) * gray, 0, 1)


def adjust_hue(x: np.ndarray, shift: float) -> np.ndarray:
  """Rotates the HSV hue by `shift` turns (shift in [-0.5, 0.5])."""
  hsv = cv2.cvtColor(np.ascontiguousarray(x, np.float32), cv2.COLOR_RGB2HSV)  # H in degrees
  hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(shift * 360.0), 360.0)
  return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0, 1)


def _to_float(img: np.ndarray) -> np.ndarray:
  return img.astype(np.float32) * np.float32(1 / 255)


def _to_uint8(x: np.ndarray) -> np.ndarray:
  return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def _color_jitter_f32(x, rng, brightness, contrast, saturation, hue, p):
  if rng.random() >= p:
    return x
  order = rng.permutation(4)
  factors = [rng.uniform(max(0.0, 1 - v), 1 + v) if v > 0 else None
             for v in (brightness, contrast, saturation)]
  factors.append(rng.uniform(-hue, hue) if hue > 0 else None)
  ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
  for i in order:
    if factors[i] is not None:
      x = ops[i](x, factors[i])
  return x


def color_jitter(img: np.ndarray, rng: np.random.Generator, brightness=0.2, contrast=0.2,
                 saturation=0.2, hue=0.05, p=0.8) -> np.ndarray:
  """torchvision's RandomApply(ColorJitter(...), p): factors uniform, the 4 ops in random order."""
  return _to_uint8(_color_jitter_f32(_to_float(img), rng, brightness, contrast, saturation, hue, p))


def _grayscale_f32(x, rng, p):
  if rng.random() >= p:
    return x
  return np.repeat(rgb_to_gray(x)[..., None], 3, axis=-1)


def random_grayscale(img: np.ndarray, rng: np.random.Generator, p=0.2) -> np.ndarray:
  return _to_uint8(_grayscale_f32(_to_float(img), rng, p))


def augment_view(crop: np.ndarray, rng: np.random.Generator, size: int, flip: bool,
                 aug: dict[str, Any]) -> np.ndarray:
  """One view: random resized crop, the pair's shared flip, colour jitter, grayscale (uint8 out)."""
  img = random_resized_crop(crop, rng, size, aug['crop_scale'], aug['crop_ratio'])
  if flip:
    img = img[:, ::-1]
  x = _to_float(img)
  x = _color_jitter_f32(x, rng, aug['brightness'], aug['contrast'], aug['saturation'], aug['hue'],
                        aug['jitter_p'])
  x = _grayscale_f32(x, rng, aug['grayscale_p'])
  return _to_uint8(x)
