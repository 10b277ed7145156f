"""UCF101 action retrieval with the NT-Xent baseline on next-frame pairs: not a row of the paper's Table 3
(SimSiam only), an extra that tests whether frame-pair training with negatives beats random init where
SimSiam at the cpu preset does not (README, "UCF101 action retrieval")."""
from siampose_jax.configs import base, ntxent


def get_config(arg=None):
  return ntxent.use_ntxent(base.get_ucf101_config(pair_mode='nearby', arg=arg))
