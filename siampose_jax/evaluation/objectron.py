"""Objectron evaluation, the paper's Tables 1 and 2 (docs/metrics.md): 1-NN search on device, zero-shot
9-DoF box fitting, category accuracy and re-identification; writes the tables, the raw per-query results
and (config.eval.visualize) the figures.

Gallery = training split, queries = the test split (split by video, and on the synthetic default by object
instance, so neighbours come from other videos of other objects); validation videos are neither. Each row
(`methods`) picks one training frame per query; its 3D box is fitted into the query's camera (`boxfit`) and
scored by exact 3D IoU against the query's ground truth. Metrics follow the reference's definitions, so that
numbers can be set beside the paper's; better-behaved variants are extra, named columns.
"""
from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
from absl import logging

from input_pipeline.formats import geometry, paths
from input_pipeline.formats.frame_record import CATEGORIES
from input_pipeline.loader import datasets
from input_pipeline.store import frame_store, ingest
from siampose_jax import embedding, reports, sharding
from siampose_jax import step as step_lib
from siampose_jax.evaluation import boxfit, knn, methods, metrics, tables
from siampose_jax.evaluation.iou import box_iou_3d
from siampose_jax.models import simsiam
from siampose_jax.normalize import l2_normalize

GALLERY_FRACTIONS = (0.1, 0.01)
# A failed fit counts as the worst viewpoint and rotation error (and is also counted on its own).
FAILED_AZIMUTH_ERROR, FAILED_ELEVATION_ERROR, FAILED_ROTATION_ERROR = 180.0, 90.0, 180.0


def fit_and_score(gallery: dict, queries: dict, nn: np.ndarray, symmetric: tuple[str, ...] = ()) -> dict:
  """Zero-shot box fitting of each query from its neighbour; per-query IoU, viewpoint errors, failures.

  A query that cannot be fitted (see `boxfit.FAILURES`, plus 'box_behind_camera' when the query's own box
  centre is behind its camera) scores IoU 0 and the worst viewpoint errors, and its reason is returned.
  """
  query_box = boxfit.box_2d(queries['point_2d'][..., :2], clip=True)
  image_size = queries['image_hw'][:, ::-1] if 'image_hw' in queries else (geometry.IMAGE_WIDTH,
                                                                             geometry.IMAGE_HEIGHT)
  fitted, reason = boxfit.fit_boxes(
      gallery['point_3d'][nn], gallery['point_2d'][nn], gallery['plane_center'][nn],
      gallery['plane_normal'][nn], query_box, queries['plane_center'], queries['plane_normal'],
      queries['projection'], image_size=image_size, on_failure='report')
  behind = ~(queries['point_2d'][:, 0, 2] > 0)
  reason = np.where(behind & (reason == ''), 'box_behind_camera', reason)
  ok = reason == ''
  iou = np.zeros(len(nn))
  azimuth = np.full(len(nn), FAILED_AZIMUTH_ERROR)
  elevation = np.full(len(nn), FAILED_ELEVATION_ERROR)
  rotation = np.full(len(nn), FAILED_ROTATION_ERROR)
  symmetric_query = np.isin(np.asarray(CATEGORIES)[queries['category']], symmetric)
  if ok.any():
    iou[ok] = box_iou_3d(fitted[ok], queries['point_3d'][ok])
    sym = ok & symmetric_query
    if sym.any():
      iou[sym] = boxfit.symmetric_iou(fitted[sym], queries['point_3d'][sym])
    azimuth[ok], elevation[ok] = metrics.viewpoint_errors(fitted[ok], queries['point_3d'][ok])
    rotation[ok] = metrics.rotation_errors(fitted[ok], queries['point_3d'][ok], symmetric_query[ok])
  return {'iou': iou, 'azimuth_error': azimuth, 'elevation_error': elevation, 'rotation_error': rotation,
          'neighbour': nn, 'fitted': fitted, 'failure': reason, 'failed': int((~ok).sum())}


def per_category_ap(iou: np.ndarray, category: np.ndarray) -> dict[str, float]:
  """Table 1 row: AP@0.5 per category present, and their mean as 'overall' (the paper's average)."""
  row = {c: metrics.ap_at_threshold(iou[category == i]) for i, c in enumerate(CATEGORIES)
         if np.any(category == i)}
  row['overall'] = float(np.mean(list(row.values())))
  return row


def objectron_ap_curves(iou: np.ndarray, category: np.ndarray, scores: np.ndarray | None):
  """Objectron's AP at 21 IoU thresholds per category (detections ranked by `scores`, e.g. the 1-NN
  similarity; in query order without), and their mean over categories: (thresholds, {name: ap [21]})."""
  curves = {}
  for i, c in enumerate(CATEGORIES):
    sel = category == i
    if sel.any():
      thresholds, curves[c] = metrics.objectron_ap_curve(iou[sel], None if scores is None else scores[sel])
  curves['mean'] = np.mean([curves[c] for c in CATEGORIES if c in curves], axis=0)
  return metrics.OBJECTRON_THRESHOLDS, curves


def _table1_row(m: methods.Method, res: dict, queries: dict, name: str | None = None,
                key: methods.RowKey | None = None) -> dict:
  return {'row': str(key or m.key), 'method': name or m.name, **per_category_ap(res['iou'], queries['category']),
          'failed_fits': res['failed'], 'azimuth_error': float(res['azimuth_error'].mean()),
          'elevation_error': float(res['elevation_error'].mean()),
          'rotation_error_median': float(np.median(res['rotation_error']))}


def gallery_and_queries(config) -> tuple[frame_store.FrameStore, dict, dict]:
  """The frame store of `config.data` (ingested if needed), its training frames (the gallery) and its
  test frames (the queries), labels read and crops decoded lazily."""
  store = frame_store.open_store(ingest.prepare_store(config.data))
  if not store.has_frames('test'):
    raise ValueError(f'frame store {store.path} has no test frames to evaluate on')
  return (store, datasets.config_eval_arrays(store, 'train', config.data),
          datasets.config_eval_arrays(store, 'test', config.data))


def evaluate(config, workdir: str) -> dict[str, str]:
  """Tables 1 and 2 (every row, `methods`), the primary row's per-query files, and the figures; returns the
  written files. The entry point of the Objectron evaluation."""
  written = evaluate_tables(config, workdir)
  if config.eval.visualize and jax.process_index() == 0:
    from siampose_jax.evaluation import figures  # pylint: disable=g-import-not-at-top (OpenCV, matplotlib)
    written.update(figures.visualize(workdir, config=config))
  return written


def evaluate_tables(config, workdir: str) -> dict[str, str]:
  """Runs every method and baseline on the frame store of `config.data`; returns the written files."""
  workdir = str(paths.resolve(workdir))  # local or gs://: the writers in reports.py use etils.epath
  paths.resolve(workdir).mkdir(parents=True, exist_ok=True)
  mesh = sharding.make_mesh(config.num_devices or None)
  store, gallery, queries = gallery_and_queries(config)
  logging.info('evaluation: %d gallery frames (train) x %d queries (test)', len(gallery['image']),
               len(queries['image']))

  model = step_lib.make_model(config)
  chunk = config.eval.knn_chunk

  def embedding_method(key, name, variables, net=model):
    """Embeds gallery and queries with `net` (on device, in batches) for 1-NN search."""
    fn = embedding.make_embed_fn(net, mesh)
    g, q = (embedding.embed_images(fn, variables, x['image'], mesh, config.eval.batch_size,
                                   desc=f'embedding {what} ({name})')
            for what, x in (('gallery', gallery), ('queries', queries)))
    pose, identity = net.embedding_slices()  # halves of a split combined model, else the whole feature
    method = methods.embedding_method(key, name, l2_normalize(g[:, pose]), l2_normalize(q[:, pose]), mesh=mesh,
                                      chunk_size=chunk)
    method.reid_embeddings = l2_normalize(q[:, identity])
    return method

  primary = embedding_method(*methods.primary_embedding(config, workdir, model, mesh))
  embedded = [primary]
  if primary.key.source != methods.RANDOM_INIT:
    key = methods.RowKey(methods.RANDOM_INIT)
    embedded.append(embedding_method(key, key.name(), methods.random_init_variables(config, model, mesh)))
  if config.eval.imagenet_weights and primary.key.source != methods.IMAGENET:
    # The torchvision ResNet-50 baseline beside this run's own model, on the same crops.
    net = simsiam.SimSiam(backbone='resnet50', width=64, stem='imagenet', use_predictor=False)
    key = methods.RowKey(methods.IMAGENET)
    embedded.append(embedding_method(key, key.name(), methods.imagenet_variables(config.eval.imagenet_weights),
                                     net))
  symmetric = tuple(config.eval.symmetric_categories)
  rows = embedded + [methods.random_method(key, gallery['category'], queries['category'], config.seed)
                     for key in methods.RANDOM_BASELINES]
  rows.append(methods.oracle_method(gallery, queries, symmetric))
  rows += [methods.within_category_method(m, gallery['category'], queries['category'], mesh=mesh,
                                          chunk_size=chunk) for m in embedded]

  full = np.ones(len(gallery['category']), bool)
  table1, table2, written, results = [], [], {}, {}
  for m in rows:
    nn, score = m.neighbours(full)
    res = results[m.key] = dict(fit_and_score(gallery, queries, nn, symmetric), score=score)
    table1.append(_table1_row(m, res, queries))
    logging.info('%s: 3D AP@0.5 overall %.3f (%d of %d fits failed)', m.name, table1[-1]['overall'],
                 res['failed'], len(nn))
    if m.embeddings is not None:
      reid = metrics.reid_metrics(m.reid_embeddings, queries['video'], queries['frame_id'])
      _, curves = objectron_ap_curves(res['iou'], queries['category'], score)
      table2.append({
          'row': str(m.key), 'method': m.name, 'overall_3d_ap': table1[-1]['overall'],
          'classif_acc': 100 * metrics.knn_accuracy(gallery['category'][nn], queries['category']),
          'reid_map': reid['reid_map'], 'reid_ap_self_excluded': reid['reid_ap_self_excluded'],
          'reid_top1': reid['top1'], 'frame_jitter': reid['frame_jitter'],
          'objectron_ap50': float(curves['mean'][np.argmin(np.abs(metrics.OBJECTRON_THRESHOLDS - 0.5))])})
    if m is primary:
      res['reid'] = reid['per_query']
      written.update(_write_retrieval_modes(workdir, gallery, queries, *m.embeddings, mesh, symmetric))
      total = len(np.unique(gallery['video']))
      for frac in GALLERY_FRACTIONS:
        mask, kept = methods.gallery_subset(gallery['video'], frac, config.seed)
        sub = fit_and_score(gallery, queries, m.neighbours(mask)[0], symmetric)
        key = dataclasses.replace(m.key, gallery_fraction=frac)
        table1.append(_table1_row(m, sub, queries, key.name(m.name, (kept, total)), key))
  within = results[dataclasses.replace(primary.key, within_category=True)]
  written.update(_write_primary_details(workdir, store, gallery, queries, primary, results[primary.key], within))
  written.update(tables.write_tables(workdir, table1, table2, categories=CATEGORIES))
  return written


def _write_retrieval_modes(workdir, gallery, queries, g_emb, q_emb, mesh, symmetric) -> dict[str, str]:
  """The poster's two retrieval settings over every frame (train + test), self always excluded:
  'entire dataset' (neighbours mostly come from the query's own video) vs 'other videos only'."""
  pool = {k: np.concatenate([gallery[k], queries[k]]) for k in ('point_3d', 'point_2d', 'plane_center',
                                                                 'plane_normal', 'category')}
  video_names = np.concatenate([gallery['video_ids'][gallery['video']], queries['video_ids'][queries['video']]])
  pool_emb = np.concatenate([g_emb, q_emb])
  q_pos = len(g_emb) + np.arange(len(q_emb))
  q_videos = queries['video_ids'][queries['video']]
  rows = []
  for mode, q_groups, p_groups in (('entire dataset', q_pos, np.arange(len(pool_emb))),
                                   ('other videos only', q_videos, video_names)):
    _, nn = knn.knn(q_emb, pool_emb, k=1, mesh=mesh, query_groups=q_groups, gallery_groups=p_groups,
                    exclude_same_group=True)
    res = fit_and_score(pool, queries, nn[:, 0], symmetric)
    rows.append({'retrieval': mode, **per_category_ap(res['iou'], queries['category']),
                 'same_video_neighbours': float(np.mean(video_names[nn[:, 0]] == q_videos))})
  columns = ['retrieval', 'overall', 'same_video_neighbours']
  return {'retrieval_csv': reports.write_csv(os.path.join(workdir, 'retrieval.csv'), rows),
          'retrieval_md': reports.write_markdown(os.path.join(workdir, 'retrieval.md'), rows, columns,
                                                 title='3D AP@0.5 by retrieval setting', fmt='{:.3f}')}


def _write_primary_details(workdir, store, gallery, queries, method, res, within) -> dict[str, str]:
  """Per-query results (also those of the method's 1-NN within the true category, `within`), the
  embeddings and fits (for users' own analysis and the figures), and Objectron's AP curves of the primary
  method."""
  def names(x):
    return x['video_ids'][x['video']]

  q_video, g_video = names(queries), names(gallery)
  nn, score = res['neighbour'], res['score']
  rows = [{'video_id': q_video[i], 'frame_id': int(queries['frame_id'][i]),
           'category': CATEGORIES[queries['category'][i]], 'neighbour_video_id': g_video[nn[i]],
           'neighbour_frame_id': int(gallery['frame_id'][nn[i]]),
           'neighbour_category': CATEGORIES[gallery['category'][nn[i]]], 'similarity': float(score[i]),
           'iou': float(res['iou'][i]), 'azimuth_error': float(res['azimuth_error'][i]),
           'elevation_error': float(res['elevation_error'][i]), 'rotation_error': float(res['rotation_error'][i]),
           'failure': str(res['failure'][i]), 'iou_within_category': float(within['iou'][i]),
           'rotation_error_within_category': float(within['rotation_error'][i]),
           'reid_map': float(res['reid'][i])}
          for i in range(len(nn))]
  g_emb, q_emb = method.embeddings
  embeddings_npz = os.path.join(workdir, 'eval_embeddings.npz')
  reports.write_npz(embeddings_npz, method=method.name, store=store.path, split='test',
           embeddings=q_emb.astype(np.float32), video_id=q_video, frame_index=queries['frame_id'],
           category=np.asarray(CATEGORIES)[queries['category']], record=queries['record'],
           gallery_embeddings=g_emb.astype(np.float32), gallery_video_id=g_video,
           gallery_frame_index=gallery['frame_id'], gallery_category=np.asarray(CATEGORIES)[gallery['category']],
           gallery_record=gallery['record'], reid_embeddings=method.reid_embeddings.astype(np.float32))
  fits_npz = os.path.join(workdir, 'eval_fits.npz')
  with np.errstate(divide='ignore', invalid='ignore'):  # failed fits (NaN, zeroed here) are masked below
    projected = geometry.project_points(np.nan_to_num(res['fitted']), queries['projection'][:, None])
  reports.write_npz(fits_npz, method=method.name, neighbour=nn, similarity=score, iou=res['iou'],
           failure=res['failure'], fitted_point_3d=res['fitted'],
           fitted_point_2d=np.where(np.isnan(res['fitted']), np.nan, projected),
           point_3d=queries['point_3d'], point_2d=queries['point_2d'],
           neighbour_point_2d=gallery['point_2d'][nn], neighbour_point_3d=gallery['point_3d'][nn])
  thresholds, curves = objectron_ap_curves(res['iou'], queries['category'], score)
  curve_rows = [{'iou_threshold': float(t), **{c: float(a[k]) for c, a in curves.items()}}
                for k, t in enumerate(thresholds)]
  failed = int(res['failed'])
  return {
      'per_query_csv': reports.write_csv(os.path.join(workdir, 'eval_per_query.csv'), rows, list(rows[0])),
      'embeddings_npz': embeddings_npz, 'fits_npz': fits_npz,
      'ap_curve_csv': reports.write_csv(os.path.join(workdir, 'ap_curve.csv'), curve_rows,
                                        ['iou_threshold'] + list(curves)),
      'ap_curve_png': tables.plot_ap_curve(
          os.path.join(workdir, 'ap_curve.png'), thresholds, curves,
          f'azimuth err {res["azimuth_error"].mean():.1f}°, elevation err {res["elevation_error"].mean():.1f}° '
          f'({failed} failed fits counted as {FAILED_AZIMUTH_ERROR:.0f}°/{FAILED_ELEVATION_ERROR:.0f}°)'),
  }
