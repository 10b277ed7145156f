"""UCF101 action retrieval (Table 3), SimSiam on distant frame pairs:
the partner is a uniformly random frame of the same clip."""
from siampose_jax.configs import base


def get_config(arg=None):
  return base.get_ucf101_config(pair_mode='distant', arg=arg)
