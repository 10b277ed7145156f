"""SimSiam on nearby frame pairs (consecutive kept frames: pose-informed latents)."""
from siampose_jax.configs import base


def get_config(arg=None):
  return base.get_base_config(pair_mode='nearby', arg=arg)
