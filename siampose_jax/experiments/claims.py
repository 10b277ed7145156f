"""The paper's claims as tests over seeds: per-query results of every run, bootstrap intervals, verdicts.

A run's `eval_per_query.csv` holds, per test frame, what the three Table 2 metrics average: the fitted box's
IoU (3D mAP is the mean over categories of the fraction above 0.5), whether the 1-NN's category is right
(classification accuracy) and the reference's Re-ID score. A metric difference between two methods is the
difference of their means over seeds; its 95 % interval comes from a two-level bootstrap — test videos
resampled (queries of one video move together, being correlated), then each method's seeds resampled — so
that it covers both the test-set sampling and the training-seed spread. A claim "A > B" holds when the whole
interval is above 0, does not hold when it is below, and is undecided when it crosses 0.
"""
from __future__ import annotations

import dataclasses

import numpy as np

METRICS = {'classif_acc': 'Classif. Acc.', 'overall_3d_ap': '3D mAP', 'reid_map': 'Re-ID mAP'}


@dataclasses.dataclass
class RunQueries:
  """One run's per-query results, aligned on the same test queries as every other run."""
  video: np.ndarray      # [Q] test video index (shared across runs)
  category: np.ndarray   # [Q] category name
  iou: np.ndarray        # [Q]
  correct: np.ndarray    # [Q] bool: the 1-NN's category is the query's
  reid: np.ndarray       # [Q] the reference's per-query Re-ID score


def from_rows(rows: list[dict], video_index: dict[str, int]) -> RunQueries:
  """`eval_per_query.csv` rows (reports.read_csv) -> RunQueries, sorted by (video, frame) so that runs align."""
  rows = sorted(rows, key=lambda r: (r['video_id'], r['frame_id']))
  return RunQueries(video=np.array([video_index[r['video_id']] for r in rows]),
                    category=np.array([r['category'] for r in rows]),
                    iou=np.array([r['iou'] for r in rows], np.float64),
                    correct=np.array([r['neighbour_category'] == r['category'] for r in rows]),
                    reid=np.array([r['reid_map'] for r in rows], np.float64))


def metric(run: RunQueries, name: str, weights: np.ndarray | None = None) -> float:
  """A Table 2 metric of one run over (optionally re-weighted, e.g. bootstrapped) queries."""
  w = np.ones(len(run.iou)) if weights is None else weights
  if name == 'overall_3d_ap':  # the paper's mean over categories of AP@0.5
    cats = [c for c in np.unique(run.category) if w[run.category == c].sum() > 0]
    return float(np.mean([np.average(run.iou[run.category == c] > 0.5, weights=w[run.category == c])
                          for c in cats]))
  if name == 'classif_acc':
    return float(100 * np.average(run.correct, weights=w))
  if name == 'reid_map':
    return float(np.average(run.reid, weights=w))
  raise ValueError(f'unknown metric {name!r}; expected one of {list(METRICS)}')


def bootstrap_means(runs: dict[str, list[RunQueries]], name: str, *, samples: int = 1000,
                    seed: int = 0) -> dict[str, np.ndarray]:
  """Per method, `samples` bootstrap replicates of its seed-mean of metric `name` (same video resamples
  for every method, so differences are paired)."""
  rng = np.random.default_rng(seed)
  video = next(iter(runs.values()))[0].video
  num_videos = video.max() + 1
  out = {m: np.empty(samples) for m in runs}
  for b in range(samples):
    counts = np.bincount(rng.integers(num_videos, size=num_videos), minlength=num_videos)
    weights = counts[video].astype(np.float64)
    for m, seeds in runs.items():
      pick = rng.integers(len(seeds), size=len(seeds))
      out[m][b] = np.mean([metric(seeds[i], name, weights) for i in pick])
  return out


def _per_video(run: RunQueries, name: str) -> tuple[np.ndarray, np.ndarray]:
  """(x, w): metric `name` of `run` as sum(w * x), x[v] a per-video mean, w[v] the video's weight."""
  videos, first, idx = np.unique(run.video, return_index=True, return_inverse=True)
  n = np.bincount(idx, minlength=len(videos))
  if name == 'overall_3d_ap':  # a mean over categories: a video weighs by its share of its category
    value = run.iou > 0.5
    cats, per_cat = np.unique(run.category, return_counts=True)
    weight = n / per_cat[np.searchsorted(cats, run.category[first])] / len(cats)
  else:
    value = 100 * run.correct if name == 'classif_acc' else run.reid
    weight = n / n.sum()
  return np.bincount(idx, weights=value.astype(np.float64)) / n, weight


def seed_spread(runs: list[RunQueries], name: str) -> tuple[float, float, float]:
  """A method's std over seeds of metric `name`, and its two parts (two-way ANOVA, seeds x test videos):
  the test videos' — each model errs on partly different videos (the model x video interaction), a part
  that shrinks as 1/sqrt(number of test videos) — and the models' own, which no test set changes.
  Returns (std over seeds, test-video part, model part) as stds; the parts are method-of-moments
  estimates (the model part is clipped at 0 when the test part's estimate exceeds the total)."""
  x, w = zip(*(_per_video(r, name) for r in runs))
  x, w = np.stack(x), w[0]                                   # [seeds, videos], [videos]
  seeds, videos = x.shape
  total = float(np.var(x @ w, ddof=1))
  resid = x - x.mean(0) - x.mean(1, keepdims=True) + x.mean()
  return _as_stds(total, float((resid ** 2).sum() / ((seeds - 1) * (videos - 1)) * (w ** 2).sum()))


def pooled_spread(spreads: list[tuple[float, float, float]]) -> tuple[float, float, float]:
  """Several methods' `seed_spread`s pooled into one (variances averaged: the root mean square of the
  stds), a single number for a benchmark's seed spread."""
  return _as_stds(np.mean([s[0] ** 2 for s in spreads]), np.mean([s[1] ** 2 for s in spreads]))


def _as_stds(total: float, test: float) -> tuple[float, float, float]:
  """(total, test-video, model) stds from the total and test-video variances; the model part clipped at 0."""
  return float(np.sqrt(total)), float(np.sqrt(test)), float(np.sqrt(max(total - test, 0.0)))


@dataclasses.dataclass
class Verdict:
  claim: str
  a: float            # mean over seeds of the left-hand side
  b: float            # ... and of the right-hand side
  low: float          # 95 % bootstrap interval of a - b
  high: float

  @property
  def difference(self) -> float:
    return self.a - self.b

  @property
  def verdict(self) -> str:
    if self.low > 0:
      return 'holds'
    if self.high < 0:
      return 'does not hold'
    return 'undecided'


def greater(claim: str, a: np.ndarray, b: np.ndarray, a_mean: float, b_mean: float) -> Verdict:
  """'A > B' from paired bootstrap replicates of the two seed-means."""
  low, high = np.percentile(a - b, [2.5, 97.5])
  return Verdict(claim, a_mean, b_mean, float(low), float(high))
