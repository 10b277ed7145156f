"""The reference's online monitor: 1-NN category accuracy of backbone embeddings of held-out videos against
embeddings of training frames, computed periodically during training."""
from __future__ import annotations

import numpy as np

from siampose_jax import embedding, knn


class OnlineKNN:
  """Holds fixed gallery/query crops; `__call__(state)` embeds both with the current weights and scores."""

  def __init__(self, model, mesh, gallery: dict, queries: dict, *, batch_size: int = 256):
    self.mesh = mesh
    self.gallery, self.queries = gallery, queries
    self.batch_size = batch_size
    self.embed_fn = embedding.make_embed_fn(model, mesh)

  def embed(self, state, images):
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    return embedding.embed_images(self.embed_fn, variables, images, self.mesh, self.batch_size)

  def __call__(self, state) -> dict[str, float]:
    g = self.embed(state, self.gallery['image'])
    q = self.embed(state, self.queries['image'])
    _, idx = knn.knn(q, g, k=1, mesh=self.mesh)
    pred = self.gallery['category'][idx[:, 0]]
    return {'knn_category_acc': float(np.mean(pred == self.queries['category']))}


def subsample(arrays: dict, max_items: int, seed: int = 0) -> dict:
  """A fixed, seeded subset (sorted indices) of a dict of aligned arrays, to bound the monitor's cost."""
  n = len(next(iter(arrays.values())))
  if n <= max_items:
    return arrays
  keep = np.sort(np.random.default_rng(seed).choice(n, max_items, replace=False))
  return {k: v[keep] for k, v in arrays.items()}
