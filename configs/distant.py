"""SimSiam on distant frame pairs (a uniformly random frame of the same video: pose-invariant latents)."""
from siampose_jax.configs import base


def get_config(arg=None):
  return base.get_base_config(pair_mode='distant', arg=arg)
