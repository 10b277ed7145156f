"""The combined model (the paper's open problem): pose-informed and pose-invariant latents in one network.

One backbone, two SimSiam heads: the first trained on nearby frame pairs (pose-informed), the second on
distant pairs (pose-invariant), each reading its own half of the backbone feature (`model.split_feature`).
The evaluation fits boxes (and classifies) with the first half and re-identifies with the second, and says
so in the tables' method name. The alternatives measured with the experiment runner (README, "Combined
model") are variants of this file:
  both heads on the whole feature:  --config.model.split_feature=False
  one head, a mixed pair schedule:  configs/nearby.py with --config.data.pair_mode=mixed
"""
from siampose_jax.configs import base


def get_config(arg=None):
  c = base.get_base_config(pair_mode='nearby_distant', arg=arg)
  c.objective.name = 'dual_simsiam'
  c.model.update(heads=2, split_feature=True)
  return c
