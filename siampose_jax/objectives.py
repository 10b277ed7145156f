"""Self-supervised objectives on two views. SimSiam's negative cosine with stop-gradient is the method;
the contrastive (NT-Xent) and triplet (TCN) baselines of the paper's Table 2 share this file."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _normalize(x, eps=1e-12):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def negative_cosine(p, z):
  """D(p, z) = -cos(p, sg(z)), averaged over the batch. The stop-gradient on z is what prevents collapse."""
  z = jax.lax.stop_gradient(z)
  return -jnp.mean(jnp.sum(_normalize(p) * _normalize(z), axis=-1))


def simsiam_loss(p1, p2, z1, z2):
  """Symmetrised SimSiam loss: D(p1, z2)/2 + D(p2, z1)/2, in [-1, 1]."""
  return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)


def embedding_std(z):
  """Mean per-dimension std of L2-normalised outputs: ~1/sqrt(d) when healthy, 0 when collapsed."""
  return jnp.mean(jnp.std(_normalize(z), axis=0))
