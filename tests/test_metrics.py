"""Metrics on small cases computed by hand (worked out in the comments)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from input_pipeline.formats import geometry
from siampose_jax.evaluation import metrics


def test_ap_at_threshold_is_strict():
  assert metrics.ap_at_threshold([0.2, 0.5, 0.51, 0.9]) == 0.5  # 0.5 itself does not count
  assert metrics.ap_at_threshold([0.2, 0.5, 0.51, 0.9], threshold=0.1) == 1.0
  with pytest.raises(ValueError, match='ious'):
    metrics.ap_at_threshold([])


def test_objectron_ap_curve_hand_case():
  # In order, at threshold 0.5 the hits are 1 0 1 0: tp 1 1 2 2, precision 1 .5 .667 .5,
  # recall .25 .25 .5 .5. Padded: r = 0 .25 .25 .5 .5 1, p = 0 1 .5 .667 .5 0, envelope 1 1 .667 .667 .5 0.
  # Recall steps at positions 1, 3, 5: .25 * 1 + .25 * 2/3 + .5 * 0 = 5/12.
  ious = [0.9, 0.3, 0.7, 0.1]
  thresholds, ap = metrics.objectron_ap_curve(ious)
  np.testing.assert_allclose(thresholds, np.linspace(0, 1, 21))
  assert ap[10] == pytest.approx(5 / 12)
  assert ap[0] == pytest.approx(1.0)  # IoU >= 0 always hits: precision 1 up to recall 1
  assert ap[-1] == 0.0 and ap[19] == 0.0  # nothing reaches 0.95
  # Thresholds are inclusive (Objectron's HitMiss uses >=): with 0.5 exactly, hits 1 1 1 0 -> .75 * 1.
  _, ap_inclusive = metrics.objectron_ap_curve([0.9, 0.5, 0.7, 0.1])
  assert ap_inclusive[10] == pytest.approx(0.75)
  # Ranked by scores the order becomes 0.7, 0.1, 0.3, 0.9: hits 1 0 0 1, tp 1 1 1 2,
  # precision 1 .5 .333 .5, recall .25 .25 .25 .5 -> envelope gives .25 * 1 + .25 * .5 = 0.375.
  _, ap_scored = metrics.objectron_ap_curve(ious, scores=[0.1, 0.2, 0.9, 0.3])
  assert ap_scored[10] == pytest.approx(0.375)
  with pytest.raises(ValueError, match='scores'):
    metrics.objectron_ap_curve(ious, scores=[1.0])


def test_interpolated_ap_envelope():
  # Points (0.5, 0.4), (1.0, 0.8): the envelope lifts the first step to 0.8 -> 0.5*0.8 + 0.5*0.8 = 0.8.
  assert metrics.interpolated_ap([0.5, 1.0], [0.4, 0.8]) == pytest.approx(0.8)


def _rot_y(deg):
  c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
  return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _objectron_least_squares_ray(box):
  """Objectron's compute_ray, rewritten: affine map from camera to scaled box frame, its translation."""
  size = [np.linalg.norm(box[5] - box[1]), np.linalg.norm(box[3] - box[1]), np.linalg.norm(box[2] - box[1])]
  obj = np.vstack([(geometry.UNIT_BOX * size).T, np.ones(9)])
  cam = np.vstack([box.T, np.ones(9)])
  m = obj @ cam.T @ np.linalg.inv(cam @ cam.T)
  return m[:3, 3]


def test_viewpoint_hand_cases():
  # Box straight ahead, turned by theta about its up axis: the camera sits at R^T (0, 0, 3) =
  # 3 (-sin theta, 0, cos theta) in the box frame, so azimuth = atan2(cos, -sin) = 90 + theta, elevation 0.
  box = geometry.box_keypoints(_rot_y(30), [0, 0, -3], [1, 2, 3])
  az, el = metrics.viewpoint(box)
  assert az == pytest.approx(120) and el == pytest.approx(0, abs=1e-9)
  # Box 1 m below the camera, 3 m ahead: elevation atan(1/3).
  az, el = metrics.viewpoint(geometry.box_keypoints(np.eye(3), [0, -1, -3], [1, 1, 1]))
  assert az == pytest.approx(90) and el == pytest.approx(np.degrees(np.arctan(1 / 3)))
  # Agrees with Objectron's least-squares ray for an arbitrary pose (batched input).
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
  q *= np.sign(np.linalg.det(q))
  boxes = np.stack([geometry.box_keypoints(q, [0.3, -0.2, -2.5], [0.4, 0.7, 0.2]), box])
  az, el = metrics.viewpoint(boxes)
  for b, a, e in zip(boxes, az, el):
    x, y, z = _objectron_least_squares_ray(b)
    assert a == pytest.approx(np.degrees(np.arctan2(z, x)))
    assert e == pytest.approx(np.degrees(np.arctan2(y, np.hypot(x, z))))


def test_viewpoint_errors_wrap_azimuth():
  # Azimuths 90 + 80 = 170 and 90 + 100 = 190 = -170: 20 degrees apart across the seam.
  pred = geometry.box_keypoints(_rot_y(80), [0, -1, -3], [1, 1, 1])
  gt = geometry.box_keypoints(_rot_y(100), [0, -2, -3], [1, 1, 1])
  az_err, el_err = metrics.viewpoint_errors(pred, gt)
  assert az_err == pytest.approx(20)
  assert el_err == pytest.approx(np.degrees(np.arctan(2 / 3) - np.arctan(1 / 3)))


def _boxes(rotations, scale=(0.3, 0.2, 0.5), translation=(0.1, -0.2, -2.0)):
  return geometry.box_keypoints(rotations, np.broadcast_to(translation, rotations.shape[:-2] + (3,)),
                                np.broadcast_to(scale, rotations.shape[:-2] + (3,)))


def test_rotation_errors_against_scipy_over_the_box_symmetries():
  """Each error equals the smallest angle, by scipy's rotation vectors, of Rg^T Rp S over the four half
  turns S that map a box onto itself; a half turn of the truth itself scores 0."""
  rng = np.random.default_rng(0)
  truth = Rotation.random(200, random_state=1).as_matrix()
  pred = truth @ Rotation.random(200, random_state=2).as_matrix()
  half_turns = [np.diag(d) for d in ([1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1])]
  want = np.array([min(np.degrees(Rotation.from_matrix(g.T @ p @ s).magnitude()) for s in half_turns)
                   for g, p in zip(truth, pred)])
  got = metrics.rotation_errors(_boxes(pred), _boxes(truth))
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert got.max() <= 120.0 + 1e-6  # the largest folded angle over this symmetry group
  flipped = truth @ half_turns[rng.integers(1, 4)]
  np.testing.assert_allclose(metrics.rotation_errors(_boxes(flipped), _boxes(truth)), 0.0, atol=1e-4)


def test_rotation_errors_about_the_up_axis_for_symmetric_categories():
  """With up_symmetric, any turn about the box's up axis (y) is free: the error is the smallest angle over
  those turns (searched in 0.25 degree steps, both up directions), and 0 for a pure turn about up."""
  truth = Rotation.random(50, random_state=3).as_matrix()
  pred = truth @ Rotation.random(50, random_state=4).as_matrix()
  turns = Rotation.from_euler('y', np.arange(0, 360, 0.25)[:, None], degrees=True).as_matrix()
  flip = np.diag([1.0, -1.0, -1.0])
  want = np.array([min(np.degrees(Rotation.from_matrix(g.T @ p @ turns @ f).magnitude()).min()
                       for f in (np.eye(3), flip))
                   for g, p in zip(truth, pred)])
  got = metrics.rotation_errors(_boxes(pred), _boxes(truth), up_symmetric=True)
  np.testing.assert_allclose(got, want, atol=0.2)
  spun = truth @ Rotation.from_euler('y', 73, degrees=True).as_matrix()
  np.testing.assert_allclose(metrics.rotation_errors(_boxes(spun), _boxes(truth), True), 0.0, atol=1e-4)
  assert np.all(metrics.rotation_errors(_boxes(spun), _boxes(truth), False) > 70.0)
  mixed = metrics.rotation_errors(_boxes(pred[:2]), _boxes(truth[:2]), np.array([True, False]))
  assert mixed[0] == pytest.approx(got[0]) and mixed[1] == pytest.approx(
      metrics.rotation_errors(_boxes(pred[1:2]), _boxes(truth[1:2]))[0])


# Videos A A B B (frames 0 5 0 3) and one single-frame video C. Cosines: e0.e1 = .8, e0.e2 = .6,
# e0.e3 = 0, e1.e2 = .96, e1.e3 = .6, e2.e3 = .8; e4 = -e0 is last or tied-last for everyone.
#   q0: e1(A) e2 e3 e4    -> AP 1,  top-1 right, jitter |0-5| = 5; trapezoid AUC 0 (no step at rank 1)
#   q1: e2 e0(A) e3 e4    -> AP .5, top-1 wrong; AUC 1 * (1/2 + 0) / 2 = .25
#   q2: e1 e3(B) e0 e4    -> AP .5, top-1 wrong; AUC .25
#   q3: e2(B) e1 e0 e4    -> AP 1,  top-1 right, jitter |3-0| = 3; AUC 0
#   q4: no positive       -> left out.
# Reference Re-ID mAP (self at similarity 0, kept in the ranking, trapezoid AUC) worked out by hand: per query
# 0.2917, 0.3333, 0.3333, 0.2083, 0.25 -> 0.28333; top-1 2/5 (queries 0 and 3), jitter (5 + 3) / 2;
# self-excluded AP (1 + .5 + .5 + 1) / 4 (query 4's video has no other frame).
REID_EMB = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1], [-1, 0]], np.float32)
REID_VIDEOS = np.array(['A', 'A', 'B', 'B', 'C'])
REID_FRAMES = np.array([0, 5, 0, 3, 7])



@pytest.mark.parametrize('block', [1, 2, 256])
def test_reid_metrics_hand_case(block):
  got = metrics.reid_metrics(REID_EMB * 3, REID_VIDEOS, REID_FRAMES, block=block)
  assert got['num_queries'] == 5
  assert got['reid_map'] == pytest.approx((0.5 * (2 / 3 + 0.5) / 2 + 2 * (0.125 + 0.5 * (0.5 + 1 / 3) / 2)
                                           + 0.5 * (0.5 + 1 / 3) / 2 + 0.25) / 5)
  assert got['reid_map'] == pytest.approx(0.28333, abs=1e-4)
  assert got['top1'] == pytest.approx(0.4)
  assert got['frame_jitter'] == pytest.approx(4.0)
  assert got['reid_ap_self_excluded'] == pytest.approx(0.75)


def _reference_reid_loop(e, videos, frames):
  """The reference's formula, one query at a time: self at similarity 0 and in the ranking, positives
  include the query, sklearn.metrics.auc(recall, precision) == np.trapezoid(precision, recall)."""
  n = len(e)
  aucs, top1, jitter, aps = [], [], [], []
  for q in range(n):
    sims = e @ e[q]
    sims[q] = 0.0
    ranked = sorted(range(n), key=lambda j: (-sims[j], j))
    rel = np.array([videos[j] == videos[q] for j in ranked])
    hits = np.cumsum(rel)
    aucs.append(np.trapezoid(hits / np.arange(1, n + 1), hits / rel.sum()))
    top1.append(rel[0])
    if rel[0]:
      jitter.append(abs(frames[q] - frames[ranked[0]]))
    rest = np.array([videos[j] == videos[q] for j in ranked if j != q])
    if rest.any():
      aps.append((np.cumsum(rest) / np.arange(1, n))[rest].mean())
  return np.mean(aucs), np.mean(top1), np.mean(jitter), np.mean(aps)


@pytest.mark.parametrize('ties', [False, True])
def test_reid_metrics_random_against_the_reference_loop(ties):
  rng = np.random.default_rng(1)
  emb = rng.normal(size=(40, 6))
  if ties:  # repeated embeddings (and orthogonal ones, tying with the self-similarity 0) test the tie order
    emb[10:20] = emb[0]
    emb[20:23] = np.array([0.0, 0, 0, 0, 0, 1]) * [[1], [2], [3]]
    emb[23:26] = np.array([0.0, 0, 0, 0, 1, 0])
  videos, frames = rng.integers(0, 6, 40), rng.integers(0, 100, 40)
  got = metrics.reid_metrics(emb, videos, frames, block=7)
  e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
  auc, top1, jitter, ap = _reference_reid_loop(e.astype(np.float32), videos, frames)
  assert got['num_queries'] == 40 and got['per_query'].shape == (40,)
  assert got['reid_map'] == pytest.approx(auc) == pytest.approx(got['per_query'].mean())
  assert got['top1'] == pytest.approx(top1)
  assert got['frame_jitter'] == pytest.approx(jitter)
  assert got['reid_ap_self_excluded'] == pytest.approx(ap)


def test_reid_metrics_bad_input():
  with pytest.raises(ValueError, match='video_ids'):
    metrics.reid_metrics(REID_EMB, REID_VIDEOS[:3], REID_FRAMES)
  with pytest.raises(ValueError, match='N >= 2'):
    metrics.reid_metrics(REID_EMB[:1], ['a'], [0])
  # One frame per video: the reference's score is still defined (the query is its video's only positive),
  # the self-excluded AP is not.
  got = metrics.reid_metrics(REID_EMB[:3], ['a', 'b', 'c'], [0, 1, 2])
  assert 0 < got['reid_map'] < 1 and np.isnan(got['reid_ap_self_excluded'])


def test_knn_accuracy_and_nn_category_accuracy():
  assert metrics.knn_accuracy(['cup', 'shoe', 'cup'], ['cup', 'cup', 'cup']) == pytest.approx(2 / 3)
  with pytest.raises(ValueError):
    metrics.knn_accuracy([1, 2], [1])
  # Gallery directions 0, 90, 180 degrees labelled a, b, c; queries at 10 (a), 100 (b), 170 (a):
  # nearest are a, b, c -> 2 of 3 right.
  ang = np.radians([0, 90, 180, 10, 100, 170])
  pts = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
  acc = metrics.nn_category_accuracy(pts[3:], ['a', 'b', 'a'], pts[:3], ['a', 'b', 'c'])
  assert acc == pytest.approx(2 / 3)


def test_recall_at_k_hand_case():
  # q0 (class 1): hit at rank 1. q1 (class 1): hit at rank 3. q2 (class 2): never.
  neighbours = np.array([[1, 2, 3], [2, 2, 1], [3, 3, 3]])
  got = metrics.recall_at_k(neighbours, np.array([1, 1, 2]), ks=(1, 2, 3))
  assert got == pytest.approx({1: 1 / 3, 2: 1 / 3, 3: 2 / 3})
  with pytest.raises(ValueError, match='neighbours'):
    metrics.recall_at_k(neighbours, np.array([1, 1, 2]))


def test_effective_rank_equal_directions_and_independent_eigen_computation():
  rng = np.random.default_rng(0)
  rotation = np.linalg.qr(rng.normal(size=(16, 16)))[0]
  for k in (1, 3, 7):  # rows +-e_i, i < k: centred already, k equal singular values -> rank exactly k
    x = np.concatenate([np.eye(16)[:k], -np.eye(16)[:k]]) @ rotation + 5.0  # an offset: removed by centring
    assert metrics.effective_rank(x) == pytest.approx(k, rel=1e-9)
  # A decaying spectrum, against the covariance's eigenvalues (singular values = sqrt(N * eigenvalue)).
  x = rng.normal(size=(200, 12)) * np.geomspace(1.0, 0.01, 12)
  eig = np.clip(np.linalg.eigvalsh(np.cov(x.T, bias=True)), 0, None)
  p = np.sqrt(eig) / np.sqrt(eig).sum()
  assert metrics.effective_rank(x) == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-6)
  assert 1.0 < metrics.effective_rank(x) < 12.0


def test_effective_rank_rejects_degenerate_input():
  with pytest.raises(ValueError, match='constant'):
    metrics.effective_rank(np.ones((5, 4)))
  with pytest.raises(ValueError, match='N >= 2'):
    metrics.effective_rank(np.ones((1, 4)))
  with pytest.raises(ValueError, match='not finite'):
    metrics.effective_rank(np.array([[0.0, np.nan], [1.0, 2.0]]))
