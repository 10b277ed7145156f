"""How each row of the paper's Table 1 picks the training frame whose box is fitted to a query.

Every method maps a gallery mask [G] (which training frames may be used: all, or a subset of videos) to one
gallery index per query and, for embedding methods, the cosine similarity of that 1-NN (the detection score
of Objectron's AP curve). Baselines bracket the embeddings:
  * random fit / random in-category fit: a uniformly random (same-category) training frame;
  * nearest true viewpoint (oracle): the same-category frame whose object-to-camera rotation is closest to
    the query's — the ceiling of any 1-NN transfer, given the category;
  * 1-NN within the true category: an embedding's nearest neighbour among frames of the query's category
    (uses the label), which isolates how much pose an embedding carries from category recognition.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from input_pipeline.formats.frame_record import CATEGORIES
from siampose_jax import knn

# neighbours(mask [G] bool) -> (gallery index per query [Q], score per query [Q] or None)
Neighbours = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]

ORACLE = 'Nearest true viewpoint (oracle)'
WITHIN_CATEGORY = ' (1-NN within the true category; uses the label)'


@dataclasses.dataclass
class Method:
  name: str
  neighbours: Neighbours
  embeddings: tuple[np.ndarray, np.ndarray] | None = None  # (gallery, queries): 1-NN, Table 2
  reid_embeddings: np.ndarray | None = None  # the queries' embeddings for Re-ID (combined model: its own)
  uses_labels: bool = False  # picks among the query's own category (oracle, within-category rows)


def embedding_method(name: str, gallery_emb: np.ndarray, query_emb: np.ndarray, *, mesh=None,
                     chunk_size: int = 65536) -> Method:
  """Cosine 1-NN of each query among the allowed gallery frames, on device."""
  def neighbours(mask):
    idx = np.flatnonzero(mask)
    score, nn = knn.knn(query_emb, gallery_emb[idx], k=1, mesh=mesh, chunk_size=chunk_size)
    return idx[nn[:, 0]], score[:, 0]
  return Method(name, neighbours, (gallery_emb, query_emb), reid_embeddings=query_emb)


def within_category_method(base: Method, gallery_category: np.ndarray, query_category: np.ndarray, *,
                           mesh=None, chunk_size: int = 65536) -> Method:
  """`base`'s embeddings, each query searching only the training frames of its own category.

  One search for all categories: a one-hot category block scaled so that any same-category pair outscores
  any other (unit embeddings: cosines differ by at most 2) is appended to both sides, so the 1-NN is the
  best same-category frame and its score, less that offset, its cosine similarity.
  """
  g_emb, q_emb = base.embeddings
  offset = 3.0
  g_aug = np.concatenate([g_emb, np.sqrt(offset) * np.eye(len(CATEGORIES))[gallery_category]], axis=1)
  q_aug = np.concatenate([q_emb, np.sqrt(offset) * np.eye(len(CATEGORIES))[query_category]], axis=1)

  def neighbours(mask):
    idx = np.flatnonzero(mask)
    score, nn = knn.knn(q_aug, g_aug[idx], k=1, mesh=mesh, chunk_size=chunk_size, normalize=False)
    nn = idx[nn[:, 0]]
    missing = gallery_category[nn] != query_category  # the category has no allowed frame at all
    return nn, np.where(missing, np.nan, score[:, 0] - offset)
  return Method(base.name + WITHIN_CATEGORY, neighbours, uses_labels=True)


# Table 1's random baselines: (row name, pick within the query's category).
RANDOM_BASELINES = (('Random fit', False), ('Random in-category fit', True))


def random_method(name: str, gallery_category: np.ndarray, query_category: np.ndarray, seed: int,
                  in_category: bool) -> Method:
  """A uniformly random allowed training frame per query (of the query's category if `in_category`)."""
  def neighbours(mask):
    rng = np.random.default_rng(seed)
    out = np.empty(len(query_category), np.int64)
    for i, c in enumerate(query_category):
      pool = np.flatnonzero(mask & (gallery_category == c)) if in_category else np.flatnonzero(mask)
      if not pool.size:
        raise ValueError(f'{name}: no allowed training frame of category {CATEGORIES[c]!r}')
      out[i] = rng.choice(pool)
    return out, None
  return Method(name, neighbours, uses_labels=in_category)


def rotation_closeness(query_rotation: np.ndarray, gallery_rotation: np.ndarray, symmetric: bool) -> np.ndarray:
  """[Q, G] cosine of the geodesic angle between object-to-camera rotations (larger = closer).

  cos(angle) = (trace(Rq^T Rg) - 1) / 2. For a category symmetric about its up axis (the evaluation's
  symmetric mode), rotations about that axis are free, and the closest such angle is the angle between the
  two up axes (second columns) in camera coordinates.
  """
  if symmetric:
    return query_rotation[:, :, 1] @ gallery_rotation[:, :, 1].T
  return (np.einsum('qij,gij->qg', query_rotation, gallery_rotation) - 1) / 2


def oracle_method(gallery: dict, queries: dict, symmetric_categories=()) -> Method:
  """For each query, the same-category training frame with the closest true object-to-camera rotation."""
  def neighbours(mask):
    out = np.empty(len(queries['category']), np.int64)
    for c in np.unique(queries['category']):
      q = np.flatnonzero(queries['category'] == c)
      g = np.flatnonzero(mask & (gallery['category'] == c))
      if not g.size:
        raise ValueError(f'{ORACLE}: no allowed training frame of category {CATEGORIES[c]!r}')
      closeness = rotation_closeness(queries['rotation'][q], gallery['rotation'][g],
                                     CATEGORIES[c] in symmetric_categories)
      out[q] = g[np.argmax(closeness, axis=1)]
    return out, None
  return Method(ORACLE, neighbours, uses_labels=True)


def gallery_subset(video: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, int]:
  """(mask, number of videos kept): int(n * fraction) training videos drawn at random (seeded), not
  stratified by class, as the reference's "10 % / 1 % of labels" rows (at least one video)."""
  videos = np.unique(video)
  n = max(1, int(len(videos) * fraction))
  keep = np.random.default_rng(seed).choice(videos, n, replace=False)
  return np.isin(video, keep), n
