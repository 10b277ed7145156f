"""L2 normalisation: the one definition shared by the objectives, the embeddings and the evaluation."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def l2_normalize(x, axis: int = -1, eps: float = 1e-12):
  """`x / max(||x||, eps)` along `axis`: unit vectors, and all-zero vectors stay zero instead of NaN.

  jax arrays (tracers included) use jnp, so it runs inside jitted steps; anything else uses numpy in its
  own dtype (the evaluation's float32 embeddings, the box geometry's float64 vectors)."""
  xp = jnp if isinstance(x, jax.Array) else np
  return x / xp.maximum(xp.linalg.norm(x, axis=axis, keepdims=True), eps)
