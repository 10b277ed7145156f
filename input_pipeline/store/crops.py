"""Object crops of stored frames: the pixel window around a frame's keypoint box, cut (zero-padded where it
leaves the image), longest side resized to the input size and padded to a square.

Training views (input_pipeline.loader) and evaluation crops (`frame_store.eval_arrays`) both start here,
so that the two see the same object window.
"""
from __future__ import annotations

import cv2
import numpy as np


def crop_window(point_2d: np.ndarray, image_hw: tuple[int, int], margin: float = 0.0
                ) -> tuple[int, int, int, int]:
  """Pixel window (x0, y0, x1, y1), end-exclusive, around the 2D box of the 9 keypoints.

  point_2d holds normalised (u, v[, depth]); the box is grown by `margin` of its size on every side
  and rounded outwards. It may extend past the image (the crop is then zero-padded, like the
  reference's safe crop).
  """
  p = np.asarray(point_2d, np.float64)[..., :2].reshape(-1, 2)
  h, w = image_hw
  xy = p * np.array([w, h], np.float64)
  lo, hi = xy.min(0), xy.max(0)
  grow = (hi - lo) * margin
  lo, hi = np.floor(lo - grow), np.ceil(hi + grow)
  hi = np.maximum(hi, lo + 1)
  return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def frame_window(point_2d: np.ndarray | None, image_hw: tuple[int, int], margin: float = 0.0
                 ) -> tuple[int, int, int, int]:
  """`crop_window` of a stored frame; a frame without a box (a UCF101 clip frame, stored centre-cropped)
  is used whole."""
  if point_2d is None:
    return 0, 0, int(image_hw[1]), int(image_hw[0])
  return crop_window(point_2d, image_hw, margin)


def _safe_crop(image: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
  x0, y0, x1, y1 = window
  h, w = image.shape[:2]
  if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
    return image[y0:y1, x0:x1]
  out = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], image.dtype)
  sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
  if sx1 > sx0 and sy1 > sy0:
    out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
  return out


def crop_and_resize(image: np.ndarray, window: tuple[int, int, int, int], size: int) -> np.ndarray:
  """Crops `window`, resizes its longest side to `size` and zero-pads it centred to size x size."""
  crop = _safe_crop(image, window)
  ch, cw = crop.shape[:2]
  s = size / max(ch, cw)
  nh, nw = max(1, min(size, round(ch * s))), max(1, min(size, round(cw * s)))
  if (nh, nw) != (ch, cw):
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    crop = cv2.resize(crop, (nw, nh), interpolation=interp)
  out = np.zeros((size, size) + image.shape[2:], image.dtype)
  top, left = (size - nh) // 2, (size - nw) // 2
  out[top:top + nh, left:left + nw] = crop
  return out
