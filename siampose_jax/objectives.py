"""Self-supervised objectives. SimSiam's negative cosine with stop-gradient is the method; the contrastive
(NT-Xent, two views) and triplet (TCN, three views) baselines of the paper's Table 2 share this file."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from siampose_jax.normalize import l2_normalize


def negative_cosine(p, z):
  """D(p, z) = -cos(p, sg(z)), averaged over the batch. The stop-gradient on z is what prevents collapse."""
  z = jax.lax.stop_gradient(z)
  return -jnp.mean(jnp.sum(l2_normalize(p) * l2_normalize(z), axis=-1))


def simsiam_loss(p1, p2, z1, z2):
  """Symmetrised SimSiam loss: D(p1, z2)/2 + D(p2, z1)/2, in [-1, 1]."""
  return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)


def ntxent_loss(z1, z2, temperature: float):
  """SimCLR's NT-Xent over the 2N samples of the batch: each sample's positive is its partner view, the
  other 2N - 2 are negatives. Inside a jitted step on global (batch-sharded) arrays the [2N, 2N] similarity
  matrix spans the global batch, so every device's samples are negatives for every other's."""
  z = l2_normalize(jnp.concatenate([z1, z2]).astype(jnp.float32))
  n = z1.shape[0]
  logits = z @ z.T / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)  # a sample is not its own negative
  partner = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  log_prob = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.mean(jnp.take_along_axis(log_prob, partner[:, None], axis=-1))


def triplet_loss(anchor, positive, negative, margin: float):
  """TCN's triplet hinge max(0, |a - p| - |a - n| + margin), averaged, on L2-normalised embeddings.

  Euclidean (not squared) distances, as torch's TripletMarginLoss in the reference; normalising first
  makes the margin meaningful (distances lie in [0, 2]) whatever the head's output scale.
  """
  a, p, n = (l2_normalize(x.astype(jnp.float32)) for x in (anchor, positive, negative))
  d_pos = jnp.linalg.norm(a - p + 1e-6, axis=-1)  # the eps keeps the gradient finite when a == p
  d_neg = jnp.linalg.norm(a - n + 1e-6, axis=-1)
  return jnp.mean(jax.nn.relu(d_pos - d_neg + margin))


def embedding_std(z):
  """Mean per-dimension std of L2-normalised outputs: ~1/sqrt(d) when healthy, 0 when collapsed."""
  return jnp.mean(jnp.std(l2_normalize(z), axis=0))
