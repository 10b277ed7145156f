"""Evaluation metrics: 3D box accuracy (the paper's and Objectron's), re-identification, retrieval.

All functions take numpy arrays and return plain floats / numpy arrays. Definitions (docs/metrics.md):
  * paper "AP@0.5": fraction of queries whose 3D IoU exceeds 0.5;
  * Objectron's AP curve (objectron/dataset/{eval,metrics}.py): for each of 21 IoU thresholds, every query
    is one prediction that hits when IoU >= threshold (Objectron's `HitMiss` is inclusive); hits and misses
    are accumulated in evaluation order (Objectron has no confidence scores; pass `scores` to rank by them
    instead), and the AP is the Pascal-VOC all-point interpolated area under precision(recall);
  * viewpoint errors: the camera's direction seen from the box frame (x right, y up, z front) gives an
    azimuth atan2(z, x) and an elevation atan2(y, |xz|), as in Objectron's `compute_viewpoint`;
  * rotation error: the geodesic angle between two box rotations, folded over the turns that map a box
    onto itself (`rotation_errors`);
  * Re-ID: the reference's all-vs-all ranking and trapezoidal AUC (see `reid_metrics`), plus the standard
    self-excluded AP under its own name.
"""
from __future__ import annotations

import numpy as np

from input_pipeline.formats import geometry
from siampose_jax.evaluation import knn as knn_lib
from siampose_jax.normalize import l2_normalize

OBJECTRON_THRESHOLDS = np.linspace(0.0, 1.0, 21)


def _nonempty_1d(name, values, dtype=np.float64):
  values = np.asarray(values, dtype)
  if values.ndim != 1 or values.size == 0:
    raise ValueError(f'{name} must be a non-empty 1-D array, got shape {values.shape}')
  return values


def ap_at_threshold(ious, threshold=0.5):
  """The paper's "AP@0.5": fraction of queries with IoU strictly above `threshold`."""
  return float(np.mean(_nonempty_1d('ious', ious) > threshold))


def interpolated_ap(recall, precision):
  """Pascal-VOC all-point AP: area under the monotone (right-max) envelope of precision(recall).

  The curve is extended with (recall 0, precision 0) in front and (recall 1, precision 0) at the end,
  as Objectron's `AveragePrecision.compute_ap` does.
  """
  r = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
  p = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
  p = np.maximum.accumulate(p[::-1])[::-1]
  steps = np.nonzero(r[1:] != r[:-1])[0] + 1
  return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def objectron_ap_curve(ious, scores=None, thresholds=OBJECTRON_THRESHOLDS):
  """Objectron's AP at each IoU threshold, one prediction and one ground truth per query.

  Returns (thresholds [T], ap [T]). Without `scores` the predictions are taken in the given order (as
  Objectron accumulates them); with scores they are ranked by descending score (stable).
  """
  ious = _nonempty_1d('ious', ious)
  if scores is not None:
    scores = _nonempty_1d('scores', scores)
    if scores.shape != ious.shape:
      raise ValueError(f'scores {scores.shape} must match ious {ious.shape}')
    ious = ious[np.argsort(-scores, kind='stable')]
  thresholds = np.asarray(thresholds, np.float64)
  hits = ious[None, :] >= thresholds[:, None]
  tp = np.cumsum(hits, axis=1)
  precision = tp / np.arange(1, ious.size + 1)
  recall = tp / ious.size
  return thresholds, np.array([interpolated_ap(r, p) for r, p in zip(recall, precision)])


def viewpoint(keypoints):
  """(azimuth, elevation) in degrees of the camera seen from box frames; keypoints [..., 9, 3] (camera frame).

  The camera centre in the box frame is -R^T t (Objectron solves the same thing by least squares).
  """
  rotation, translation, _ = geometry.box_parameters(keypoints)
  cam = -np.einsum('...ji,...j->...i', rotation, translation)
  x, y, z = cam[..., 0], cam[..., 1], cam[..., 2]
  return np.degrees(np.arctan2(z, x)), np.degrees(np.arctan2(y, np.hypot(x, z)))


def viewpoint_errors(pred_keypoints, gt_keypoints):
  """Absolute azimuth error (wrapped to [0, 180]) and elevation error, in degrees, per box."""
  pred_az, pred_el = viewpoint(pred_keypoints)
  gt_az, gt_el = viewpoint(gt_keypoints)
  az = np.abs(pred_az - gt_az)
  return np.where(az > 180.0, 360.0 - az, az), np.abs(pred_el - gt_el)


# The turns that map a cuboid onto itself, as sign flips of its axes in its own frame: the identity and the
# half turns about x, y and z (diag(1, -1, -1), ...). A box's rotation is defined up to these.
BOX_SYMMETRIES = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], np.float64)


def rotation_errors(pred_keypoints, gt_keypoints, up_symmetric=False):
  """Rotation error in degrees [...] between boxes [..., 9, 3], folded over the box's symmetries.

  The geodesic angle arccos((tr(Rg^T Rp S) - 1) / 2) minimised over the half turns S of BOX_SYMMETRIES,
  so that two descriptions of the same box score 0. Where `up_symmetric` ([...] or one bool: a category
  symmetric about its up axis, as the symmetric IoU treats it) every turn about the up axis (y) is free too,
  and the error is the angle between the two up axes, up to their sign: arccos(|yp . yg|).
  """
  rp, _, _ = geometry.box_parameters(pred_keypoints)
  rg, _, _ = geometry.box_parameters(gt_keypoints)
  diagonal = np.einsum('...ji,...ji->...i', rg, rp)  # the diagonal of Rg^T Rp
  trace = np.max(diagonal @ BOX_SYMMETRIES.T, axis=-1)  # tr(Rg^T Rp S) = sum_i s_i (Rg^T Rp)_ii
  folded = np.degrees(np.arccos(np.clip((trace - 1) / 2, -1.0, 1.0)))
  up_cos = np.abs(np.sum(rp[..., :, 1] * rg[..., :, 1], axis=-1))
  about_up = np.degrees(np.arccos(np.clip(up_cos, 0.0, 1.0)))
  return np.where(up_symmetric, about_up, folded)


def _trapezoid_auc(positive, total):
  """sklearn.metrics.auc over the points (recall_k, precision_k), k = 1..n, of rankings [b, n] (best first).

  recall_k = hits_k / total, precision_k = hits_k / k; recall only moves at a positive rank k >= 2, where
  the trapezoid adds (1 / total) * (precision_k + precision_{k-1}) / 2 (no (0, 1) point in front).
  """
  hits = np.cumsum(positive, axis=1)
  precision = hits / np.arange(1, positive.shape[1] + 1)
  prev = np.concatenate([np.zeros((positive.shape[0], 1)), precision[:, :-1]], axis=1)
  steps = positive.copy()
  steps[:, 0] = False
  return np.where(steps, (precision + prev) / 2, 0.0).sum(axis=1) / total


def _average_precision(positive):
  """Standard AP of rankings [b, n]: mean precision at the positives' ranks (rows without one: NaN)."""
  precision = np.cumsum(positive, axis=1) / np.arange(1, positive.shape[1] + 1)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(positive, precision, 0.0).sum(axis=1) / positive.sum(axis=1)


REID_BLOCK_ELEMENTS = 1 << 20  # score-matrix cells ranked at a time: ~50 MB of work arrays, whatever N


def reid_metrics(embeddings, video_ids, frame_ids, block=None):
  """Re-identification over one set of frames (e.g. the test split), all against all by cosine similarity.

  The paper's numbers come from the reference code's definition, reproduced exactly:
    * `reid_map` ("Re-ID mAP"): for each query q, its own similarity is set to 0 and q stays in the
      ranking of all N frames (descending similarity; ties to the lower index); positives are the frames
      of q's video, q included (total = its video's frame count); the query's score is the trapezoidal
      area under (recall_k, precision_k), k = 1..N (`_trapezoid_auc`); the mean over all queries;
    * `top1`: the first-ranked frame of that ranking is from q's video; `frame_jitter`: mean |frame id
      difference| to it over the queries where it is.
  Extra, under its own name: `reid_ap_self_excluded`, the standard mean average precision with q removed
  from its own ranking, over the queries whose video has another frame. `per_query` holds each query's
  reference score (for the claims' intervals over seeds and test videos).
  The ranking is exact: a full sort of dense score rows, `block` queries at a time (by default as many as
  keep block x N under REID_BLOCK_ELEMENTS, so host memory does not grow with the square of N).
  """
  emb = np.asarray(embeddings, np.float32)
  video_ids, frame_ids = np.asarray(video_ids), np.asarray(frame_ids, np.int64)
  n = emb.shape[0] if emb.ndim == 2 else -1
  if n < 2 or video_ids.shape != (n,) or frame_ids.shape != (n,):
    raise ValueError(f'embeddings {emb.shape}, video_ids {video_ids.shape}, frame_ids {frame_ids.shape}: '
                     'need [N, D] with N >= 2 and [N] ids')
  emb = l2_normalize(emb)
  block = block or max(1, min(256, REID_BLOCK_ELEMENTS // n))
  _, video = np.unique(video_ids, return_inverse=True)
  video_size = np.bincount(video)
  aucs, aps, top1, jitter = [], [], [], []
  for start in range(0, n, block):
    rows = np.arange(start, min(start + block, n))
    scores = emb[rows] @ emb.T
    scores[np.arange(rows.size), rows] = 0.0  # the reference's self-similarity; q keeps its place
    order = np.argsort(-scores, axis=1, kind='stable')
    positive = video[order] == video[rows, None]
    aucs.append(_trapezoid_auc(positive, video_size[video[rows]]))
    top1.append(positive[:, 0])
    jitter.append(np.abs(frame_ids[rows[positive[:, 0]]] - frame_ids[order[positive[:, 0], 0]]))
    others = order != rows[:, None]  # the same ranking with q removed
    aps.append(_average_precision(positive[others].reshape(rows.size, n - 1)))
  aps, jitter, aucs = np.concatenate(aps), np.concatenate(jitter), np.concatenate(aucs)
  has_other = ~np.isnan(aps)
  return {
      'per_query': aucs,  # each query's reference score, in input order
      'reid_map': float(aucs.mean()),
      'top1': float(np.concatenate(top1).mean()),
      'frame_jitter': float(jitter.mean()) if jitter.size else float('nan'),
      'reid_ap_self_excluded': float(aps[has_other].mean()) if has_other.any() else float('nan'),
      'num_queries': int(n),
  }


def knn_accuracy(pred_labels, true_labels):
  """Fraction of predicted labels equal to the true ones."""
  pred, true = np.asarray(pred_labels), np.asarray(true_labels)
  if pred.shape != true.shape or pred.ndim != 1 or pred.size == 0:
    raise ValueError(f'pred_labels {pred.shape} and true_labels {true.shape} must be equal non-empty 1-D')
  return float(np.mean(pred == true))


def nn_category_accuracy(query_embeddings, query_labels, gallery_embeddings, gallery_labels, **knn_kwargs):
  """1-NN category accuracy: each query takes the label of its nearest gallery item (cosine)."""
  gallery_labels = np.asarray(gallery_labels)
  _, idx = knn_lib.knn(query_embeddings, gallery_embeddings, 1, **knn_kwargs)
  return knn_accuracy(gallery_labels[idx[:, 0]], query_labels)


def effective_rank(embeddings):
  """Effective rank (Roy & Vetterli 2007) of [N, D] embeddings: exp of the entropy of the normalised
  singular values of the centred matrix, between 1 (one direction) and min(N, D). A label-free sign of
  partial dimensional collapse, which SimSiam undergoes when the network is small for the data (Li et al.,
  ECCV 2022); the online monitor logs it beside the 1-NN accuracy."""
  x = np.asarray(embeddings, np.float64)
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError(f'embeddings {x.shape} must be [N, D] with N >= 2')
  if not np.all(np.isfinite(x)):
    raise ValueError('embeddings are not finite: the effective rank is undefined')
  s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
  if s.sum() == 0:
    raise ValueError('embeddings are constant: the effective rank is undefined')
  p = s / s.sum()
  p = p[p > 0]
  return float(np.exp(-np.sum(p * np.log(p))))


def recall_at_k(neighbour_labels, query_labels, ks=(1, 5, 10, 20, 50)):
  """UCF101-style R@k: fraction of queries with their class among the first k neighbours, per k."""
  nl, ql = np.asarray(neighbour_labels), np.asarray(query_labels)
  if nl.ndim != 2 or ql.shape != (nl.shape[0],) or nl.shape[0] == 0:
    raise ValueError(f'neighbour_labels {nl.shape} must be [Q, K] and query_labels {ql.shape} [Q]')
  if max(ks) > nl.shape[1]:
    raise ValueError(f'ks={tuple(ks)} needs at least {max(ks)} neighbours, got {nl.shape[1]}')
  first_hit = np.cumsum(nl == ql[:, None], axis=1) > 0
  return {int(k): float(first_hit[:, k - 1].mean()) for k in ks}
