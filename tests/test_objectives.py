"""The NT-Xent and triplet losses of the Table 2 baselines, against plain numpy loops."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siampose_jax import objectives


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ntxent_numpy(z1, z2, temperature):
  """Row by row: -log(exp(s_ij / T) / sum_{k != i} exp(s_ik / T)), j = i's partner, mean over 2N rows."""
  z = _unit(np.concatenate([z1, z2]).astype(np.float64))
  n2 = len(z)
  losses = []
  for i in range(n2):
    j = (i + n2 // 2) % n2
    others = np.array([z[i] @ z[k] / temperature for k in range(n2) if k != i])
    top = others.max()
    lse = top + np.log(np.sum(np.exp(others - top)))
    losses.append(lse - z[i] @ z[j] / temperature)
  return np.mean(losses)


def triplet_numpy(a, p, n, margin):
  a, p, n = _unit(a), _unit(p), _unit(n)
  out = []
  for ai, pi, ni in zip(a, p, n):
    out.append(max(0.0, np.sqrt(np.sum((ai - pi) ** 2)) - np.sqrt(np.sum((ai - ni) ** 2)) + margin))
  return np.mean(out)


@pytest.mark.parametrize('temperature', [0.5, 0.1])
def test_ntxent_matches_numpy(temperature):
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 6, 5)).astype(np.float32)
  got = objectives.ntxent_loss(z1, z2, temperature)
  np.testing.assert_allclose(got, ntxent_numpy(z1, z2, temperature), rtol=1e-5)
  # Scale-free (it normalises) and symmetric in the two views.
  np.testing.assert_allclose(objectives.ntxent_loss(3 * z1, z2, temperature), got, rtol=1e-5)
  np.testing.assert_allclose(objectives.ntxent_loss(z2, z1, temperature), got, rtol=1e-5)


def test_ntxent_rewards_matching_pairs():
  """Partners equal and samples orthogonal: the loss is far below that of partners shuffled away."""
  z = np.eye(8, dtype=np.float32)[:4]
  matched = float(objectives.ntxent_loss(z, z, 0.5))
  shuffled = float(objectives.ntxent_loss(z, z[::-1], 0.5))
  assert matched == pytest.approx(ntxent_numpy(z, z, 0.5), rel=1e-5)
  assert matched < shuffled - 1.0


def test_ntxent_gradient_reaches_both_views():
  rng = np.random.default_rng(1)
  z1, z2 = (jnp.asarray(a) for a in rng.normal(size=(2, 4, 3)).astype(np.float32))
  g1, g2 = jax.grad(objectives.ntxent_loss, argnums=(0, 1))(z1, z2, 0.5)
  assert np.abs(np.asarray(g1)).sum() > 1e-3 and np.abs(np.asarray(g2)).sum() > 1e-3
  # Against a central finite difference on one coordinate of each view.
  for which, g in ((0, g1), (1, g2)):
    e = np.zeros((4, 3), np.float32)
    e[2, 1] = 1e-3
    args = [np.asarray(z1, np.float64), np.asarray(z2, np.float64)]
    plus, minus = list(args), list(args)
    plus[which] = args[which] + e
    minus[which] = args[which] - e
    fd = (ntxent_numpy(*plus, 0.5) - ntxent_numpy(*minus, 0.5)) / 2e-3
    assert float(g[2, 1]) == pytest.approx(fd, rel=1e-2, abs=1e-4)


def test_triplet_matches_numpy():
  rng = np.random.default_rng(2)
  a, p, n = rng.normal(size=(3, 7, 4)).astype(np.float32)
  for margin in (0.2, 1.0):
    np.testing.assert_allclose(objectives.triplet_loss(a, p, n, margin), triplet_numpy(a, p, n, margin),
                               rtol=1e-4, atol=1e-5)
  # Some triplets in the batch are active and some are not, so the hinge matters.
  d = np.linalg.norm(_unit(a) - _unit(p), axis=-1) - np.linalg.norm(_unit(a) - _unit(n), axis=-1)
  assert (d + 0.2 > 0).any() and (d + 0.2 < 0).any()


def test_triplet_zero_for_far_negatives_and_margin_for_equal_ones():
  rng = np.random.default_rng(3)
  a = rng.normal(size=(5, 4)).astype(np.float32)
  assert float(objectives.triplet_loss(a, 2 * a, -a, 0.2)) == pytest.approx(0.0, abs=1e-5)
  assert float(objectives.triplet_loss(a, a, a, 0.2)) == pytest.approx(0.2, abs=1e-5)
  # Gradients stay finite even when anchor and positive coincide.
  g = jax.grad(objectives.triplet_loss, argnums=(0, 1, 2))(a, a, a + 0.1, 0.2)
  assert all(np.isfinite(np.asarray(x)).all() for x in g)
  assert np.abs(np.asarray(g[2])).sum() > 0
