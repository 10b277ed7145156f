"""Intervals for the difference between two methods' means over seeds that hold for the benchmark — other
test objects — and not only for the test videos every run was evaluated on.

Every function takes arrays with any leading batch shape [...] (one sweep, or many simulated sweeps at once:
tests/test_claims.py calibrates exactly these functions), queries on the last axis.

The model. A run of method A with seed s scores on test video v x[s, v] = mu + a[s] + u[v] + e[s, v], the
mean over the video's queries of the values its metric averages: a is the seed's own effect (variance
sa²), u the video's (how hard the object is for this method), e their interaction (variance se²: runs err
on partly different videos). A linear metric of a run (accuracy, Re-ID mAP: the mean over queries; 3D mAP:
the mean over categories of each category's mean) is M[s] = sum_v w[v] x[s, v], weights summing to 1. The
claim's difference D = mean_s M_A[s] - mean_s M_B[s] (n_A and n_B seeds, the same V videos for both) has,
over seeds and over test sets (the benchmark's C categories fixed, its objects drawn),

  Var D = sa_A²/n_A + sa_B²/n_B + sum_v w[v]² (se_A²/n_A + se_B²/n_B + su²),

su² = Var(u_A[v] - u_B[v]) within a category (paired: a video's difficulty shared by both methods cancels).
The seed-to-seed variance of one method does not contain su²: every seed met the same videos.

Estimates (`difference`):
  T = the variance over seeds of M[s] (ddof 1): E T = sa² + sum w² se², a chi² with n - 1 degrees of freedom
      (normal effects) given the test videos;
  R = sum w² x the seeds x videos residual mean square (`interaction`): E R = sum w² se²;
  S = sum w² x the within-category variance over videos of xbar_A[v] - xbar_B[v] (seed means; pooled over
      categories, V - C degrees of freedom): E S = sum w² (su² + se_A²/n_A + se_B²/n_B).
  var = T_A/n_A + T_B/n_B + W, with W = max(S - R_A/n_A - R_B/n_B, 0) the test-set part (the interaction is
  in the T's already; clipping at 0 errs wide).
Interval: D ± t_df sqrt(var), df by Welch–Satterthwaite over the five estimated terms, var² / ((T_A/n_A)²/
(n_A - 1) + (T_B/n_B)²/(n_B - 1) + S²/(V - C) + (R_A/n_A)²/((n_A - 1)(V - 1)) + (R_B/n_B)²/((n_B - 1)(V - 1)))
(counting S and the R's also where W is clipped: wider). Given the test videos the seed part is Welch's t
interval; W adds the test-set sampling, which many videos estimate well. A seed-resampling bootstrap instead
shrinks the seed variance by (n - 1)/n and takes normal quantiles where t with few degrees of freedom
applies: too narrow at 3 seeds.

The median (of the rotation error) is not linear: each query's value y is replaced by its pseudo-value
m + s (1/2 - [y <= m]) (the median's influence function; m the run's median, s = 1/f(m) its sparsity,
Siddiqui's difference quotient of the empirical quantiles at the Hall–Sheather bandwidth), whose mean is m
to first order; R and S use the pseudo-values, T the runs' medians themselves.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

KINDS = ('mean', 'category_mean', 'median')  # how a metric reduces a run's per-query values


@dataclasses.dataclass(frozen=True)
class Queries:
  """The shared test queries: each query's video (queries of a video next to each other) and category."""
  video: np.ndarray     # [Q] int, non-decreasing
  category: np.ndarray  # [Q] any labels

  def __post_init__(self):
    video = np.asarray(self.video)
    if video.ndim != 1 or len(video) != len(self.category) or np.any(np.diff(video) < 0):
      raise ValueError('Queries: video must be a non-decreasing [Q] array (queries grouped by video), as '
                       'long as category')

  @property
  def starts(self) -> np.ndarray:
    return np.flatnonzero(np.r_[True, self.video[1:] != self.video[:-1]])

  @property
  def counts(self) -> np.ndarray:
    """[V] queries per video."""
    return np.diff(np.r_[self.starts, len(self.video)])

  @property
  def strata(self) -> np.ndarray:
    """[V] each video's category index."""
    return np.unique(np.asarray(self.category), return_inverse=True)[1][self.starts]

  def weights(self, kind: str) -> np.ndarray:
    """[V] each video's weight in a linear metric of `kind` ('category_mean': categories weigh equally)."""
    n = self.counts.astype(np.float64)
    if kind == 'category_mean':
      per_category = np.bincount(self.strata, weights=n)
      return n / per_category[self.strata] / len(per_category)
    return n / n.sum()


def per_video(y: np.ndarray, queries: Queries) -> np.ndarray:
  """[..., Q] per-query values -> [..., V] per-video means."""
  return np.add.reduceat(np.asarray(y, np.float64), queries.starts, axis=-1) / queries.counts


def hall_sheather(queries: int, alpha: float = 0.05) -> float:
  """The Hall–Sheather bandwidth (in probability) for the sparsity at the median of `queries` values."""
  z = stats.norm.ppf(1 - alpha / 2)
  return queries ** (-1 / 3) * z ** (2 / 3) * (1.5 * stats.norm.pdf(0.0) ** 2) ** (1 / 3)


def median_pseudo_values(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(median [...], pseudo-values [..., Q]) of per-query values [..., Q]; see the module docstring."""
  h = hall_sheather(y.shape[-1])
  low, median, high = np.quantile(y, [0.5 - h, 0.5, 0.5 + h], axis=-1)
  sparsity = (high - low) / (2 * h)
  return median, median[..., None] + sparsity[..., None] * (0.5 - (y <= median[..., None]))


def metric_parts(y: np.ndarray, queries: Queries, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(metric [...], per-video values [..., V], weights [V]) of runs' per-query values y [..., Q]."""
  if kind == 'median':
    median, pseudo = median_pseudo_values(np.asarray(y, np.float64))
    return median, per_video(pseudo, queries), queries.weights('mean')
  if kind not in KINDS:
    raise ValueError(f'metric kind {kind!r}: expected one of {KINDS}')
  w = queries.weights(kind)
  x = per_video(y, queries)
  return x @ w, x, w


def interaction(x: np.ndarray, w: np.ndarray) -> np.ndarray:
  """R [...]: sum w² x the residual mean square of per-video values x [..., seeds, V] (two-way ANOVA):
  the test videos' part of the variance over seeds of a run's metric."""
  seeds, videos = x.shape[-2:]
  resid = x - x.mean(-2, keepdims=True) - x.mean(-1, keepdims=True) + x.mean((-2, -1), keepdims=True)
  return (resid ** 2).sum((-2, -1)) / ((seeds - 1) * (videos - 1)) * (w ** 2).sum()


def video_variance(d: np.ndarray, w: np.ndarray, strata: np.ndarray) -> tuple[np.ndarray, int]:
  """(S [...], its degrees of freedom): sum w² x the within-category variance of per-video values d [..., V]
  (pooled over categories; a category of one video adds nothing)."""
  onehot = np.eye(strata.max() + 1)[strata]                       # [V, C]
  sizes = onehot.sum(0)
  means = (d @ onehot) / sizes
  df = len(strata) - len(sizes)
  ss = ((d - means[..., strata]) ** 2).sum(-1)
  return (ss / df if df else np.zeros_like(ss)) * (w ** 2).sum(), df


@dataclasses.dataclass
class Difference:
  """D = A's mean over seeds - B's, its variance (seeds and test sets) and degrees of freedom; arrays [...]."""
  a: np.ndarray
  b: np.ndarray
  var: np.ndarray
  df: np.ndarray

  @property
  def value(self) -> np.ndarray:
    return self.a - self.b

  def bounds(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    half = stats.t.ppf(0.5 + level / 2, self.df) * np.sqrt(self.var)
    return self.value - half, self.value + half


def difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], w: np.ndarray,
               strata: np.ndarray) -> Difference:
  """A - B from each method's (metric [..., n], per-video values [..., n, V]) (`metric_parts` of its
  seeds), both on the same videos (weights w, categories strata [V]); at least 2 seeds each."""
  (ma, xa), (mb, xb) = a, b
  na, nb = ma.shape[-1], mb.shape[-1]
  if min(na, nb) < 2:
    raise ValueError(f'an interval over seeds needs at least 2 seeds per method, got {na} and {nb}')
  ta, tb = ma.var(-1, ddof=1) / na, mb.var(-1, ddof=1) / nb
  s, df_video = video_variance(xa.mean(-2) - xb.mean(-2), w, strata)
  ra, rb = interaction(xa, w) / na, interaction(xb, w) / nb
  video = np.maximum(s - ra - rb, 0.0)
  var = ta + tb + video
  videos = xa.shape[-1]
  den = (ta ** 2 / (na - 1) + tb ** 2 / (nb - 1) + ra ** 2 / ((na - 1) * (videos - 1))
         + rb ** 2 / ((nb - 1) * (videos - 1)) + (s ** 2 / df_video if df_video else 0.0))
  df = np.divide(var ** 2, den, out=np.full(np.shape(var), np.inf), where=den > 0)
  return Difference(ma.mean(-1), mb.mean(-1), var, df)


VERDICTS = ('holds', 'does not hold', 'equivalent', 'undecided')


def verdict(low: np.ndarray, high: np.ndarray, delta: float, sign: int = 1) -> np.ndarray:
  """The claim "A - B is on the side of `sign`" from an interval of A - B: holds (the interval entirely on
  that side of 0), does not hold (entirely on the other), equivalent (inside ±delta, the difference too
  small to matter), else undecided. A tie (sign 0) holds when equivalent and does not hold when the
  interval lies beyond ±delta."""
  if sign == 0:
    return np.select([(low > -delta) & (high < delta), (low >= delta) | (high <= -delta)], VERDICTS[:2],
                     VERDICTS[3])
  low, high = (low, high) if sign > 0 else (-high, -low)
  return np.select([low > 0, high < 0, (low > -delta) & (high < delta)], VERDICTS[:3], VERDICTS[3])
