"""Evaluation metrics: 3D box accuracy (the paper's and Objectron's), re-identification, retrieval.

All functions take numpy arrays and return plain floats / numpy arrays. Definitions (DESIGN.md section 5):
  * paper "AP@0.5": fraction of queries whose 3D IoU exceeds 0.5;
  * Objectron's AP curve (objectron/dataset/{eval,metrics}.py): for each of 21 IoU thresholds, every query
    is one prediction that hits when IoU >= threshold (Objectron's `HitMiss` is inclusive); hits and misses
    are accumulated in evaluation order (Objectron has no confidence scores; pass `scores` to rank by them
    instead), and the AP is the Pascal-VOC all-point interpolated area under precision(recall);
  * viewpoint errors: the camera's direction seen from the box frame (x right, y up, z front) gives an
    azimuth atan2(z, x) and an elevation atan2(y, |xz|), as in Objectron's `compute_viewpoint`;
  * Re-ID (all-vs-all within one set, self excluded, positives = other frames of the same video).
"""
from __future__ import annotations

import numpy as np

from input_pipeline.formats import geometry
from siampose_jax import knn as knn_lib

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


def _ranking_ap(positive):
  """Per-row AP and reference-style trapezoid AUC of boolean relevance rankings [b, n] (best first)."""
  n_pos = positive.sum(axis=1)
  hits = np.cumsum(positive, axis=1)
  ranks = np.arange(1, positive.shape[1] + 1)
  precision = hits / ranks
  with np.errstate(invalid='ignore', divide='ignore'):
    ap = np.where(positive, precision, 0.0).sum(axis=1) / n_pos
    # sklearn.metrics.auc over the points (recall_i, precision_i), i >= 1, as the reference computes it:
    # only steps at a positive rank i >= 2 add area, (1/P) * (precision_i + precision_{i-1}) / 2.
    prev = np.concatenate([np.zeros((positive.shape[0], 1)), precision[:, :-1]], axis=1)
    steps = positive.copy()
    steps[:, 0] = False
    auc = np.where(steps, (precision + prev) / 2, 0.0).sum(axis=1) / n_pos
  return ap, auc


def reid_metrics(embeddings, video_ids, frame_ids, block=256):
  """Re-identification over one set: each frame queries all the others (cosine, self excluded).

  Returns a dict: `reid_map` (mean per-query average precision over the full ranking, i.e. the mean of
  the precision at each positive's rank), `reid_auc` (the reference's trapezoidal area under the same
  precision-recall points), `top1` (fraction of queries whose nearest neighbour is from their video),
  `frame_jitter` (mean |frame id difference| over top-1 neighbours from the same video) and `num_queries`.
  Queries whose video has no other frame have no positive and are left out of every average.
  The ranking is exact: a full sort of dense score rows, `block` queries at a time (AP needs the whole
  ranking, so a top-k kernel would not save work); ties go to the lower index, as in `knn`.
  """
  emb = np.asarray(embeddings, np.float32)
  video_ids, frame_ids = np.asarray(video_ids), np.asarray(frame_ids, np.int64)
  n = emb.shape[0] if emb.ndim == 2 else -1
  if n < 2 or video_ids.shape != (n,) or frame_ids.shape != (n,):
    raise ValueError(f'embeddings {emb.shape}, video_ids {video_ids.shape}, frame_ids {frame_ids.shape}: '
                     'need [N, D] with N >= 2 and [N] ids')
  emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
  _, video = np.unique(video_ids, return_inverse=True)
  aps, aucs, top1, jitter = [], [], [], []
  for start in range(0, n, block):
    rows = np.arange(start, min(start + block, n))
    scores = emb[rows] @ emb.T
    scores[np.arange(rows.size), rows] = -np.inf
    order = np.argsort(-scores, axis=1, kind='stable')[:, :-1]  # self is last; stable = lower index first
    positive = video[order] == video[rows, None]
    keep = positive.any(axis=1)
    ap, auc = _ranking_ap(positive[keep])
    aps.append(ap)
    aucs.append(auc)
    top1.append(positive[keep, 0])
    same = keep & positive[:, 0]
    jitter.append(np.abs(frame_ids[rows[same]] - frame_ids[order[same, 0]]))
  aps, top1 = np.concatenate(aps), np.concatenate(top1)
  if aps.size == 0:
    raise ValueError('no video has two or more frames: re-identification is undefined')
  jitter = np.concatenate(jitter)
  return {
      'reid_map': float(aps.mean()),
      'reid_auc': float(np.concatenate(aucs).mean()),
      'top1': float(top1.mean()),
      'frame_jitter': float(jitter.mean()) if jitter.size else float('nan'),
      'num_queries': int(aps.size),
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


def recall_at_k(neighbour_labels, query_labels, ks=(1, 5, 10, 20, 50)):
  """UCF101-style R@k: fraction of queries with their class among the first k neighbours, per k."""
  nl, ql = np.asarray(neighbour_labels), np.asarray(query_labels)
  if nl.ndim != 2 or ql.shape != (nl.shape[0],) or nl.shape[0] == 0:
    raise ValueError(f'neighbour_labels {nl.shape} must be [Q, K] and query_labels {ql.shape} [Q]')
  if max(ks) > nl.shape[1]:
    raise ValueError(f'ks={tuple(ks)} needs at least {max(ks)} neighbours, got {nl.shape[1]}')
  first_hit = np.cumsum(nl == ql[:, None], axis=1) > 0
  return {int(k): float(first_hit[:, k - 1].mean()) for k in ks}
