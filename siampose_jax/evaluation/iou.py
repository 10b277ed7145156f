"""Exact 3D IoU of oriented boxes given as Objectron keypoints (input_pipeline.formats.geometry).

Used by the box-fitting evaluation; boxes are taken as rigid (rotation, translation and scale recovered by
`geometry.box_parameters`).
"""
from __future__ import annotations

import numpy as np

from input_pipeline.formats.geometry import NUM_KEYPOINTS, box_parameters

# -- Exact 3D IoU of oriented boxes ------------------------------------------------------------------------
# The intersection of boxes A and B is a convex polytope whose faces lie on their 12 face planes, so its volume
# is sum(area * height) / 3 over those faces, heights taken from one common point (A's corner (-,-,-), which
# makes A's 3 faces through it drop out). The face on a plane of box P (A or B, Q the other) is (that face of
# P) ∩ Q: in the plane, the intersection of 10 half-planes a . x <= b (the face's 4 edges and the traces of Q's
# 6 planes). A convex polygon's area is sum(b * length) / 2 over its boundary lines (unit a), where a line's
# length is what is left of it after clipping by the other half-planes: a min/max, no vertex sorting, so it
# vectorises over pairs. Each box is handled in its own frame, where it is axis-aligned, which keeps the
# arithmetic well conditioned far from the camera, and faces that cannot reach the other box are skipped.
# Degenerate contacts need care and are rare, so polygons where two lines are (nearly) parallel are redone with
# the twin rules: a line is not clipped by its twins (same line, either orientation); of same-facing twins only
# one is counted, and opposite twins (a zero-width polygon) cancel. Likewise a face of B flush with a face of A
# with the same outward normal (e.g. identical boxes) is counted once, while flush faces of opposite normals
# (touching boxes) cancel.
_IOU_REL_TOL = 1e-9  # Distances below this times the larger box's size, and angles below it, count as zero.
_IOU_CHUNK = 512  # Pairs per vectorised step, bounding the temporaries to a few MB.
_FACE_AXIS = np.repeat(np.arange(3), 2)  # Face k has outward normal _FACE_SIDE[k] * e_{_FACE_AXIS[k]},
_FACE_SIDE = np.tile([-1.0, 1.0], 3)  # the order of FACES.
_IN_PLANE = np.array([[a for a in range(3) if a != f] for f in _FACE_AXIS])  # [6, 2]: axes spanning face k.
# A face's own edges as half-planes a . (x_u, x_w) <= half-size on in-plane axis _EDGE_AXIS (0 for u, 1 for w).
_EDGE_NORMALS = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
_EDGE_AXIS = np.array([0, 0, 1, 1])
# Pairs of half-planes that are parallel by construction: each with itself, a face's opposite edges, the traces
# of the other box's opposite faces. They never bound each other and never empty the polygon.
_PARALLEL_GROUP = np.repeat(np.arange(5), 2)
_PARALLEL_BY_CONSTRUCTION = _PARALLEL_GROUP[:, None] == _PARALLEL_GROUP[None, :]


def _clip_terms(a, b, rows):
  """For constraints `rows` (axis 0) against every line (axis 1): den, dot and num, all [R, 10, M].

  Line j runs along (-a_j[1], a_j[0]) through b_j a_j; constraint i bounds its parameter s by den * s <= num.
  """
  ax_i, ay_i, b_i = a[rows, None, 0], a[rows, None, 1], b[rows, None]
  ax_j, ay_j, b_j = a[None, :, 0], a[None, :, 1], b[None]
  dot = ax_i * ax_j + ay_i * ay_j
  return ay_i * ax_j - ax_i * ay_j, dot, b_i - b_j * dot


def _polygon_areas(a, b, line, tol, robust):
  """Areas [M] of the convex polygons {x : a_k . x <= b_k, k < 10}, from a [10, 2, M], b [10, M].

  Half-planes 0-3 are the face's own edges (the rectangle |x| <= half-sizes b[[0, 2]]), 4-9 the other box's
  traces. Polygons are on the last axis, so numpy's inner loops run over them. `line` [10, M] marks
  half-planes with a unit normal; the others have a = 0 and b = +-1 (all or nothing). Without `robust`, also
  returns which polygons have nearly parallel lines and need the robust pass.
  """
  eta = _IOU_REL_TOL
  if robust:
    den, dot, num = _clip_terms(a, b, slice(None))
    close = np.abs(den) <= eta  # Parallel: no bound from i, only all or nothing.
    hi = np.where(den > eta, num / den, np.inf).min(axis=0)
    lo = np.where(den < -eta, num / den, -np.inf).max(axis=0)
    both = line[:, None] & line[None]
    b_i, b_j = b[:, None], b[None]
    same = close & both & (dot > 0) & (np.abs(b_i - b_j) <= tol)
    twin = same | (close & both & (dot < 0) & (np.abs(b_i + b_j) <= tol)) | np.eye(10, dtype=bool)[..., None]
    counted = line & ~np.any(same & np.tri(10, k=-1, dtype=bool).T[..., None], axis=0)  # first twin only
    feasible = ~np.any(close & ~twin & (num < 0), axis=0)
    length = np.where(counted & feasible & (hi > lo), hi - lo, 0.0)
    return 0.5 * (b * length).sum(axis=0)
  # The rectangle bounds the edges by the half-size across them, and each trace line where it crosses it.
  half = b[[0, 2]]
  start = a[4:] * b[4:, None]  # [6, 2, M]
  direction = np.stack([-a[4:, 1], a[4:, 0]], axis=1)
  exits = np.stack([(half - start) / direction, (-half - start) / direction])
  hi = np.concatenate([half[[1, 1, 0, 0]], exits.max(axis=0).min(axis=1)])  # [10, M]
  lo = np.concatenate([-half[[1, 1, 0, 0]], exits.min(axis=0).max(axis=1)])
  # The traces bound every line.
  den, _, num = _clip_terms(a, b, slice(4, None))
  hi = np.minimum(hi, np.where(den > eta, num / den, np.inf).min(axis=0))
  lo = np.maximum(lo, np.where(den < -eta, num / den, -np.inf).max(axis=0))
  # Opposite sides of the rectangle or of the other box never empty the polygon; the all-or-nothing
  # half-planes do when b < 0.
  empty = np.any(~line & (b < 0), axis=0)
  length = np.where(line & ~empty & (hi > lo), hi - lo, 0.0)
  unusual = (np.any((np.abs(den) <= eta) & line[4:, None] & line & ~_PARALLEL_BY_CONSTRUCTION[4:, :, None],
                    axis=(0, 1))
             | np.any((np.abs(direction) <= eta).any(axis=1) & line[4:], axis=0))
  return 0.5 * (b * length).sum(axis=0), unusual


def _face_volumes(half_p, centre_q, rot_q, half_q, ref, tol, faces, drop_flush):
  """Sum over P's `faces` of area(face ∩ Q) * height / 3, in P's frame; Q is centre_q + rot_q (half_q * unit).

  Heights are measured from `ref`; with `drop_flush`, faces of P flush with a same-facing face of Q are left out.
  """
  axis, side, spans = _FACE_AXIS[faces], _FACE_SIDE[faces], _IN_PLANE[faces]
  plane = side * half_p[:, axis]  # [n, F]: coordinate of each face along its axis.
  # Only faces whose plane cuts Q's bounding box (in P's frame) within the face's extent can meet Q; the
  # others are skipped.
  reach = np.einsum('nij,nj->ni', np.abs(rot_q), half_q) + tol[:, None]  # [n, 3]
  meets = ((np.abs(centre_q[:, axis] - plane) <= reach[:, axis])
           & np.all(np.abs(centre_q[:, spans]) <= half_p[:, spans] + reach[:, spans], axis=-1))
  pair, face = np.nonzero(meets)
  # One polygon per (pair, face) kept, on the last axis from here on.
  q_normals = np.swapaxes(rot_q[:, :, _FACE_AXIS], 1, 2) * _FACE_SIDE[:, None]  # [n, 6 (m), 3]
  q_offsets = np.einsum('nmi,ni->nm', q_normals, centre_q) + half_q[:, _FACE_AXIS]
  normals = q_normals[pair]  # [M, 6, 3]
  # Trace of Q's plane m on the face: trace . (x_u, x_w) <= q_offset_m - normal_m[axis] * plane.
  trace = np.take_along_axis(normals, spans[face][:, None, :], axis=2).transpose(1, 2, 0)  # [6, 2, M]
  across = np.take_along_axis(normals, axis[face][:, None, None], axis=2)[..., 0].T  # [6, M]
  trace_b = q_offsets[pair].T - across * plane[pair, face]
  tol = tol[pair]
  sin = np.linalg.norm(trace, axis=1)
  parallel = sin <= _IOU_REL_TOL  # No line: the whole face is on the inner side of plane m, or none of it.
  trace = np.where(parallel[:, None], 0.0, trace / np.where(parallel, 1.0, sin)[:, None])
  inner = trace_b >= -tol
  flush = np.any(parallel & inner & (trace_b <= tol) & (across * side[face] > 0), axis=0)
  trace_b = np.where(parallel, np.where(inner, 1.0, -1.0), trace_b / np.where(parallel, 1.0, sin))
  a = np.concatenate([np.broadcast_to(_EDGE_NORMALS[..., None], (4, 2, len(pair))), trace])  # [10, 2, M]
  b = np.concatenate([half_p[pair[:, None], spans[face][:, _EDGE_AXIS]].T, trace_b])  # [10, M]
  line = np.concatenate([np.ones((4, len(pair)), bool), ~parallel])
  area, unusual = _polygon_areas(a, b, line, tol, robust=False)
  if unusual.any():
    area[unusual] = _polygon_areas(a[..., unusual], b[:, unusual], line[:, unusual], tol[unusual], robust=True)
  volume = area * (half_p[pair, axis[face]] - side[face] * ref[pair, axis[face]]) / 3
  if drop_flush:
    volume = np.where(flush, 0.0, volume)
  return np.bincount(pair, weights=volume, minlength=len(half_p))


def _box_iou_flat(a, b):
  """IoU [n] of box keypoint arrays [n, 9, 3]."""
  rot_a, t_a, s_a = box_parameters(a)
  rot_b, t_b, s_b = box_parameters(b)
  vol_a, vol_b = s_a.prod(axis=-1), s_b.prod(axis=-1)
  size = np.maximum(s_a.max(axis=-1), s_b.max(axis=-1))
  tol = _IOU_REL_TOL * size
  rot_ab = np.einsum('nji,njk->nik', rot_a, rot_b)  # B's axes in A's frame.
  centre_ab = np.einsum('nji,nj->ni', rot_a, t_b - t_a)
  rot_ba = np.swapaxes(rot_ab, 1, 2)
  centre_ba = -np.einsum('nij,nj->ni', rot_ba, centre_ab)  # A's centre in B's frame.
  corner_a = -s_a / 2  # The common point for heights, in A's frame, then in B's.
  corner_ab = np.einsum('nij,nj->ni', rot_ba, corner_a) + centre_ba
  with np.errstate(all='ignore'):  # Parallel lines divide by zero; those quotients are masked out.
    inter = (_face_volumes(s_a / 2, centre_ab, rot_ab, s_b / 2, corner_a, tol, [1, 3, 5], drop_flush=False)
             + _face_volumes(s_b / 2, centre_ba, rot_ba, s_a / 2, corner_ab, tol, np.arange(6), drop_flush=True))
  smaller = np.minimum(vol_a, vol_b)
  # Zero-volume boxes are degenerate polygons all the way down; drop whatever their arithmetic gave.
  inter = np.where(smaller > 0, np.clip(inter, 0.0, smaller), 0.0)
  # What is left of touching boxes is round-off, far below tol * size^2.
  inter = np.where(inter > tol * size ** 2, inter, 0.0)
  union = vol_a + vol_b - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_iou_3d(a, b):
  """Exact 3D IoU of boxes given as keypoints [..., 9, 3] (as `box_keypoints` makes), broadcast together.

  Boxes are taken as rigid (rotation, translation, scale from `box_parameters`). Disjoint, touching and
  zero-volume boxes give 0. Exact up to round-off, except for faces within ~1e-9 (relative) of coinciding
  without doing so, where the error stays below ~1e-6.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  for name, x in (('a', a), ('b', b)):
    if x.shape[-2:] != (NUM_KEYPOINTS, 3):
      raise ValueError(f'box_iou_3d: {name} must have shape [..., 9, 3], got {x.shape}')
    if not np.all(np.isfinite(x)):
      raise ValueError(f'box_iou_3d: {name} holds non-finite keypoints')
  lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
  a = np.broadcast_to(a, lead + (NUM_KEYPOINTS, 3)).reshape(-1, NUM_KEYPOINTS, 3)
  b = np.broadcast_to(b, lead + (NUM_KEYPOINTS, 3)).reshape(-1, NUM_KEYPOINTS, 3)
  out = np.zeros(len(a))
  for start in range(0, len(a), _IOU_CHUNK):
    out[start:start + _IOU_CHUNK] = _box_iou_flat(a[start:start + _IOU_CHUNK], b[start:start + _IOU_CHUNK])
  return out.reshape(lead)
