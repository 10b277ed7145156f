"""Objectron box and camera conventions, shared by the data generator, the readers and the box fitting.

Conventions (Objectron's, see docs/metrics.md):
  * Camera frame: right-handed, the camera looks down -z. Frames are stored portrait (480 wide x 640 high)
    while intrinsics and projection matrices are landscape (sensor 1920 x 1440), so camera +x points down
    the portrait image and camera +y points right.
  * `point_2d` holds (u, v, depth): u = (1 + ndc[1]) / 2 across the width, v = (1 + ndc[0]) / 2 down the
    height, with ndc = (P @ [p, 1])[:3] / w, and depth = -z (metres in front of the camera).
  * A box is 9 keypoints: the centre, then the corners of the unit cube at +-1/2 in the order
    (-,-,-), (-,-,+), (-,+,-), (-,+,+), (+,-,-), (+,-,+), (+,+,-), (+,+,+); keypoints = R (scale * unit) + t.
    +y is the object's up axis (top face), +z its front face.
"""
from __future__ import annotations

import itertools

import numpy as np

NUM_KEYPOINTS = 9
# Landscape sensor size of the Objectron captures, in pixels (intrinsics refer to it).
SENSOR_WIDTH, SENSOR_HEIGHT = 1920, 1440
# Portrait frame size stored in the tf.Example records.
IMAGE_WIDTH, IMAGE_HEIGHT = 480, 640

UNIT_BOX = np.array(
    [[0.0, 0.0, 0.0]] + [[x, y, z] for x, y, z in itertools.product((-0.5, 0.5), repeat=3)],
    dtype=np.float64,
)
# Corner index triples of the 6 faces (outward normals: -x, +x, -y, +y, -z, +z), as quads in cyclic order.
FACES = np.array([
    [1, 2, 4, 3], [5, 7, 8, 6],  # x = -1/2, x = +1/2
    [1, 5, 6, 2], [3, 4, 8, 7],  # y = -1/2, y = +1/2 (top)
    [1, 3, 7, 5], [2, 6, 8, 4],  # z = -1/2, z = +1/2 (front)
])
# The 12 edges of the box as corner index pairs.
EDGES = np.array([
    [1, 5], [2, 6], [3, 7], [4, 8],  # along x
    [1, 3], [5, 7], [2, 4], [6, 8],  # along y
    [1, 2], [3, 4], [5, 6], [7, 8],  # along z
])


def box_keypoints(rotation, translation, scale):
  """Keypoints [..., 9, 3] of boxes given rotation [..., 3, 3], translation [..., 3], scale [..., 3]."""
  rotation, translation, scale = (np.asarray(a, np.float64) for a in (rotation, translation, scale))
  local = UNIT_BOX * scale[..., None, :]
  return np.einsum('...ij,...kj->...ki', rotation, local) + translation[..., None, :]


def box_parameters(keypoints):
  """Inverse of `box_keypoints` for (near-)rigid boxes: returns rotation, translation, scale.

  The axes are the mean edge directions of the box, orthonormalised with an SVD, so slightly noisy
  annotations give the closest proper rotation.
  """
  kp = np.asarray(keypoints, np.float64)
  corners = kp[..., 1:, :]
  idx = np.arange(8)
  axes, scales = [], []
  for bit in (4, 2, 1):  # corner index bits for x, y, z
    hi, lo = corners[..., (idx & bit) != 0, :], corners[..., (idx & bit) == 0, :]
    edge = (hi - lo).mean(axis=-2)
    scales.append(np.linalg.norm(hi - lo, axis=-1).mean(axis=-1))
    axes.append(edge)
  m = np.stack(axes, axis=-1)
  u, _, vt = np.linalg.svd(m)
  det = np.linalg.det(u @ vt)
  d = np.ones(m.shape[:-2] + (3,))
  d[..., 2] = np.sign(det)
  rotation = u @ (d[..., :, None] * vt)
  translation = corners.mean(axis=-2)
  return rotation, translation, np.stack(scales, axis=-1)


def projection_from_intrinsics(intrinsics, near=0.05, far=100.0,
                               width=SENSOR_WIDTH, height=SENSOR_HEIGHT):
  """OpenGL-style 4x4 projection matching landscape OpenCV intrinsics under the conventions above."""
  k = np.asarray(intrinsics, np.float64)
  fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
  return np.array([
      [2 * fx / width, 0.0, 1 - 2 * cx / width, 0.0],
      [0.0, 2 * fy / height, 2 * cy / height - 1, 0.0],
      [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
      [0.0, 0.0, -1.0, 0.0],
  ])


def project_points(points_cam, projection):
  """Camera-frame points [..., 3] -> Objectron `point_2d` [..., 3] = (u, v, depth), u/v normalised.

  `projection` is one 4x4 matrix or a stack [..., 4, 4] broadcast against the points' leading axes.
  """
  p = np.asarray(points_cam, np.float64)
  proj = np.asarray(projection, np.float64)
  h = np.einsum('...ij,...j->...i', proj[..., :3], p) + proj[..., 3]
  ndc = h[..., :3] / h[..., 3:4]
  return np.stack([(1 + ndc[..., 1]) / 2, (1 + ndc[..., 0]) / 2, -p[..., 2]], axis=-1)


def unproject_ray(uv, projection):
  """Unit direction (camera frame) of the ray through normalised portrait coordinates uv [..., 2].

  `projection` is one 4x4 matrix or a stack [..., 4, 4] broadcast against uv's leading axes.
  """
  uv = np.asarray(uv, np.float64)
  proj = np.asarray(projection, np.float64)
  ndc_x, ndc_y = 2 * uv[..., 1] - 1, 2 * uv[..., 0] - 1
  # A point at z = -1 has w = 1, so ndc_x = P00 x - P02 and ndc_y = P11 y - P12.
  x = (ndc_x + proj[..., 0, 2]) / proj[..., 0, 0]
  y = (ndc_y + proj[..., 1, 2]) / proj[..., 1, 1]
  d = np.stack([x, y, -np.ones_like(x)], axis=-1)
  return d / np.linalg.norm(d, axis=-1, keepdims=True)
