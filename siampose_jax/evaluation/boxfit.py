"""Zero-shot 9-DoF box fitting: move a retrieved neighbour's 3D box into the query's camera.

The reference's procedure (docs/metrics.md), given the query's oracle 2D box, ground plane and
projection: rotate the neighbour's box about its centre so that its ground-plane normal becomes the query's;
keep its centre's height above its own plane; put the centre where the ray through the query's 2D box centre
(shifted by where the neighbour's projected centre sat in its own 2D box, in box-size units) meets the query's
plane raised by that height; then, 4 times, scale the box uniformly about its centre by the damped ratio
(1 + r) / 2 of 2D box diagonals r = query / projected (in pixels, every 2D box clipped to the image, as the
reference does), scale the height with it and re-snap the centre onto the ray. Queries that cannot be fitted
(degenerate planes or boxes, rays that miss the plane) are reported per query rather than aborting. All
functions take any leading axes (one entry per query) and are vectorised over them.
"""
from __future__ import annotations

import numpy as np

from input_pipeline.formats import geometry
from siampose_jax.evaluation import iou
from siampose_jax.normalize import l2_normalize

_EPS = 1e-12


def box_2d(points_2d, clip: bool = False):
  """2D box [..., 4] = (u_min, v_min, u_max, v_max) of keypoints [..., 9, >=2] in normalised (u, v).

  With `clip`, the box is cut to the image ([0, 1] in both coordinates), as the reference does with the
  query's, the neighbour's and the fitted boxes.
  """
  uv = np.asarray(points_2d, np.float64)[..., :2]
  box = np.concatenate([uv.min(axis=-2), uv.max(axis=-2)], axis=-1)
  return np.clip(box, 0.0, 1.0) if clip else box


def _unit(v, name):
  """Unit vectors along the last axis; a zero-length one is an error naming `name` and the queries."""
  v = np.asarray(v, np.float64)
  short = np.linalg.norm(v, axis=-1) < _EPS
  if np.any(short):
    raise ValueError(f'boxfit: {name} has zero-length vectors at {_where(short)}')
  return l2_normalize(v)


def _where(mask):
  """Indices of the offending queries, for error messages."""
  return [tuple(int(i) for i in idx) if len(idx) != 1 else int(idx[0]) for idx in np.argwhere(mask)][:10]


def _empty(box):
  """[...] True where a 2D box has no area (or is not finite)."""
  size = box[..., 2:] - box[..., :2]
  return ~np.all(size > 0, axis=-1)


def _pixel_diagonal(box, image_size):
  """Diagonal length [...] in pixels of normalised 2D boxes, for an image `image_size` = (width, height)."""
  size = (box[..., 2:] - box[..., :2]) * np.asarray(image_size, np.float64)
  return np.linalg.norm(size, axis=-1)


def rotation_between(source, target):
  """Rotations [..., 3, 3] turning unit vectors `source` [..., 3] onto `target` [..., 3] about their normal."""
  source, target = _unit(source, 'source'), _unit(target, 'target')
  cross = np.cross(source, target)
  cos = np.sum(source * target, axis=-1)[..., None, None]
  zero = np.zeros_like(cross[..., 0])
  k = np.stack([
      np.stack([zero, -cross[..., 2], cross[..., 1]], -1),
      np.stack([cross[..., 2], zero, -cross[..., 0]], -1),
      np.stack([-cross[..., 1], cross[..., 0], zero], -1),
  ], axis=-2)
  eye = np.eye(3)
  opposite = cos[..., 0, 0] < -1 + 1e-9
  # Rodrigues for the general case; a half turn about any perpendicular axis when the vectors are opposite.
  rodrigues = eye + k + k @ k / np.where(opposite, 1.0, 1 + cos[..., 0, 0])[..., None, None]
  helper = np.where(np.abs(source[..., :1]) < 0.9, eye[0], eye[1])
  perp = _unit(np.cross(source, helper), 'perpendicular axis')
  half_turn = 2 * perp[..., :, None] * perp[..., None, :] - eye
  return np.where(opposite[..., None, None], half_turn, rodrigues)


def axis_rotations(axis, angles):
  """Rotations [..., A, 3, 3] by `angles` [A] (radians) about unit `axis` [..., 3]."""
  axis = _unit(axis, 'axis')[..., None, :]
  c, s = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
  outer = axis[..., :, None] * axis[..., None, :]
  x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
  zero = np.zeros_like(x)
  k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
  return c * np.eye(3) + s * k + (1 - c) * outer


# Why a fit failed, per query ('' when it did not); the evaluation counts these as misses.
FAILURES = ('zero_plane_normal', 'empty_2d_box', 'ray_misses_plane', 'fitted_box_not_in_view')


def fit_boxes(neighbour_points_3d, neighbour_points_2d, neighbour_plane_center, neighbour_plane_normal,
              query_box, query_plane_center, query_plane_normal, query_projection, iterations=4,
              image_size=(geometry.IMAGE_WIDTH, geometry.IMAGE_HEIGHT), on_failure='raise'):
  """Fits the neighbours' boxes into the queries' cameras; returns keypoints [..., 9, 3] (query camera frame).

  Args:
    neighbour_points_3d: [..., 9, 3] the neighbour's box keypoints in its own camera frame.
    neighbour_points_2d: [..., 9, >=2] its keypoints in its own image, normalised (u, v).
    neighbour_plane_center, neighbour_plane_normal: [..., 3] its ground plane, in its camera frame.
    query_box: [..., 4] the query's 2D box (u_min, v_min, u_max, v_max), e.g. `box_2d` of its keypoints;
      it is clipped to the image.
    query_plane_center, query_plane_normal: [..., 3] the query's ground plane, in its camera frame.
    query_projection: [..., 4, 4] (or one [4, 4]) the query camera's projection matrix.
    iterations: scale refinement steps (the reference uses 4).
    image_size: (width, height) of the frames in pixels: the scale step compares 2D box diagonals in pixels
      (only the aspect ratio matters).
    on_failure: 'raise' on a query that cannot be fitted, or 'report' to return `(keypoints, reasons)`:
      NaN keypoints and a reason from FAILURES for those queries ('' for the others), so that an
      evaluation counts them as misses: a zero plane normal (query or neighbour), an empty 2D box
      (the query's or the neighbour's, after clipping), a centre ray that misses the query's raised plane
      (parallel, or the plane behind the camera), or a fitted box that leaves the view.
  """
  if on_failure not in ('raise', 'report'):
    raise ValueError(f"boxfit: on_failure={on_failure!r}: expected 'raise' or 'report'")
  nb3 = np.asarray(neighbour_points_3d, np.float64)
  nb2 = np.asarray(neighbour_points_2d, np.float64)
  qbox = np.clip(np.asarray(query_box, np.float64), 0.0, 1.0)
  proj = np.asarray(query_projection, np.float64)
  if nb3.shape[-2:] != (geometry.NUM_KEYPOINTS, 3) or nb2.shape[-2] != geometry.NUM_KEYPOINTS:
    raise ValueError(f'boxfit: neighbour keypoints must be [..., 9, 3] and [..., 9, 2+], got {nb3.shape} '
                     f'and {nb2.shape}')
  if qbox.shape[-1] != 4 or proj.shape[-2:] != (4, 4):
    raise ValueError(f'boxfit: query_box must be [..., 4] and query_projection [..., 4, 4], got {qbox.shape} '
                     f'and {proj.shape}')
  lead = np.broadcast_shapes(nb3.shape[:-2], qbox.shape[:-1])
  reason = np.full(lead, '', dtype=object)

  def fail(mask, why):
    """Records `why` for the queries in `mask` that have no reason yet."""
    mask = np.broadcast_to(mask, lead) & (reason == '')
    if np.any(mask) and on_failure == 'raise':
      raise ValueError(f'boxfit: {why.replace("_", " ")} at queries {_where(mask)}')
    reason[mask] = why

  # Degenerate inputs are recorded, then replaced by harmless stand-ins so the arithmetic stays finite.
  normals = []
  for name, n in (('neighbour', neighbour_plane_normal), ('query', query_plane_normal)):
    n = np.asarray(n, np.float64)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    bad = ~(norm[..., 0] > _EPS) | ~np.all(np.isfinite(n), axis=-1)
    fail(bad, 'zero_plane_normal')
    normals.append(np.where(bad[..., None], np.array([0.0, 1.0, 0.0]), n / np.where(norm > _EPS, norm, 1.0)))
  nb_normal, q_normal = normals
  nb_box = box_2d(nb2, clip=True)
  fail(_empty(nb_box) | _empty(qbox), 'empty_2d_box')
  stand_in = np.array([0.25, 0.25, 0.75, 0.75])
  nb_box = np.where(_empty(nb_box)[..., None], stand_in, nb_box)
  qbox = np.where(_empty(qbox)[..., None], stand_in, qbox)
  q_center = np.asarray(query_plane_center, np.float64)

  # Turn the box about its centre so that its ground plane's normal becomes the query's.
  centre = nb3[..., :1, :]
  rotation = rotation_between(nb_normal, q_normal)
  points = centre + np.einsum('...ij,...kj->...ki', rotation, nb3 - centre)
  height = np.sum((nb3[..., 0, :] - np.asarray(neighbour_plane_center, np.float64)) * nb_normal, axis=-1)

  # The ray through the query's 2D box centre, shifted as the neighbour's centre sits in its own 2D box.
  offset = (nb2[..., 0, :2] - (nb_box[..., :2] + nb_box[..., 2:]) / 2) / (nb_box[..., 2:] - nb_box[..., :2])
  q_size = qbox[..., 2:] - qbox[..., :2]
  ray = geometry.unproject_ray((qbox[..., :2] + qbox[..., 2:]) / 2 + offset * q_size, proj)
  along = np.sum(ray * q_normal, axis=-1)
  plane_level = np.sum(q_center * q_normal, axis=-1)

  def snap(points, height):
    """Moves the box so its centre is on the ray, `height` above the query's plane."""
    with np.errstate(divide='ignore', invalid='ignore'):
      depth = (plane_level + height) / along
    fail(~(np.abs(along) > _EPS) | ~(depth > 0), 'ray_misses_plane')
    depth = np.where(reason == '', depth, 1.0)  # placeholder depth; failed queries become NaN at the end
    return points - points[..., :1, :] + (depth[..., None] * ray)[..., None, :]

  points = snap(points, height)
  q_diag = _pixel_diagonal(qbox, image_size)
  for _ in range(iterations):
    projected = geometry.project_points(points, proj[..., None, :, :])
    fitted_box = box_2d(projected, clip=True)
    lost = _empty(fitted_box) | np.any(projected[..., 2] <= 0, axis=-1)
    fail(lost, 'fitted_box_not_in_view')
    diag = np.where(reason == '', _pixel_diagonal(fitted_box, image_size), 1.0)
    factor = np.where(reason == '', (1 + q_diag / np.where(diag > 0, diag, 1.0)) / 2, 1.0)
    centre = points[..., :1, :]
    points = snap(centre + (points - centre) * factor[..., None, None], height * factor)
    height = height * factor
  points = np.where((reason != '')[..., None, None], np.nan, points)
  return (points, reason.astype(str)) if on_failure == 'report' else points


def symmetric_iou(fitted, ground_truth, step_degrees=5.0, axis=None):
  """Best 3D IoU [...] of `fitted` [..., 9, 3] turned about its centre, for objects symmetric about an axis.

  The reference's evaluation option for cup and bottle: every rotation in `step_degrees` steps (0 included,
  so never below the plain IoU). The axis defaults to the fitted box's own up axis (+y, the object's symmetry
  axis; for a box standing on the plane it is the plane normal); pass `axis` [..., 3] to use another one. It
  needs the ground truth, so it is a score, not a prediction.
  """
  fitted = np.asarray(fitted, np.float64)
  if axis is None:
    axis = fitted[..., 3, :] - fitted[..., 1, :]  # corner (-,+,-) minus corner (-,-,-)
  rotations = axis_rotations(axis, np.deg2rad(np.arange(0.0, 360.0, step_degrees)))  # [..., A, 3, 3]
  centre = fitted[..., None, :1, :]
  turned = centre + np.einsum('...aij,...kj->...aki', rotations, fitted - fitted[..., :1, :])
  return iou.box_iou_3d(turned, np.asarray(ground_truth, np.float64)[..., None, :, :]).max(axis=-1)
