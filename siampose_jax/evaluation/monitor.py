"""The reference's online monitor: 1-NN category accuracy of backbone embeddings of held-out videos against
embeddings of training frames, computed periodically during training; with it the effective rank of the
training-frame embeddings (`metrics.effective_rank`), which shows a partial collapse without labels."""
from __future__ import annotations

import numpy as np

from siampose_jax import embedding
from siampose_jax.evaluation import metrics


class OnlineKNN:
  """Holds fixed gallery/query crops; `__call__(state)` embeds both with the current weights and scores.

  The crops are decoded once, here (in parallel threads when given as `frame_store.CropSource`s): pick the
  frames first (`subsample`), so that only those are decoded and held.
  """

  def __init__(self, model, mesh, gallery: dict, queries: dict, *, batch_size: int = 256):
    self.mesh = mesh
    self.gallery = dict(gallery, image=np.asarray(gallery['image']))
    self.queries = dict(queries, image=np.asarray(queries['image']))
    self.batch_size = batch_size
    self.embed_fn = embedding.make_embed_fn(model, mesh)

  def embed(self, state, images):
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    return embedding.embed_images(self.embed_fn, variables, images, self.mesh, self.batch_size)

  def __call__(self, state) -> dict[str, float]:
    g = self.embed(state, self.gallery['image'])
    q = self.embed(state, self.queries['image'])
    accuracy = metrics.nn_category_accuracy(q, self.queries['category'], g, self.gallery['category'],
                                            mesh=self.mesh)
    return {'knn_category_acc': accuracy, 'embedding_rank': metrics.effective_rank(g)}


PER_VIDEO_KEYS = ('video_ids',)  # indexed by video, not by frame: kept whole


def subsample(arrays: dict, max_items: int, seed: int = 0) -> dict:
  """A fixed, seeded subset (sorted indices) of a dict of per-frame arrays (`frame_store.eval_arrays`),
  to bound the monitor's cost; a lazy `CropSource` stays lazy (`take`), so only the subset is decoded."""
  n = len(arrays['category'])
  if n <= max_items:
    return arrays
  keep = np.sort(np.random.default_rng(seed).choice(n, max_items, replace=False))
  def pick(key, value):
    if key in PER_VIDEO_KEYS:
      return value
    return value[keep] if isinstance(value, np.ndarray) else value.take(keep)
  return {k: pick(k, v) for k, v in arrays.items()}
