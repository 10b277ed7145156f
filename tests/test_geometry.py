"""Box/camera conventions and the exact 3D IoU, checked against independent computations."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bench.iou_reference import box_iou_3d_reference
from input_pipeline.formats import geometry
from siampose_jax.evaluation import iou

I3 = np.eye(3)


def _box(rotation=I3, translation=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0)):
  return geometry.box_keypoints(rotation, np.asarray(translation, float), np.asarray(scale, float))


def _random_boxes(rng, n, spread=0.4):
  """Pairs of rotated boxes with nearby centres (most overlap), with their parameters."""
  centre = rng.normal(scale=3.0, size=(n, 3))
  params = []
  for offset in (0.0, rng.normal(scale=spread, size=(n, 3))):
    rot = Rotation.random(n, random_state=rng).as_matrix()
    params.append((rot, centre + offset, rng.uniform(0.3, 1.5, (n, 3))))
  return [geometry.box_keypoints(*p) for p in params], params


def test_box_keypoints_and_parameters_round_trip():
  rng = np.random.default_rng(0)
  rot = Rotation.random(20, random_state=rng).as_matrix()
  t, s = rng.normal(size=(20, 3)), rng.uniform(0.1, 2.0, (20, 3))
  kp = geometry.box_keypoints(rot, t, s)
  np.testing.assert_allclose(kp[:, 0], t, atol=1e-12)
  # Corner 8 is (+,+,+): the centre plus the three scaled axes.
  np.testing.assert_allclose(kp[:, 8], t + np.einsum('nij,nj->ni', rot, s / 2), atol=1e-12)
  rot2, t2, s2 = geometry.box_parameters(kp)
  np.testing.assert_allclose(rot2, rot, atol=1e-12)
  np.testing.assert_allclose(t2, t, atol=1e-12)
  np.testing.assert_allclose(s2, s, atol=1e-12)


def test_project_points_matches_opencv_pinhole():
  rng = np.random.default_rng(1)
  k = np.array([[1500.0, 0, 955.0], [0, 1480.0, 731.0], [0, 0, 1]])
  pts = np.column_stack([rng.uniform(-0.4, 0.4, 50), rng.uniform(-0.3, 0.3, 50), rng.uniform(-3, -0.5, 50)])
  got = geometry.project_points(pts, geometry.projection_from_intrinsics(k))
  # OpenCV looks down +z with y down: rotate the camera by a half turn about x. Portrait frames are the
  # landscape image turned a quarter clockwise: u runs up the landscape rows, v along its columns.
  img, _ = cv2.projectPoints(pts, np.array([np.pi, 0, 0]), np.zeros(3), k, np.zeros(5))
  x_cv, y_cv = img[:, 0, 0], img[:, 0, 1]
  np.testing.assert_allclose(got[:, 0], 1 - y_cv / geometry.SENSOR_HEIGHT, atol=1e-9)
  np.testing.assert_allclose(got[:, 1], x_cv / geometry.SENSOR_WIDTH, atol=1e-9)
  np.testing.assert_allclose(got[:, 2], -pts[:, 2])


def test_unproject_ray_inverts_projection_and_broadcasts_over_matrices():
  rng = np.random.default_rng(2)
  projs = np.stack([geometry.projection_from_intrinsics(np.array([[f, 0, 960.0], [0, f, 700.0], [0, 0, 1]]))
                    for f in (1200.0, 1500.0, 1800.0)])
  pts = np.column_stack([rng.uniform(-0.3, 0.3, 3), rng.uniform(-0.3, 0.3, 3), rng.uniform(-2, -0.5, 3)])
  uv = geometry.project_points(pts, projs)[:, :2]
  for i in range(3):
    np.testing.assert_allclose(geometry.project_points(pts[i], projs[i])[:2], uv[i])
  ray = geometry.unproject_ray(uv, projs)
  np.testing.assert_allclose(ray, pts / np.linalg.norm(pts, axis=-1, keepdims=True), atol=1e-12)


CUBE = _box()


@pytest.mark.parametrize('other, expected', [
    (CUBE, 1.0),
    (_box(translation=(0.5, 0, 0)), 1 / 3),  # half of each cube overlaps: 0.5 / 1.5
    (_box(translation=(0, -0.25, 0), scale=(1, 0.5, 1)), 0.5),  # flush bottom, half height
    (_box(translation=(2.0, 0.3, 0)), 0.0),
    (_box(translation=(1.0, 0, 0)), 0.0),  # sharing a face
    (_box(translation=(1.0, 1.0, 1.0)), 0.0),  # sharing a corner
    (_box(translation=(1.0, 0.2, 0.1), scale=(1, 0.4, 0.5)), 0.0),  # touching on part of a face
    (_box(scale=(0.5, 0.4, 0.3)), 0.06),  # nested: volume ratio
    (_box(translation=(0.1, -0.2, 0.05), scale=(0.5, 0.4, 0.3)), 0.06),
    (_box(Rotation.from_euler('y', 90, degrees=True).as_matrix()), 1.0),
    (_box(Rotation.from_euler('xyz', [90, 180, 270], degrees=True).as_matrix()), 1.0),
    (_box(Rotation.from_euler('z', 45, degrees=True).as_matrix()),
     2 * (np.sqrt(2) - 1) / (2 - 2 * (np.sqrt(2) - 1))),  # octagonal prism
    (_box(scale=(0, 1, 1)), 0.0),  # degenerate
])
def test_iou_analytic_cases(other, expected):
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    got = iou.box_iou_3d(CUBE, other)
    swapped = iou.box_iou_3d(other, CUBE)
  assert got == pytest.approx(expected, abs=1e-9)
  assert swapped == pytest.approx(expected, abs=1e-9)


def test_iou_elongated_boxes_turned_a_quarter():
  """A 2x1x1 box turned a quarter about x is itself; about z it keeps a 1x1x1 cube of 3 in the union."""
  long = _box(scale=(2, 1, 1))
  quarter_x = _box(Rotation.from_euler('x', 90, degrees=True).as_matrix(), scale=(2, 1, 1))
  quarter_z = _box(Rotation.from_euler('z', 90, degrees=True).as_matrix(), scale=(2, 1, 1))
  assert iou.box_iou_3d(long, quarter_x) == pytest.approx(1.0, abs=1e-12)
  assert iou.box_iou_3d(long, quarter_z) == pytest.approx(1 / 3, abs=1e-12)


def test_iou_degenerate_boxes_give_zero_without_warnings():
  point = _box(scale=(0, 0, 0))
  flat = _box(scale=(1, 0, 1))
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    got = iou.box_iou_3d(np.stack([point, flat, flat, point]), np.stack([point, flat, CUBE, CUBE]))
  np.testing.assert_array_equal(got, 0.0)


def test_iou_far_from_origin_and_scale_invariant():
  a = _box(translation=(40.0, -7.0, -250.0), scale=(0.01, 0.02, 0.03))
  b = _box(translation=(40.005, -7.0, -250.0), scale=(0.01, 0.02, 0.03))
  assert iou.box_iou_3d(a, b) == pytest.approx(1 / 3, abs=1e-9)


def test_iou_matches_monte_carlo():
  rng = np.random.default_rng(3)
  (a, b), params = _random_boxes(rng, 3, spread=0.1)
  got = iou.box_iou_3d(a, b)
  for i in range(3):
    corners = np.concatenate([a[i, 1:], b[i, 1:]])
    pts = rng.uniform(corners.min(0), corners.max(0), size=(200_000, 3))
    inside = []
    for rot, t, s in params:
      local = (pts - t[i]) @ rot[i]
      inside.append(np.all(np.abs(local) <= s[i] / 2, axis=1))
    mc = np.sum(inside[0] & inside[1]) / np.sum(inside[0] | inside[1])
    assert got[i] > 0.05
    assert got[i] == pytest.approx(mc, abs=0.01)


def test_iou_vectorised_matches_reference_and_broadcasts():
  rng = np.random.default_rng(4)
  (a, b), _ = _random_boxes(rng, 60)
  got = iou.box_iou_3d(a, b)
  ref = np.array([box_iou_3d_reference(x, y) for x, y in zip(a, b)])
  assert np.mean(ref > 0) > 0.8
  np.testing.assert_allclose(got, ref, atol=1e-9)
  grid = iou.box_iou_3d(a[:4, None], b[None, :5])
  assert grid.shape == (4, 5)
  np.testing.assert_allclose(grid, [[box_iou_3d_reference(x, y) for y in b[:5]] for x in a[:4]], atol=1e-9)
  assert iou.box_iou_3d(a[0], b[0]).shape == ()


def test_iou_degenerate_contacts_match_reference():
  """Flush faces, shared edges, quarter turns and boxes on one plane: where tolerances matter."""
  rng = np.random.default_rng(5)
  pairs = []
  for _ in range(40):  # Grid-aligned boxes: many coincident faces and edges.
    turn = Rotation.from_euler('xyz', rng.integers(0, 4, 3) * 90, degrees=True).as_matrix()
    pairs.append((_box(scale=rng.integers(1, 4, 3) / 2),
                  _box(turn, rng.integers(-3, 4, 3) / 4, rng.integers(1, 4, 3) / 2)))
  for dyaw in (0.0, 1e-12, 1e-6, 0.3, 1.2):  # Boxes standing on one plane, tilted as a whole.
    tilt = Rotation.random(random_state=rng).as_matrix()
    for _ in range(4):
      s1, s2 = rng.uniform(0.2, 1, 3), rng.uniform(0.2, 1, 3)
      yaw = rng.uniform(0, 2 * np.pi)
      r1, r2 = (tilt @ Rotation.from_euler('y', y).as_matrix() for y in (yaw, yaw + dyaw))
      t2 = np.array([rng.normal(scale=0.2), s2[1] / 2, rng.normal(scale=0.2)])
      pairs.append((_box(r1, tilt @ [0, s1[1] / 2, 0], s1), _box(r2, tilt @ t2, s2)))
  a, b = np.array(pairs).transpose(1, 0, 2, 3)
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    got = iou.box_iou_3d(a, b)
  ref = np.array([box_iou_3d_reference(x, y) for x, y in pairs])
  np.testing.assert_allclose(got, ref, atol=1e-6)
  # Identical boxes, one turned by a hair: the nearly coincident faces are the hard case.
  rot = Rotation.random(random_state=rng).as_matrix()
  for eps in (1e-14, 1e-10, 1e-8, 1e-5):
    hair = Rotation.from_rotvec(eps * np.array([0.3, -0.5, 0.8])).as_matrix()
    a, b = _box(rot, scale=(1, 2, 3)), _box(rot @ hair, scale=(1, 2, 3))
    assert iou.box_iou_3d(a, b) == pytest.approx(box_iou_3d_reference(a, b), abs=1e-6)


def test_iou_rejects_bad_input():
  with pytest.raises(ValueError, match=r'\[\.\.\., 9, 3\]'):
    iou.box_iou_3d(np.zeros((8, 3)), CUBE)
  bad = CUBE.copy()
  bad[3, 1] = np.nan
  with pytest.raises(ValueError, match='b holds non-finite'):
    iou.box_iou_3d(CUBE, bad)
