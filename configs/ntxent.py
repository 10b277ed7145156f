"""NT-Xent baseline (SimCLR's contrastive loss) on nearby frame pairs: the paper's Table 2 row.

The reference (docs/metrics.md): temperature 0.5, 128-d feature, lr 0.1 (at batch 64). The network is
SimSiam's backbone and 3-layer projector (here 128 wide, BN after each layer) without the predictor, as in
the reference; the loss's negatives are the other 2N - 2 crops of the global batch.
"""
from siampose_jax.configs import base


def use_ntxent(c):
  """The NT-Xent baseline's changes to a base config (Objectron's here, UCF101's in ucf101_ntxent.py)."""
  c.objective.name = 'ntxent'
  c.optim.update(base_lr=0.1, constant_predictor_lr=False)  # no predictor
  c.model.proj_dim = 32 if c.preset == 'test' else 128
  return c


def get_config(arg=None):
  return use_ntxent(base.get_base_config(pair_mode='nearby', arg=arg))
