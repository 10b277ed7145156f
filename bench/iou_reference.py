"""Plain per-pair 3D IoU: the readable counterpart of `siampose_jax.evaluation.iou.box_iou_3d`.

Each face of one box is clipped against the other box's 6 half-spaces (Sutherland-Hodgman); the clipped
polygons of both boxes bound the intersection, so its volume is the volume of their vertices' convex hull.
Used by the tests as an independent check and by bench/iou.py as the baseline.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull

from input_pipeline.formats.geometry import FACES

_REL_TOL = 1e-9  # Same meaning as in geometry: distances this small (relative to box size) count as zero.
_FLAT = 1e-7  # Point sets thinner than this (relative) have no volume; qhull would reject them.


def _box_volume(kp):
  corner = kp[1]
  return abs(np.linalg.det(np.stack([kp[5] - corner, kp[3] - corner, kp[2] - corner])))


def _half_spaces(kp):
  """Outward unit normals and offsets of the 6 faces: x is inside iff normal @ x <= offset."""
  centre = kp[1:].mean(axis=0)
  planes = []
  for face in FACES:
    quad = kp[face]
    normal = np.cross(quad[1] - quad[0], quad[3] - quad[0])
    normal /= np.linalg.norm(normal)
    if normal @ (quad[0] - centre) < 0:
      normal = -normal
    planes.append((normal, normal @ quad[0]))
  return planes


def _clip(polygon, normal, offset, tol):
  """Sutherland-Hodgman: the part of a convex polygon (list of points) with normal @ x <= offset."""
  out = []
  for i, p in enumerate(polygon):
    q = polygon[(i + 1) % len(polygon)]
    dp, dq = normal @ p - offset, normal @ q - offset
    if dp <= tol:
      out.append(p)
    if (dp < -tol and dq > tol) or (dp > tol and dq < -tol):
      out.append(p + (q - p) * dp / (dp - dq))
  return out


def _clipped_faces(kp, other, tol):
  """Vertices of this box's faces clipped to the other box."""
  points = []
  for face in FACES:
    polygon = list(kp[face])
    for normal, offset in _half_spaces(other):
      polygon = _clip(polygon, normal, offset, tol)
    points.extend(polygon)
  return points


def box_iou_3d_reference(a, b):
  """3D IoU of two boxes given as keypoints [9, 3]; 0 for disjoint, touching or zero-volume boxes."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  vol_a, vol_b = _box_volume(a), _box_volume(b)
  size = max(np.ptp(a[1:], axis=0).max(), np.ptp(b[1:], axis=0).max())
  if min(vol_a, vol_b) <= _FLAT * size ** 3:
    return 0.0
  tol = _REL_TOL * size
  points = np.array(_clipped_faces(a, b, tol) + _clipped_faces(b, a, tol)).reshape(-1, 3)
  if len(points) < 4:
    return 0.0
  spread = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
  if spread[-1] <= _FLAT * spread[0]:
    return 0.0
  inter = min(ConvexHull(points).volume, vol_a, vol_b)
  return float(inter / (vol_a + vol_b - inter))
