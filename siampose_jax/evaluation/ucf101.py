"""UCF101 action retrieval, the paper's Table 3 (docs/metrics.md).

Each clip is embedded from N frames sampled uniformly over its length (the centres of N equal segments):
the backbone's L2-normalised features of the un-augmented frames, pooled (mean or max over the frames,
`data.ucf101.pooling`) and normalised again. Test clips query the training clips (validation clips are
neither) by cosine similarity, with the on-device k-NN kernel (siampose_jax.knn; ties go to the lower
gallery index), and R@k is the fraction of queries with at least one clip of their action class among
their k nearest training clips, for k in 1, 5, 10, 20 (the paper's columns) and 50. Rows: this run's
embeddings and random-init embeddings (the same network untrained).
"""
from __future__ import annotations

import os

import numpy as np
from absl import logging

from input_pipeline.formats import paths
from input_pipeline.loader import datasets
from input_pipeline.store import crops
from input_pipeline.store import frame_store
from siampose_jax import embedding, reports, sharding
from siampose_jax import step as step_lib
from siampose_jax.evaluation import knn, methods, metrics, tables
from siampose_jax.normalize import l2_normalize

RECALL_KS = (1, 5, 10, 20, 50)
POOLINGS = ('mean', 'max')


def sample_positions(length: int, n: int) -> np.ndarray:
  """N frame positions spread uniformly over a clip of `length` frames (repeats when it is shorter)."""
  if length < 1 or n < 1:
    raise ValueError(f'cannot sample {n} frames from a clip of {length}')
  return ((np.arange(n) + 0.5) * length / n).astype(np.int64)


def clip_frames(store: frame_store.FrameStore, split: str, num_frames: int, image_size: int) -> dict:
  """The N sampled frames of every clip of a split: 'image' (a lazy `CropSource` of [C * N] whole
  frames, clip-major), 'label' [C], 'video_ids' [C]."""
  videos = store.videos(split)
  if not videos:
    raise ValueError(f'{store.path}: split {split!r} has no clips')
  records = np.stack([np.asarray(v['records'])[sample_positions(len(v['records']), num_frames)]
                      for v in videos]).reshape(-1)
  windows = []
  for r in records:
    rec = frame_store.decode(store.raw(split, r), decode_image=False)
    windows.append(crops.frame_window(rec.get('point_2d'), (rec['image_height'], rec['image_width'])))
  return {'image': frame_store.CropSource(store, split, records, np.asarray(windows), image_size),
          'label': np.asarray([v['category'] for v in videos], np.int32),
          'video_ids': np.asarray([v['video_id'] for v in videos], dtype=str)}


def pool(frame_embeddings: np.ndarray, num_frames: int, pooling: str = 'mean') -> np.ndarray:
  """[C * N, D] frame embeddings (clip-major) -> [C, D] unit clip embeddings."""
  if pooling not in POOLINGS:
    raise ValueError(f'data.ucf101.pooling={pooling!r}: expected one of {POOLINGS}')
  x = frame_embeddings.reshape(-1, num_frames, frame_embeddings.shape[-1])
  return l2_normalize(x.mean(1) if pooling == 'mean' else x.max(1))


def retrieve(query_embeddings, gallery_embeddings, query_labels, gallery_labels, ks=RECALL_KS, *, mesh=None,
             chunk_size: int = 65536) -> tuple[dict[int, float], np.ndarray]:
  """(R@k per k, neighbour indices [Q, K]) of cosine retrieval on device, K = min(max(ks), gallery).

  A k beyond the gallery size retrieves the whole gallery: its R@k is R@K."""
  k = min(max(ks), len(gallery_embeddings))
  _, nn = knn.knn(query_embeddings, gallery_embeddings, k, mesh=mesh, chunk_size=chunk_size)
  recall = metrics.recall_at_k(np.asarray(gallery_labels)[nn], query_labels, sorted({min(j, k) for j in ks}))
  return {j: recall[min(j, k)] for j in ks}, nn


def chance_recall_at_1(query_labels: np.ndarray, gallery_labels: np.ndarray) -> float:
  """R@1 of a random ranking: the mean share of the gallery in each query's class."""
  share = np.bincount(gallery_labels, minlength=max(query_labels.max(), gallery_labels.max()) + 1)
  return float(np.mean(share[query_labels] / len(gallery_labels)))


def evaluate(config, workdir: str) -> dict[str, str]:
  """Table 3 (table3.md/.csv) and per-query neighbours (retrieval_per_query.csv); returns the written files.
  The entry point of the UCF101 evaluation."""
  workdir = str(paths.resolve(workdir))
  paths.resolve(workdir).mkdir(parents=True, exist_ok=True)
  mesh = sharding.make_mesh(config.num_devices or None)
  store = frame_store.open_store(datasets.config_store(config.data))
  if store.index.get('kind') != 'clips':
    raise ValueError(f'{store.path} is not a clip store (data.dataset=ucf101 builds one)')
  u = config.data.ucf101
  gallery = clip_frames(store, 'train', u.clip_frames, config.data.image_size)
  queries = clip_frames(store, 'test', u.clip_frames, config.data.image_size)
  classes = store.index['categories']
  logging.info('retrieval: %d test clips query %d training clips (%d frames each, %s pooling)',
               len(queries['label']), len(gallery['label']), u.clip_frames, u.pooling)

  model = step_lib.make_model(config)
  embed_fn = embedding.make_embed_fn(model, mesh)
  primary = methods.primary_embedding(config, workdir, model, mesh)
  embedded = [primary]
  if primary[0].source != methods.RANDOM_INIT:
    key = methods.RowKey(methods.RANDOM_INIT)
    embedded.append((key, key.name(), methods.random_init_variables(config, model, mesh)))
  rows, written = [], {}
  for key, name, variables in embedded:
    g, q = (pool(embedding.embed_images(embed_fn, variables, x['image'], mesh, config.eval.batch_size,
                                        desc=f'embedding {what} ({name})'), u.clip_frames, u.pooling)
            for what, x in (('gallery', gallery), ('queries', queries)))
    recall, nn = retrieve(q, g, queries['label'], gallery['label'], mesh=mesh, chunk_size=config.eval.knn_chunk)
    rows.append({'row': str(key), 'method': name, **{f'r{k}': 100 * v for k, v in recall.items()}})
    logging.info('%s: %s', name, ', '.join(f'R@{k} {100 * v:.1f}' for k, v in recall.items()))
    if key == primary[0]:
      per_query = [{'video_id': queries['video_ids'][i], 'class': classes[queries['label'][i]],
                    **{f'neighbour{j + 1}': gallery['video_ids'][nn[i, j]] for j in range(min(5, nn.shape[1]))},
                    'hit_at_1': int(gallery['label'][nn[i, 0]] == queries['label'][i])}
                   for i in range(len(nn))]
      written['retrieval_per_query_csv'] = reports.write_csv(
          os.path.join(workdir, 'retrieval_per_query.csv'), per_query, list(per_query[0]))
  source = store.index['config']
  what = 'the synthetic action set' if not config.data.root and source['source'] == 'raw' else source['source']
  notes = (f'UCF101 split {source["split"]} ({what}): {len(queries["label"])} test clips query '
           f'{len(gallery["label"])} training clips of {len(classes)} classes; clip embedding = {u.pooling} of '
           f'{u.clip_frames} uniformly sampled frames\' L2-normalised backbone features; a random ranking '
           f'scores R@1 = '
           f'{100 * chance_recall_at_1(queries["label"], gallery["label"]):.1f}.',)
  written.update(tables.write_table3(workdir, rows, notes=notes))
  return written
