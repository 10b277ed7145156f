"""TCN baseline (time-contrastive triplets) of the paper's Table 2.

The reference (docs/metrics.md): margin 0.2, positive within +-1 kept frame of the anchor, negative at
least 3 kept frames away in the same video (`input_pipeline.loader.pairs.tcn_triplet`). The triplet loss
acts on the L2-normalised projector output of SimSiam's backbone and projector, without the predictor (the
reference used the projector output, unnormalised). Optimiser as SimSiam's (the reference's lr 0.00375 at
batch 32).
"""
from siampose_jax.configs import base


def get_config(arg=None):
  c = base.get_base_config(pair_mode='tcn', arg=arg)
  c.objective.name = 'tcn'
  c.optim.constant_predictor_lr = False  # no predictor
  return c
