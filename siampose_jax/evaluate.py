"""The paper's evaluation (DESIGN.md section 5): 1-NN search on device, zero-shot 9-DoF box fitting,
category accuracy and re-identification; writes Tables 1 and 2 and the raw per-query results.

Gallery = training split, queries = the held-out split (split by video, so neighbours come from other
videos). Each embedding method gives one 1-NN per query; the neighbour's 3D box is fitted into the query's
camera (`boxfit`) and scored by exact 3D IoU against the query's ground truth.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np
from absl import logging

from input_pipeline.formats.frame_record import CATEGORIES
from input_pipeline.loader import datasets
from input_pipeline.store import frame_store
from input_pipeline.store import ingest
from siampose_jax import boxfit, checkpointing, convert, embedding, knn, metrics, reports
from siampose_jax import sharding
from siampose_jax.iou import box_iou_3d
from siampose_jax import step as step_lib
from siampose_jax.models import simsiam

GALLERY_FRACTIONS = (0.1, 0.01)


@dataclasses.dataclass
class Method:
  name: str
  neighbours: Callable[[np.ndarray], np.ndarray]  # gallery mask [G] -> 1-NN gallery index per query [Q]
  embeddings: tuple[np.ndarray, np.ndarray] | None = None  # (gallery, queries) for Table 2


def _variables_for(config, workdir, model, mesh):
  """(name, variables) of the primary embedding: this run's checkpoint, a path, random or ImageNet."""
  spec = config.eval.checkpoint
  if spec.startswith('imagenet:'):
    m = config.model
    if (m.backbone, m.width, m.stem) != ('resnet50', 64, 'imagenet'):
      raise ValueError(f'eval.checkpoint={spec!r} needs model.backbone=resnet50, model.width=64 and '
                       f'model.stem=imagenet (torchvision\'s layout), not {m.backbone}/{m.width}/{m.stem}')
    return 'ImageNet embeddings', _imagenet_variables(spec.split(':', 1)[1])
  state = step_lib.template_state(config, model, mesh, config.seed)
  if spec == 'random':
    return 'Random embeddings', {'params': state.params, 'batch_stats': state.batch_stats}
  state, step = checkpointing.restore_params(spec or workdir, state)
  logging.info('evaluating the checkpoint at step %d of %s', step, spec or workdir)
  objective = step_lib.make_objective(config).name
  name = {'ntxent': 'NT-Xent', 'tcn': 'TCN'}.get(
      objective, f'Our embeddings ({config.data.pair_mode.replace("_", "-")} pairs)')
  return name, {'params': state.params, 'batch_stats': state.batch_stats}


def _imagenet_variables(path: str) -> dict:
  return convert.encoder_variables(convert.load_imagenet_backbone(os.path.expanduser(path)))


def _random_variables(config, model, mesh):
  state = step_lib.template_state(config, model, mesh, config.seed + 1)
  return {'params': state.params, 'batch_stats': state.batch_stats}


def gallery_subset(gallery: dict, fraction: float, seed: int) -> np.ndarray:
  """Mask keeping `fraction` of the training videos of each category (at least one per category)."""
  rng = np.random.default_rng(seed)
  keep = np.zeros(len(gallery['category']), bool)
  for c in np.unique(gallery['category']):
    videos = np.unique(gallery['video'][gallery['category'] == c])
    n = max(1, int(round(fraction * len(videos))))
    keep |= np.isin(gallery['video'], rng.choice(videos, n, replace=False))
  return keep


def _embedding_method(name, g_emb, q_emb, mesh, chunk):
  def neighbours(mask):
    idx = np.flatnonzero(mask)
    _, nn = knn.knn(q_emb, g_emb[idx], k=1, mesh=mesh, chunk_size=chunk)
    return idx[nn[:, 0]]
  return Method(name, neighbours, (g_emb, q_emb))


def _random_method(name, gallery, queries, seed, in_category):
  def neighbours(mask):
    rng = np.random.default_rng(seed)
    out = np.empty(len(queries['category']), np.int64)
    for i, c in enumerate(queries['category']):
      pool = np.flatnonzero(mask & (gallery['category'] == c)) if in_category else np.flatnonzero(mask)
      out[i] = rng.choice(pool)
    return out
  return Method(name, neighbours)


def fit_and_score(gallery: dict, queries: dict, nn: np.ndarray, symmetric: tuple[str, ...] = ()) -> dict:
  """Zero-shot box fitting of each query from its neighbour; per-query IoU and viewpoint errors.

  A fit whose centre ray misses the query's raised ground plane scores IoU 0 (NaN viewpoint errors) and
  is counted in 'failed'.
  """
  query_box = boxfit.box_2d(queries['point_2d'][..., :2])
  fitted = boxfit.fit_boxes(gallery['point_3d'][nn], gallery['point_2d'][nn], gallery['plane_center'][nn],
                            gallery['plane_normal'][nn], query_box, queries['plane_center'],
                            queries['plane_normal'], queries['projection'], on_failure='nan')
  ok = np.isfinite(fitted).all(axis=(-1, -2))
  iou = np.zeros(len(nn))
  azimuth, elevation = np.full(len(nn), np.nan), np.full(len(nn), np.nan)
  iou[ok] = box_iou_3d(fitted[ok], queries['point_3d'][ok])
  sym = ok & np.isin(np.asarray(CATEGORIES)[queries['category']], symmetric)
  if sym.any():
    iou[sym] = boxfit.symmetric_iou(fitted[sym], queries['point_3d'][sym])
  if ok.any():
    azimuth[ok], elevation[ok] = metrics.viewpoint_errors(fitted[ok], queries['point_3d'][ok])
  return {'iou': iou, 'azimuth_error': azimuth, 'elevation_error': elevation, 'neighbour': nn,
          'fitted': fitted, 'failed': int((~ok).sum())}


def per_category_ap(iou: np.ndarray, category: np.ndarray) -> dict[str, float]:
  """Table 1 row: AP@0.5 per category present, and their mean as 'overall' (the paper's average)."""
  row = {c: metrics.ap_at_threshold(iou[category == i]) for i, c in enumerate(CATEGORIES)
         if np.any(category == i)}
  row['overall'] = float(np.mean(list(row.values())))
  return row


def evaluate(config, workdir: str) -> dict[str, str]:
  """Runs every method and baseline on the frame store of `config.data`; returns the written files."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  mesh = sharding.make_mesh(config.num_devices or None)
  store = frame_store.open_store(ingest.prepare_store(config.data))
  split = ingest.query_split(store)
  gallery = datasets.config_eval_arrays(store, 'train', config.data)
  queries = datasets.config_eval_arrays(store, split, config.data)
  logging.info('evaluation: %d gallery frames (train) x %d queries (%s)', len(gallery['image']),
               len(queries['image']), split)

  model = step_lib.make_model(config)
  chunk = config.eval.knn_chunk

  def embedding_method(name, variables, net=model):
    """Embeds gallery and queries with `net` (on device, in batches) for 1-NN search."""
    fn = embedding.make_embed_fn(net, mesh)
    g, q = (embedding.embed_images(fn, variables, x['image'], mesh, config.eval.batch_size,
                                   desc=f'embedding {what} ({name})')
            for what, x in (('gallery', gallery), ('queries', queries)))
    return _embedding_method(name, g, q, mesh, chunk)

  primary, variables = _variables_for(config, workdir, model, mesh)
  methods = [embedding_method(primary, variables)]
  if primary != 'Random embeddings':
    methods.append(embedding_method('Random embeddings', _random_variables(config, model, mesh)))
  if config.eval.imagenet_weights and primary != 'ImageNet embeddings':
    # The torchvision ResNet-50 baseline beside this run's own model, on the same crops.
    net = simsiam.SimSiam(backbone='resnet50', width=64, stem='imagenet', use_predictor=False)
    methods.append(embedding_method('ImageNet embeddings', _imagenet_variables(config.eval.imagenet_weights),
                                    net))
  methods.append(_random_method('Random fit', gallery, queries, config.seed, in_category=False))
  methods.append(_random_method('Random in-category fit', gallery, queries, config.seed, in_category=True))

  symmetric = tuple(config.eval.symmetric_categories)
  full = np.ones(len(gallery['category']), bool)
  table1, table2, written = [], [], {}
  for m in methods:
    res = fit_and_score(gallery, queries, m.neighbours(full), symmetric)
    row = {'method': m.name, **per_category_ap(res['iou'], queries['category'])}
    table1.append(row)
    logging.info('%s: 3D AP@0.5 overall %.3f (%d of %d fits failed: ray misses the raised plane)', m.name,
                 row['overall'], res['failed'], len(res['iou']))
    if m.embeddings is not None:
      reid = metrics.reid_metrics(m.embeddings[1], queries['video'], queries['frame_id'])
      table2.append({
          'method': m.name, 'overall_3d_ap': row['overall'], 'reid_map': reid['reid_map'],
          'classif_acc': 100 * metrics.knn_accuracy(gallery['category'][res['neighbour']], queries['category']),
          'reid_top1': reid['top1'], 'frame_jitter': reid['frame_jitter']})
    if m.name == primary:
      written.update(_write_primary_details(workdir, gallery, queries, res))
      written.update(_write_retrieval_modes(workdir, gallery, queries, *m.embeddings, mesh, symmetric))
      for frac in GALLERY_FRACTIONS:
        sub = fit_and_score(gallery, queries, m.neighbours(gallery_subset(gallery, frac, config.seed)),
                            symmetric)
        table1.append({'method': f'{m.name} ({frac:.0%} of videos)',
                       **per_category_ap(sub['iou'], queries['category'])})
  written.update(reports.write_tables(workdir, table1, table2, categories=CATEGORIES))
  return written


def _write_retrieval_modes(workdir, gallery, queries, g_emb, q_emb, mesh, symmetric) -> dict[str, str]:
  """The poster's two retrieval settings over every frame (train + held-out), self always excluded:
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


def _write_primary_details(workdir, gallery, queries, res) -> dict[str, str]:
  """Raw per-query results, Objectron's AP curve and the 'entire dataset' vs 'other videos' retrieval."""
  rows = [{'video_id': queries['video_ids'][queries['video'][i]], 'frame_id': int(queries['frame_id'][i]),
           'category': CATEGORIES[queries['category'][i]],
           'neighbour_video_id': gallery['video_ids'][gallery['video'][res['neighbour'][i]]],
           'neighbour_frame_id': int(gallery['frame_id'][res['neighbour'][i]]), 'iou': float(res['iou'][i]),
           'azimuth_error': float(res['azimuth_error'][i]), 'elevation_error': float(res['elevation_error'][i])}
          for i in range(len(res['iou']))]
  thresholds, ap = metrics.objectron_ap_curve(res['iou'])
  curve = [{'iou_threshold': float(t), 'ap': float(a)} for t, a in zip(thresholds, ap)]
  return {
      'per_query_csv': reports.write_csv(os.path.join(workdir, 'eval_per_query.csv'), rows, list(rows[0])),
      'ap_curve_csv': reports.write_csv(os.path.join(workdir, 'ap_curve.csv'), curve, ['iou_threshold', 'ap']),
      'ap_curve_png': reports.plot_ap_curve(os.path.join(workdir, 'ap_curve.png'), thresholds, ap,
                                            np.nanmean(res['azimuth_error']), np.nanmean(res['elevation_error'])),
  }
