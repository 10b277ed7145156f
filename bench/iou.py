"""Benchmark: vectorised exact 3D IoU (iou.box_iou_3d) vs the plain per-pair implementation.

Run from the repository root: `python -m bench.iou --n 2000`. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.iou_reference import box_iou_3d_reference
from input_pipeline.formats.geometry import box_keypoints
from siampose_jax.evaluation.iou import box_iou_3d


def random_rotations(rng, n):
  """Uniform random rotations from normalised quaternions."""
  q = rng.normal(size=(n, 4))
  w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
  return np.stack([
      np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
      np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
      np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
  ], axis=1)


def random_overlapping_pairs(n, seed=0):
  """n pairs of rotated boxes with centres close enough that most of them overlap."""
  rng = np.random.default_rng(seed)
  a = box_keypoints(random_rotations(rng, n), rng.normal(size=(n, 3)), rng.uniform(0.3, 2.0, (n, 3)))
  centres = a[:, 0] + rng.normal(scale=0.4, size=(n, 3))
  b = box_keypoints(random_rotations(rng, n), centres, rng.uniform(0.3, 2.0, (n, 3)))
  return a, b


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--n', type=int, default=2000, help='number of box pairs')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--repeats', type=int, default=5, help='timed runs of the vectorised version (median)')
  args = parser.parse_args()
  a, b = random_overlapping_pairs(args.n, args.seed)
  box_iou_3d(a[:8], b[:8])  # warm-up
  times = []
  for _ in range(args.repeats):  # the fast path takes milliseconds: a median is steadier than one run
    start = time.perf_counter()
    fast = box_iou_3d(a, b)
    times.append(time.perf_counter() - start)
  fast_s = float(np.median(times))
  start = time.perf_counter()
  plain = np.array([box_iou_3d_reference(x, y) for x, y in zip(a, b)])
  plain_s = time.perf_counter() - start
  print(json.dumps({
      'n_pairs': args.n,
      'vectorised_s': round(fast_s, 6),
      'vectorised_repeats': args.repeats,
      'plain_s': round(plain_s, 6),
      'speedup': round(plain_s / fast_s, 2),
      'max_abs_diff': float(np.abs(fast - plain).max()),
      'mean_iou': float(fast.mean()),
      'fraction_overlapping': float((fast > 0).mean()),
  }))


if __name__ == '__main__':
  main()
