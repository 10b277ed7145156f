"""Crops and augmentations against independent computations (cv2, colorsys, hand-made windows)."""
from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np
import pytest

from input_pipeline.loader import augment
from input_pipeline.store import crops


def _image(h=24, w=32, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_crop_window_from_keypoints():
  pts = np.zeros((9, 3))
  pts[:, 0] = np.linspace(0.25, 0.5, 9)    # u: x from 10 to 20 px (W=40)
  pts[:, 1] = np.linspace(0.1, 0.35, 9)[::-1]  # v: y from 3 to 10.5 px (H=30)
  assert crops.crop_window(pts, (30, 40)) == (10, 3, 20, 11)
  # margin 0.5 grows each side by half the box: x 5..25, y -0.75..14.25 -> rounded outwards.
  assert crops.crop_window(pts, (30, 40), margin=0.5) == (5, -1, 25, 15)
  # A degenerate (zero-width) box still gives a 1-pixel window.
  pts[:, 0] = 0.5
  assert crops.crop_window(pts, (30, 40))[0:3:2] == (20, 21)


def test_crop_and_resize_pads_outside_and_to_square():
  img = _image(20, 30)
  # Window same size as output: no resize, out-of-image part is zero.
  out = crops.crop_and_resize(img, (-3, 5, 7, 15), 10)
  np.testing.assert_array_equal(out[:, 3:], img[5:15, 0:7])
  assert out[:, :3].max() == 0
  # 20 wide x 10 high -> 40 x 20, centred vertically with 10 zero rows above and below.
  out = crops.crop_and_resize(img, (2, 4, 22, 14), 40)
  assert out.shape == (40, 40, 3)
  assert out[:10].max() == 0 and out[30:].max() == 0
  want = cv2.resize(img[4:14, 2:22], (40, 20), interpolation=cv2.INTER_LINEAR)
  np.testing.assert_array_equal(out[10:30], want)
  # Tall window shrunk: longest side becomes the size, padding left/right.
  out = crops.crop_and_resize(img, (0, 0, 10, 20), 10)
  assert out[:, :2].max() == 0 and out[:, 8:].max() == 0 and out[:, 3:7].min() >= 0


def test_random_resized_crop_params_respect_scale_and_ratio():
  rng = np.random.default_rng(0)
  h, w = 60, 80
  for _ in range(300):
    top, left, ch, cw = augment.random_resized_crop_params((h, w), rng, (0.2, 1.0), (3 / 4, 4 / 3))
    assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w
    # Sizes are rounded, so allow about one pixel of slack on area and aspect.
    assert 0.2 * h * w * 0.9 <= ch * cw <= h * w
    assert 3 / 4 * 0.9 <= cw / ch <= 4 / 3 * 1.1
  # Impossible ratio with full area: torchvision's fallback, the largest centred crop of ratio 2.
  assert augment.random_resized_crop_params((40, 40), rng, (1.0, 1.0), (2.0, 3.0)) == (10, 0, 20, 40)


def test_random_resized_crop_matches_its_params():
  img = _image(40, 50)
  params = augment.random_resized_crop_params(img.shape[:2], np.random.default_rng(3))
  out = augment.random_resized_crop(img, np.random.default_rng(3), 16)
  top, left, ch, cw = params
  np.testing.assert_array_equal(out, cv2.resize(img[top:top + ch, left:left + cw], (16, 16)))
  # Full-area square crop of a square image is the identity.
  sq = _image(16, 16)
  out = augment.random_resized_crop(sq, np.random.default_rng(0), 16, (1, 1), (1, 1))
  np.testing.assert_array_equal(out, sq)


def test_grayscale_is_bt601_luma():
  img = _image()
  gray = augment.rgb_to_gray(img.astype(np.float32))
  np.testing.assert_allclose(gray, cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), atol=0.51)
  out = augment.random_grayscale(img, np.random.default_rng(0), p=1.0)
  assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
  assert np.abs(out[..., 0].astype(int) - cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)).max() <= 1
  np.testing.assert_array_equal(augment.random_grayscale(img, np.random.default_rng(0), p=0.0), img)
  rng = np.random.default_rng(1)
  tiny = _image(2, 2)
  hits = sum(not np.array_equal(augment.random_grayscale(tiny, rng, 0.2), tiny) for _ in range(2000))
  assert 0.17 < hits / 2000 < 0.23


@pytest.mark.parametrize('shift', [0.05, -0.05, 0.3])
def test_hue_shift_matches_colorsys(shift):
  x = _image(6, 7, seed=4).astype(np.float32) / 255
  out = augment.adjust_hue(x, shift)
  for (i, j), _ in np.ndenumerate(x[..., 0]):
    hh, s, v = colorsys.rgb_to_hsv(*x[i, j])
    want = colorsys.hsv_to_rgb((hh + shift) % 1.0, s, v)
    np.testing.assert_allclose(out[i, j], want, atol=2e-3)


def test_brightness_contrast_saturation():
  x = _image(8, 9, seed=5).astype(np.float32) / 255
  np.testing.assert_allclose(augment.adjust_brightness(x, 1.3), np.minimum(x * 1.3, 1), atol=1e-6)
  gray = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
  np.testing.assert_allclose(augment.adjust_contrast(x, 0.0), np.full_like(x, gray.mean()), atol=1e-6)
  want = np.clip(gray.mean() + 0.7 * (x - gray.mean()), 0, 1)
  np.testing.assert_allclose(augment.adjust_contrast(x, 0.7), want, atol=1e-6)
  np.testing.assert_allclose(augment.adjust_saturation(x, 0.0), np.repeat(gray[..., None], 3, -1), atol=1e-6)
  np.testing.assert_allclose(augment.adjust_saturation(x, 1.0), x, atol=1e-6)


def test_color_jitter_probability_and_ranges():
  img = (_image(10, 10, seed=6) // 2 + 40).astype(np.uint8)  # no clipping at 1.2x brightness
  np.testing.assert_array_equal(augment.color_jitter(img, np.random.default_rng(0), p=0.0), img)
  ratios = []
  for seed in range(50):
    out = augment.color_jitter(img, np.random.default_rng(seed), brightness=0.2, contrast=0,
                               saturation=0, hue=0, p=1.0)
    r = out.astype(float).sum() / img.astype(float).sum()
    np.testing.assert_allclose(out, np.clip(np.rint(img * r), 0, 255), atol=1.01)  # one global factor
    ratios.append(r)
  assert 0.8 <= min(ratios) < 0.9 and 1.1 < max(ratios) <= 1.2
  changed = sum(not np.array_equal(augment.color_jitter(img, np.random.default_rng(s)), img)
                for s in range(200))
  assert 140 < changed < 180  # p = 0.8


def test_augment_view_identity_and_flip():
  crop = _image(20, 20, seed=7)
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(augment.augment_view(crop, rng, 20, False, augment.NO_AUG), crop)
  np.testing.assert_array_equal(augment.augment_view(crop, rng, 20, True, augment.NO_AUG), crop[:, ::-1])
  out = augment.augment_view(crop, np.random.default_rng(1), 12, False, augment.DEFAULT_AUG)
  assert out.shape == (12, 12, 3) and out.dtype == np.uint8


def test_aug_config_rejects_unknown_keys():
  assert augment.aug_config({'hue': 0.0})['hue'] == 0.0
  with pytest.raises(ValueError, match='unknown augmentation keys'):
    augment.aug_config({'blur': 1})
  assert math.isclose(augment.aug_config(None)['crop_ratio'][1], 4 / 3)
