"""Train-step throughput of the jitted SimSiam step, with a PyTorch eager SimSiam step as the reference
measured in the same run on the same device (when torch + torchvision are importable). Prints JSON.

  python -m bench.step --backbone=resnet50 --image_size=224 --batch=64 --dtype=bfloat16
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from configs import distant
from siampose_jax import optim, sharding
from siampose_jax import step as step_lib


def _time(fn, warmup, iters):
  for _ in range(warmup):
    fn()
  t = time.perf_counter()
  for _ in range(iters):
    fn()
  return (time.perf_counter() - t) / iters


def jax_step_time(args):
  c = distant.get_config()
  c.model.update(backbone=args.backbone, width=args.width, stem=args.stem, dtype=args.dtype)
  model = step_lib.make_model(c)
  mesh = sharding.make_mesh()
  tx, _ = optim.make_optimizer(c, args.batch, 1000)
  state = step_lib.init_state(model, tx, jax.random.key(0), args.image_size, mesh)
  step = step_lib.jit_train_step(model, tx, mesh)
  rng = np.random.default_rng(0)
  batch = sharding.shard_batch({k: rng.integers(0, 256, (args.batch, args.image_size, args.image_size, 3),
                                                dtype=np.uint8) for k in ('view1', 'view2')}, mesh)
  box = {'state': state}
  t0 = time.perf_counter()
  box['state'], m = step(box['state'], batch)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0

  def run():
    box['state'], m = step(box['state'], batch)
    jax.block_until_ready(m['loss'])
  return _time(run, args.warmup, args.iters), compile_s


def torch_step_time(args):
  """PyTorch SimSiam step (torchvision ResNet, same heads, SGD) on the same device type; None if absent."""
  try:
    import torch
    import torchvision
  except ImportError:
    return None
  dev = 'cuda' if jax.devices()[0].platform == 'gpu' and torch.cuda.is_available() else 'cpu'
  backbone = getattr(torchvision.models, args.backbone)()
  dim = backbone.fc.in_features
  backbone.fc = torch.nn.Identity()
  bn = torch.nn.BatchNorm1d
  proj = torch.nn.Sequential(torch.nn.Linear(dim, 2048, bias=False), bn(2048), torch.nn.ReLU(),
                             torch.nn.Linear(2048, 2048, bias=False), bn(2048), torch.nn.ReLU(),
                             torch.nn.Linear(2048, 2048, bias=False), bn(2048, affine=False))
  pred = torch.nn.Sequential(torch.nn.Linear(2048, 512, bias=False), bn(512), torch.nn.ReLU(),
                             torch.nn.Linear(512, 2048))
  net = torch.nn.ModuleDict(dict(b=backbone, proj=proj, pred=pred)).to(dev).to(memory_format=torch.channels_last)
  opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
  x1 = torch.randn(args.batch, 3, args.image_size, args.image_size, device=dev).to(memory_format=torch.channels_last)
  x2 = torch.randn_like(x1)
  cos = torch.nn.CosineSimilarity(dim=1)
  amp = args.dtype == 'bfloat16'

  def run():
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
      z1, z2 = net['proj'](net['b'](x1)), net['proj'](net['b'](x2))
      p1, p2 = net['pred'](z1), net['pred'](z2)
      loss = -(cos(p1, z2.detach()).mean() + cos(p2, z1.detach()).mean()) / 2
    opt.zero_grad()
    loss.backward()
    opt.step()
    if dev == 'cuda':
      torch.cuda.synchronize()
  return _time(run, args.warmup, args.iters)


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--backbone', default='resnet18')
  p.add_argument('--width', type=int, default=64)
  p.add_argument('--stem', default='imagenet')
  p.add_argument('--image_size', type=int, default=96)
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--dtype', default='float32', choices=['float32', 'bfloat16'])
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--iters', type=int, default=5)
  p.add_argument('--no_torch', action='store_true')
  args = p.parse_args()
  jax_s, compile_s = jax_step_time(args)
  out = dict(vars(args), device=str(jax.devices()[0].device_kind), num_devices=jax.device_count(),
             jax_step_s=jax_s, jax_pairs_per_s=args.batch / jax_s, jax_compile_s=compile_s)
  torch_s = None if args.no_torch else torch_step_time(args)
  if torch_s is not None:
    out.update(torch_step_s=torch_s, torch_pairs_per_s=args.batch / torch_s, speedup_vs_torch=torch_s / jax_s)
  print(json.dumps(out))


if __name__ == '__main__':
  main()
