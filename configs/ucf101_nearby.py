"""UCF101 action retrieval (Table 3), SimSiam on nearby frame pairs:
the partner is the next frame (the reference's `pairing: next`)."""
from siampose_jax.configs import base


def get_config(arg=None):
  return base.get_ucf101_config(pair_mode='nearby', arg=arg)
