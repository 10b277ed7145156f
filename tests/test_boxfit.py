"""Zero-shot box fitting on hand-built scenes: one box on a ground plane seen by cameras around it."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from siampose_jax.evaluation import boxfit
from input_pipeline.formats import geometry
from siampose_jax.evaluation import iou

PROJECTION = geometry.projection_from_intrinsics(np.array([[1400.0, 0, 960], [0, 1400.0, 720], [0, 0, 1]]))
UP = np.array([0.0, 1.0, 0.0])  # World: ground plane y = 0.


def _camera(azimuth, elevation, distance, target=(0.0, 0.15, 0.0)):
  """World-to-camera rotation and camera position, looking at `target` (-z forward, no roll)."""
  target = np.asarray(target)
  position = target + distance * np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                                           np.cos(elevation) * np.cos(azimuth)])
  z = (position - target) / np.linalg.norm(position - target)
  y = UP - (UP @ z) * z
  y /= np.linalg.norm(y)
  return np.stack([np.cross(y, z), y, z]), position


def _view(camera, yaw=0.3, scale=(0.3, 0.4, 0.2), grow=1.0):
  """What one frame records of a box standing on the plane: 3D and 2D keypoints, plane centre and normal."""
  world_to_cam, position = camera
  scale = np.asarray(scale) * grow
  centre = np.array([0.05, scale[1] / 2, -0.03])
  keypoints = geometry.box_keypoints(world_to_cam @ Rotation.from_euler('y', yaw).as_matrix(),
                                     world_to_cam @ (centre - position), scale)
  return (keypoints, geometry.project_points(keypoints, PROJECTION),
          world_to_cam @ (np.array([0.4, 0.0, -0.2]) - position), world_to_cam @ UP)


def _fit(neighbour, query, **kwargs):
  return boxfit.fit_boxes(*neighbour, boxfit.box_2d(query[1]), query[2], query[3], PROJECTION, **kwargs)


QUERY_CAMERA = _camera(0.4, 0.5, 1.2)


def test_box_2d_is_min_max_of_projected_points():
  pts = np.array([[0.5, 0.5, 1.0]] + [[0.1 * i, 1 - 0.05 * i, 2.0] for i in range(1, 9)])
  np.testing.assert_allclose(boxfit.box_2d(pts), [0.1, 0.5, 0.8, 0.95])  # the centre counts too


def test_rotation_between_maps_source_to_target():
  rng = np.random.default_rng(0)
  src = rng.normal(size=(6, 3))
  dst = np.concatenate([rng.normal(size=(4, 3)), -src[4:5] * 2, src[5:6] * 3])  # general, opposite, same
  rot = boxfit.rotation_between(src, dst)
  unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
  np.testing.assert_allclose(np.einsum('nij,nj->ni', rot, unit(src)), unit(dst), atol=1e-12)
  np.testing.assert_allclose(rot @ np.swapaxes(rot, 1, 2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(rot), 1.0)
  np.testing.assert_allclose(rot[5], np.eye(3), atol=1e-12)


def test_fit_to_itself_recovers_the_box():
  query = _view(QUERY_CAMERA)
  fitted = _fit(query, query)
  np.testing.assert_allclose(fitted, query[0], atol=1e-9)
  assert iou.box_iou_3d(fitted, query[0]) > 0.99


def test_fit_from_another_camera_pose():
  query = _view(QUERY_CAMERA)
  # Same object seen from higher up and further away: the cameras differ by a pitch, which turning the box
  # onto the query's plane normal undoes exactly; position and size come from the 2D box.
  neighbour = _view(_camera(0.4, 0.7, 1.6))
  fitted = _fit(neighbour, query)
  np.testing.assert_allclose(geometry.box_parameters(fitted)[0], geometry.box_parameters(query[0])[0], atol=1e-9)
  assert iou.box_iou_3d(fitted, query[0]) > 0.8
  # Raw, the neighbour's box (in its own camera frame) is nowhere near the query's.
  assert iou.box_iou_3d(neighbour[0], query[0]) < 0.1


def test_scale_refinement_recovers_a_bigger_twin():
  query = _view(QUERY_CAMERA)
  twin = _view(QUERY_CAMERA, grow=1.3)
  ious = [iou.box_iou_3d(_fit(twin, query, iterations=k), query[0]) for k in range(5)]
  assert np.all(np.diff(ious) > 0)
  assert ious[0] < 0.5 and ious[4] > 0.95
  # Damped steps: the size error shrinks each time without overshooting.
  excess = np.array([geometry.box_parameters(_fit(twin, query, iterations=k))[2] / [0.3, 0.4, 0.2] - 1
                     for k in range(5)])
  np.testing.assert_allclose(excess, np.repeat(excess[:, :1], 3, axis=1), atol=1e-9)  # uniform scaling
  assert excess[0, 0] == pytest.approx(0.3) and np.all(excess[:, 0] > 0) and np.all(np.diff(excess[:, 0]) < 0)
  assert excess[4, 0] < 0.01


def test_fit_is_vectorised_over_queries():
  cams = [_camera(0.4, 0.5, 1.2), _camera(1.0, 0.6, 1.4), _camera(-0.5, 0.4, 1.0)]
  views = [_view(c, yaw=y) for c, y in zip(cams, (0.3, 1.0, -0.4))]
  neighbours = [views[1], views[2], views[0]]
  projections = np.stack([PROJECTION, PROJECTION * [[1.1], [1.1], [1], [1]], PROJECTION])
  stack = lambda vs, i: np.stack([v[i] for v in vs])
  batched = boxfit.fit_boxes(*(stack(neighbours, i) for i in range(4)), boxfit.box_2d(stack(views, 1)),
                             stack(views, 2), stack(views, 3), projections)
  for q in range(3):
    single = boxfit.fit_boxes(*neighbours[q], boxfit.box_2d(views[q][1]), views[q][2], views[q][3],
                              projections[q])
    np.testing.assert_allclose(batched[q], single, atol=1e-12)


def test_symmetric_iou():
  query = _view(QUERY_CAMERA)
  gt = query[0]
  # The box turned by 30 degrees about its up axis: a full match for a symmetric object.
  centre = gt[:1]
  turn = boxfit.axis_rotations(gt[3] - gt[1], np.deg2rad([30.0]))[0]
  turned = centre + (gt - centre) @ turn.T
  plain = iou.box_iou_3d(turned, gt)
  assert plain < 0.8
  assert boxfit.symmetric_iou(turned, gt) == pytest.approx(1.0, abs=1e-9)
  assert boxfit.symmetric_iou(turned, gt, axis=query[3]) == pytest.approx(1.0, abs=1e-9)
  # On fitted boxes it is never below the plain IoU, and batched like the IoU.
  fitted = np.stack([_fit(_view(QUERY_CAMERA, yaw=0.3 + d), query) for d in (0.0, 0.5, 1.0)])
  sym = boxfit.symmetric_iou(fitted, gt[None])
  assert sym.shape == (3,)
  assert np.all(sym >= iou.box_iou_3d(fitted, gt) - 1e-12)
  assert sym[1] > iou.box_iou_3d(fitted[1], gt) + 0.01


def test_bad_input_raises_or_is_reported_per_query():
  query = _view(QUERY_CAMERA)
  flat_box = boxfit.box_2d(query[1]) * [1, 1, 0, 1] + [0, 0, 0.2, 0]  # u_max < u_min
  with pytest.raises(ValueError, match='empty 2d box'):
    boxfit.fit_boxes(*query, flat_box, query[2], query[3], PROJECTION)
  with pytest.raises(ValueError, match='zero plane normal'):
    boxfit.fit_boxes(*query, boxfit.box_2d(query[1]), query[2], np.zeros(3), PROJECTION)
  # A plane 5 m up: the camera is below it, looking down, so the centre ray meets it behind the camera.
  raised = query[2] + 5 * query[3]
  with pytest.raises(ValueError, match='ray misses plane'):
    boxfit.fit_boxes(*query, boxfit.box_2d(query[1]), raised, query[3], PROJECTION)
  # A plane along the centre ray.
  sideways = np.cross(query[0][0], query[3])
  with pytest.raises(ValueError, match='ray misses plane'):
    boxfit.fit_boxes(*query, boxfit.box_2d(query[1]), query[2], sideways, PROJECTION)
  with pytest.raises(ValueError, match=r'\[\.\.\., 9, 3\]'):
    boxfit.fit_boxes(query[0][:8], *query[1:], boxfit.box_2d(query[1]), query[2], query[3], PROJECTION)
  with pytest.raises(ValueError, match='on_failure'):
    boxfit.fit_boxes(*query, boxfit.box_2d(query[1]), query[2], query[3], PROJECTION, on_failure='nan')
  # Batched with on_failure='report': NaN and a reason for each bad query, the good one fitted as alone.
  n = 5
  stack = lambda x: np.stack([x] * n)
  boxes = stack(boxfit.box_2d(query[1]))
  boxes[1] = flat_box
  centres, normals = stack(query[2]), stack(query[3])
  normals[2] = 0.0
  centres[3] = raised
  normals[4] = sideways
  fitted, reason = boxfit.fit_boxes(*(stack(x) for x in query), boxes, centres, normals, PROJECTION,
                                    on_failure='report')
  assert list(reason) == ['', 'empty_2d_box', 'zero_plane_normal', 'ray_misses_plane', 'ray_misses_plane']
  assert np.isnan(fitted[1:]).all()
  np.testing.assert_allclose(fitted[0], _fit(query, query), atol=1e-12)
