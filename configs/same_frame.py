"""SimSiam on same-frame frame pairs (two augmentations of one frame: plain SimSiam, the baseline)."""
from siampose_jax.configs import base


def get_config(arg=None):
  return base.get_base_config(pair_mode='same_frame', arg=arg)
