"""The rows of the paper's Table 1 and 2: what each one is (a typed `RowKey`) and how it picks the training
frame whose box is fitted to a query.

Every method maps a gallery mask [G] (which training frames may be used: all, or a subset of videos) to one
gallery index per query and, for embedding methods, the cosine similarity of that 1-NN (the detection score
of Objectron's AP curve). Baselines bracket the embeddings:
  * random fit / random in-category fit: a uniformly random (same-category) training frame;
  * nearest true viewpoint (oracle): the same-category frame whose object-to-camera rotation is closest to
    the query's — the ceiling of any 1-NN transfer, given the category;
  * 1-NN within the true category: an embedding's nearest neighbour among frames of the query's category
    (uses the label), which isolates how much pose an embedding carries from category recognition.
Rows are identified by their key everywhere (tables' `row` column, the experiment runner); display names
are made from the key for printing only.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np
from absl import logging

from input_pipeline.formats.frame_record import CATEGORIES
from siampose_jax import checkpointing, convert
from siampose_jax import step as step_lib
from siampose_jax.evaluation import knn

# neighbours(mask [G] bool) -> (gallery index per query [Q], score per query [Q] or None)
Neighbours = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]

MODEL = 'model'                      # the run's own trained embedding
RANDOM_INIT = 'random_init'          # the same network, untrained
IMAGENET = 'imagenet'                # a torchvision ResNet-50's ImageNet weights
RANDOM_FIT = 'random_fit'
RANDOM_IN_CATEGORY_FIT = 'random_in_category_fit'
ORACLE = 'oracle'
EMBEDDING_SOURCES = (MODEL, RANDOM_INIT, IMAGENET)
MODEL_FREE_SOURCES = (RANDOM_FIT, RANDOM_IN_CATEGORY_FIT, ORACLE)  # the same for every run on the same data
DISPLAY_NAMES = {RANDOM_INIT: 'Random embeddings', IMAGENET: 'ImageNet embeddings', RANDOM_FIT: 'Random fit',
                 RANDOM_IN_CATEGORY_FIT: 'Random in-category fit', ORACLE: 'Nearest true viewpoint (oracle)'}
WITHIN_CATEGORY = ' (1-NN within the true category; uses the label)'


@dataclasses.dataclass(frozen=True)
class RowKey:
  """What a table row measures: its `source` (an embedding or a model-free baseline), searched within the
  query's true category or not, with all training videos in the gallery or a share of them."""
  source: str
  within_category: bool = False
  gallery_fraction: float = 1.0

  def __post_init__(self):
    if self.source not in EMBEDDING_SOURCES + MODEL_FREE_SOURCES:
      raise ValueError(f'row source {self.source!r}: expected one of {EMBEDDING_SOURCES + MODEL_FREE_SOURCES}')
    if self.source in MODEL_FREE_SOURCES and (self.within_category or self.gallery_fraction != 1.0):
      raise ValueError(f'the {self.source} baseline has no within-category or gallery-subset variant')
    if not 0 < self.gallery_fraction <= 1:
      raise ValueError(f'gallery_fraction={self.gallery_fraction} must be in (0, 1]')

  def __str__(self) -> str:
    """The key as the tables' `row` column writes it: 'model', 'model/within_category', 'model@0.1'."""
    text = self.source + ('/within_category' if self.within_category else '')
    return text + (f'@{self.gallery_fraction:g}' if self.gallery_fraction != 1.0 else '')

  @classmethod
  def parse(cls, text: str) -> RowKey:
    source, _, fraction = str(text).partition('@')
    source, _, variant = source.partition('/')
    if variant not in ('', 'within_category'):
      raise ValueError(f'row key {text!r}: unknown variant {variant!r}')
    return cls(source, variant == 'within_category', float(fraction) if fraction else 1.0)

  @property
  def uses_labels(self) -> bool:
    """Picks among the query's own category (the oracle, in-category and within-category rows)."""
    return self.within_category or self.source in (RANDOM_IN_CATEGORY_FIT, ORACLE)

  def name(self, model_name: str = '', videos: tuple[int, int] | None = None) -> str:
    """The display name; `model_name` names the MODEL source, `videos` = (kept, total) a gallery subset."""
    text = model_name if self.source == MODEL else DISPLAY_NAMES[self.source]
    if self.within_category:
      text += WITHIN_CATEGORY
    if self.gallery_fraction != 1.0:
      kept, total = videos
      text += f' ({self.gallery_fraction:.0%} of videos: {kept} of {total})'
    return text


@dataclasses.dataclass
class Method:
  key: RowKey
  name: str
  neighbours: Neighbours
  embeddings: tuple[np.ndarray, np.ndarray] | None = None  # (gallery, queries): 1-NN, Table 2
  reid_embeddings: np.ndarray | None = None  # the queries' embeddings for Re-ID (combined model: its own)


def model_name(config) -> str:
  """The display name of a trained run's embedding, from its objective and pairs."""
  objective = step_lib.make_objective(config).name
  if objective == 'dual_simsiam':
    return ('Our embeddings (combined: nearby head on the pose half for box fitting, distant head on the '
            'identity half for Re-ID)' if config.model.split_feature else
            'Our embeddings (combined: nearby and distant heads on one feature)')
  return {'ntxent': 'NT-Xent', 'tcn': 'TCN'}.get(
      objective, f'Our embeddings ({config.data.pair_mode.replace("_", "-")} pairs)')


def primary_embedding(config, workdir, model, mesh) -> tuple[RowKey, str, dict]:
  """(key, display name, variables) of the embedding `config.eval.checkpoint` names: this run's checkpoint
  ('' = its latest), a checkpoint path, 'random' or 'imagenet:PATH'."""
  spec = config.eval.checkpoint
  if spec.startswith('imagenet:'):
    m = config.model
    if (m.backbone, m.width, m.stem) != ('resnet50', 64, 'imagenet'):
      raise ValueError(f'eval.checkpoint={spec!r} needs model.backbone=resnet50, model.width=64 and '
                       f'model.stem=imagenet (torchvision\'s layout), not {m.backbone}/{m.width}/{m.stem}')
    key = RowKey(IMAGENET)
    return key, key.name(), imagenet_variables(spec.split(':', 1)[1])
  state = step_lib.template_state(config, model, mesh, config.seed)
  if spec == 'random':
    key = RowKey(RANDOM_INIT)
    return key, key.name(), {'params': state.params, 'batch_stats': state.batch_stats}
  state, step = checkpointing.restore_params(spec or workdir, state)
  logging.info('evaluating the checkpoint at step %d of %s', step, spec or workdir)
  return RowKey(MODEL), model_name(config), {'params': state.params, 'batch_stats': state.batch_stats}


def imagenet_variables(path: str) -> dict:
  return convert.encoder_variables(convert.load_imagenet_backbone(os.path.expanduser(path)))


def random_init_variables(config, model, mesh) -> dict:
  """The network untrained, drawn with seed + 1 (so a run's own random row is not its initialisation)."""
  state = step_lib.template_state(config, model, mesh, config.seed + 1)
  return {'params': state.params, 'batch_stats': state.batch_stats}


def embedding_method(key: RowKey, name: str, gallery_emb: np.ndarray, query_emb: np.ndarray, *, mesh=None,
                     chunk_size: int = 65536) -> Method:
  """Cosine 1-NN of each query among the allowed gallery frames, on device."""
  def neighbours(mask):
    idx = np.flatnonzero(mask)
    score, nn = knn.knn(query_emb, gallery_emb[idx], k=1, mesh=mesh, chunk_size=chunk_size)
    return idx[nn[:, 0]], score[:, 0]
  return Method(key, name, neighbours, (gallery_emb, query_emb), reid_embeddings=query_emb)


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
  key = dataclasses.replace(base.key, within_category=True)
  return Method(key, base.name + WITHIN_CATEGORY, neighbours)


# Table 1's random baselines.
RANDOM_BASELINES = (RowKey(RANDOM_FIT), RowKey(RANDOM_IN_CATEGORY_FIT))


def random_method(key: RowKey, gallery_category: np.ndarray, query_category: np.ndarray, seed: int) -> Method:
  """A uniformly random allowed training frame per query (of the query's category for the in-category
  baseline)."""
  if key not in RANDOM_BASELINES:
    raise ValueError(f'{key} is not a random baseline: expected one of {[str(k) for k in RANDOM_BASELINES]}')
  in_category, name = key.uses_labels, key.name()
  def neighbours(mask):
    rng = np.random.default_rng(seed)
    out = np.empty(len(query_category), np.int64)
    for i, c in enumerate(query_category):
      pool = np.flatnonzero(mask & (gallery_category == c)) if in_category else np.flatnonzero(mask)
      if not pool.size:
        raise ValueError(f'{name}: no allowed training frame of category {CATEGORIES[c]!r}')
      out[i] = rng.choice(pool)
    return out, None
  return Method(key, name, neighbours)


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
        raise ValueError(f'{DISPLAY_NAMES[ORACLE]}: no allowed training frame of category {CATEGORIES[c]!r}')
      closeness = rotation_closeness(queries['rotation'][q], gallery['rotation'][g],
                                     CATEGORIES[c] in symmetric_categories)
      out[q] = g[np.argmax(closeness, axis=1)]
    return out, None
  return Method(RowKey(ORACLE), DISPLAY_NAMES[ORACLE], neighbours)


def gallery_subset(video: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, int]:
  """(mask, number of videos kept): int(n * fraction) training videos drawn at random (seeded), not
  stratified by class, as the reference's "10 % / 1 % of labels" rows (at least one video)."""
  videos = np.unique(video)
  n = max(1, int(len(videos) * fraction))
  keep = np.random.default_rng(seed).choice(videos, n, replace=False)
  return np.isin(video, keep), n
