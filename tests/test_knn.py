"""The k-NN kernel against a brute-force numpy ranking (float64, full sort, ties to the lower index)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siampose_jax.evaluation import knn as knn_lib


def brute_force(queries, gallery, k, exclude=None):
  """Exact cosine top-k by a full lexicographic sort on (-score, index); `exclude` is a [Q, G] mask."""
  q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
  scores = q.astype(np.float64) @ g.astype(np.float64).T
  if exclude is not None:
    scores = np.where(exclude, -np.inf, scores)
  idx = np.arange(gallery.shape[0])
  order = np.stack([np.lexsort((idx, -row)) for row in scores])[:, :k]
  return np.take_along_axis(scores, order, 1), order


def random_data(num_q, num_g, dim, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(num_q, dim)).astype(np.float32), rng.normal(size=(num_g, dim)).astype(np.float32)


def test_eight_fake_devices():
  assert len(jax.devices()) == 8  # tests/conftest.py sets the XLA flag before jax starts


@pytest.mark.parametrize('resident', [False, True])
@pytest.mark.parametrize('devices', [1, 8])
def test_float32_matches_brute_force(resident, devices):
  # 1003 rows over 8 devices with chunks of 23: neither the shards nor the chunks divide the gallery,
  # and 37 queries in blocks of 10 leave a partial last block.
  queries, gallery = random_data(37, 1003, 16)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:devices]), ('data',))
  g = jnp.asarray(gallery) if resident else gallery
  scores, idx = knn_lib.knn(queries, g, 7, mesh=mesh, chunk_size=23, query_block=10)
  want_scores, want_idx = brute_force(queries, gallery, 7)
  assert scores.dtype == np.float32 and idx.dtype == np.int32 and idx.shape == (37, 7)
  np.testing.assert_array_equal(idx, want_idx)
  np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_custom_axis_name_and_unnormalised_inputs():
  queries, gallery = random_data(5, 50, 8, seed=1)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('shards',))
  qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
  _, want = brute_force(queries, gallery, 3)
  _, got = knn_lib.knn(qn, gn, 3, mesh=mesh, axis_name='shards', normalize=False, chunk_size=4)
  np.testing.assert_array_equal(got, want)
  # Without normalisation the raw dot product ranks, which differs from the cosine ranking here.
  raw = np.argsort(-(queries @ gallery.T), axis=1, kind='stable')[:, :3]
  _, got_raw = knn_lib.knn(queries, gallery, 3, normalize=False, chunk_size=4)
  np.testing.assert_array_equal(got_raw, raw)
  assert not np.array_equal(raw, want)


@pytest.mark.parametrize('resident', [False, True])
def test_bfloat16_close_to_float32(resident):
  # Each query gets planted neighbours at cosine 0.95, 0.85, ..., 0.55 among random rows (cosine mostly
  # below 0.45 in 64 dims), so its top 5 are separated by 0.1, far more than bf16 rounding (~1e-2).
  queries, gallery = random_data(20, 700, 64, seed=2)
  rng = np.random.default_rng(2)
  qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  for qi, q in enumerate(qn):
    for j, c in enumerate([0.95, 0.85, 0.75, 0.65, 0.55]):
      u = rng.normal(size=64)
      u -= (u @ q) * q
      gallery[rng.integers(700)] = c * q + np.sqrt(1 - c * c) * u / np.linalg.norm(u)
  g = jnp.asarray(gallery) if resident else gallery
  scores, idx = knn_lib.knn(queries, g, 5, chunk_size=16, query_block=8, compute_dtype='bfloat16')
  want_scores, want_idx = brute_force(queries, gallery, 6)
  np.testing.assert_allclose(scores, want_scores[:, :5], atol=2e-2)
  separated = (np.diff(want_scores, axis=1) < -0.04).all(axis=1)
  assert separated.sum() >= 15  # a later plant may overwrite an earlier one; most queries stay clean
  np.testing.assert_array_equal(idx[separated], want_idx[separated, :5])


@pytest.mark.parametrize('compute_dtype', ['float32', 'bfloat16'])
@pytest.mark.parametrize('resident', [False, True])
def test_exact_ties_go_to_lower_index(resident, compute_dtype):
  # Unit vectors with entries in {0, +-0.5}: every dot product is exact in any summation order and in
  # bf16, so duplicates score bitwise equal. Duplicates sit in different chunks and different devices.
  rng = np.random.default_rng(3)
  dim, num_g = 16, 203
  def unit(n):
    v = np.zeros((n, dim), np.float32)
    for row in v:
      row[rng.choice(dim, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return v
  gallery = unit(num_g)
  best = unit(1)[0]
  gallery[[150, 3, 77, 200, 31]] = best
  queries = np.stack([best, best, unit(1)[0]])
  g = jnp.asarray(gallery) if resident else gallery
  scores, idx = knn_lib.knn(queries, g, 4, chunk_size=7, query_block=2, normalize=False,
                            compute_dtype=compute_dtype)
  np.testing.assert_array_equal(idx[0], [3, 31, 77, 150])  # 200 loses the tie at the k boundary
  np.testing.assert_array_equal(scores[0], [1.0] * 4)
  np.testing.assert_array_equal(idx[1], idx[0])
  # Third query: many exact ties among the {0, +-0.25, ...} scores; brute force sorts them by index.
  _, want = brute_force(queries, gallery, 4)
  np.testing.assert_array_equal(idx, want)


@pytest.mark.parametrize('resident', [False, True])
def test_group_exclusion(resident):
  queries, gallery = random_data(12, 90, 8, seed=4)
  rng = np.random.default_rng(4)
  videos = np.array(['cup/batch-1/0', 'cup/batch-1/1', 'shoe/batch-2/5'])
  qv, gv = videos[rng.integers(0, 3, 12)], videos[rng.integers(0, 3, 90)]
  g = jnp.asarray(gallery) if resident else gallery
  scores, idx = knn_lib.knn(queries, g, 5, chunk_size=6, query_groups=qv, gallery_groups=gv,
                            exclude_same_group=True)
  want_scores, want_idx = brute_force(queries, gallery, 5, exclude=qv[:, None] == gv[None, :])
  np.testing.assert_array_equal(idx, want_idx)
  np.testing.assert_allclose(scores, want_scores, atol=1e-5)
  assert (gv[idx] != qv[:, None]).all()


def test_exclude_self_and_too_few_allowed_rows():
  _, x = random_data(1, 10, 4, seed=5)
  ids = np.arange(10)
  scores, idx = knn_lib.knn(x, x, 9, query_groups=ids, gallery_groups=ids, exclude_same_group=True)
  _, want = brute_force(x, x, 9, exclude=np.eye(10, dtype=bool))
  np.testing.assert_array_equal(idx, want)
  # Only 6 rows are outside the query's group: the last two of 8 slots are empty.
  groups = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
  scores, idx = knn_lib.knn(x[:1], x, 8, query_groups=groups[:1], gallery_groups=groups,
                            exclude_same_group=True)
  assert set(idx[0, :6]) == {4, 5, 6, 7, 8, 9}
  np.testing.assert_array_equal(idx[0, 6:], [-1, -1])
  assert np.isneginf(scores[0, 6:]).all() and np.isfinite(scores[0, :6]).all()


@pytest.mark.parametrize('resident', [False, True])
def test_compiles_once_per_shape(resident):
  # A unique shape (dim 11) so the first call must trace; 617 rows in chunks of 5 give 16 streamed steps.
  key = 'resident' if resident else 'stream'
  for seed in range(3):
    queries, gallery = random_data(9, 617, 11, seed=seed)
    before = dict(knn_lib.TRACE_COUNTS)
    g = jnp.asarray(gallery) if resident else gallery
    _, idx = knn_lib.knn(queries, g, 3, chunk_size=5, query_block=4)
    traced = knn_lib.TRACE_COUNTS[key] - before.get(key, 0)
    assert traced == (1 if seed == 0 else 0)
    np.testing.assert_array_equal(idx, brute_force(queries, gallery, 3)[1])


def test_bad_arguments_raise():
  queries, gallery = random_data(3, 10, 4)
  with pytest.raises(ValueError, match='k=11'):
    knn_lib.knn(queries, gallery, 11)
  with pytest.raises(ValueError, match='must be'):
    knn_lib.knn(queries, gallery[:, :3], 1)
  with pytest.raises(ValueError, match='compute_dtype'):
    knn_lib.knn(queries, gallery, 1, compute_dtype='float16')
  with pytest.raises(ValueError, match='query_groups'):
    knn_lib.knn(queries, gallery, 1, exclude_same_group=True)
  with pytest.raises(ValueError, match='shapes'):
    knn_lib.knn(queries, gallery, 1, exclude_same_group=True, query_groups=[0, 1], gallery_groups=np.zeros(10))
