"""Train-step time of the jitted SimSiam step against a PyTorch eager SimSiam step (bench/torch_simsiam.py:
the same network, loss, optimiser, batch and image size) measured in the same run on the same device.
One JSON line per row; ratio = torch time / jax time (>= 1: JAX is faster).

  python -m bench.step                  # the CPU rows: ResNet-18 at 64, 96, 128 px (batch 32) + the cpu preset
  python -m bench.step --backbone=resnet50 --image_size=224 --batch=64 --dtype=bfloat16   # one row
  python -m bench.step --only=resnet18_64px --reference=jax:xla   # reference: JAX with XLA convs only
  python -m bench.step --only=cpu_preset --reference=jax:auto --device_augment   # the cost of the device
      # augmentation (colour jitter, grayscale, flip traced into the step): JAX with it against JAX without

Without --device_augment both sides time the network step alone (the torch reference never augments);
with it the JAX side adds the augmentation that `data.augment_on_device=True` (the paper preset) traces
into the real train step, so a ratio against torch then favours torch.

The two steps are interleaved (a few JAX steps, a few torch steps, repeated) and each side's median step is
reported, so a machine busy with other work slows both alike.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import jax
import numpy as np

from siampose_jax.configs import distant
from siampose_jax import device_augment, optim, sharding
from siampose_jax import step as step_lib

# (row name, config preset, overrides of config.model, image size, batch); None = the preset's own value.
CPU_ROWS = (
    ('resnet18_64px', None, dict(backbone='resnet18', width=64, stem='imagenet', dtype='float32'), 64, 32),
    ('resnet18_96px', None, dict(backbone='resnet18', width=64, stem='imagenet', dtype='float32'), 96, 32),
    ('resnet18_128px', None, dict(backbone='resnet18', width=64, stem='imagenet', dtype='float32'), 128, 32),
    # The cpu preset's network (tiny ResNet, width 16) at 64 px, the size its published row was measured at.
    ('cpu_preset', 'cpu', dict(width=16), 64, None),
)
TARGETS = {'resnet18_96px': 1.0}  # issue: >= 1.0x at ResNet-18 96 px, no CPU row below 0.7x
MIN_RATIO = 0.7


def _config(preset, model_overrides, dtype):
  c = distant.get_config(preset)
  c.model.update(**model_overrides)
  if dtype:
    c.model.dtype = dtype
  return c


def jax_stepper(c, batch, size, conv_impl='auto', augment=False):
  """(one-step callable, compile seconds) for the jitted step of config `c`; augment: with the device
  augmentation of c.data.aug traced in, as the train step has it when data.augment_on_device is set."""
  model = step_lib.make_model(c).clone(conv_impl=conv_impl)
  mesh = sharding.make_mesh()
  tx, _ = optim.make_optimizer(c, batch, 1000)
  state = step_lib.init_state(model, tx, jax.random.key(0), size, mesh)
  aug = device_augment.DeviceAugment.from_aug(c.data.aug.to_dict(), c.seed) if augment else None
  step = step_lib.jit_train_step(model, tx, mesh, augment=aug)
  rng = np.random.default_rng(0)
  data = sharding.shard_batch({k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
                               for k in ('view1', 'view2')}, mesh)
  box = {'state': state}

  def run():
    box['state'], m = step(box['state'], data)
    jax.block_until_ready(m['loss'])

  t = time.perf_counter()
  run()
  return run, time.perf_counter() - t


def torch_stepper(c, batch, size, channels_last=None):
  """One-step callable of bench/torch_simsiam.py for config `c`; None without torch."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
    from bench import torch_simsiam  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  gpu = jax.devices()[0].platform == 'gpu' and torch.cuda.is_available()
  dev = 'cuda' if gpu else 'cpu'
  channels_last = gpu if channels_last is None else channels_last
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  m = c.model
  net = torch_simsiam.SimSiam(m.backbone, m.width, m.stem, m.proj_dim, m.pred_hidden).to(dev)
  net = net.to(memory_format=fmt).train()
  lr = optim.learning_rate(c, batch)
  step = torch_simsiam.make_step(net, lr=lr, momentum=c.optim.momentum, weight_decay=c.optim.weight_decay,
                                 predictor_lr=lr, device=dev,
                                 amp_dtype=torch.bfloat16 if m.dtype == 'bfloat16' else None)
  gen = torch.Generator().manual_seed(0)
  x1, x2 = (torch.randn(batch, 3, size, size, generator=gen).to(dev).contiguous(memory_format=fmt)
            for _ in range(2))

  def run():
    step(x1, x2).item()
    if gpu:
      torch.cuda.synchronize()

  return run


def interleaved(fns, warmup, rounds, iters):
  """Median seconds per call of each fn, measured in alternating blocks of `iters` calls."""
  for fn in fns:
    for _ in range(warmup):
      fn()
  times = [[] for _ in fns]
  for _ in range(rounds):
    for fn, ts in zip(fns, times):
      for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
  return [statistics.median(ts) for ts in times]


def machine_facts():
  facts = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
               cpu_count=os.cpu_count(), cpus_usable=len(os.sched_getaffinity(0)),
               processor=platform.processor() or platform.machine(), python=platform.python_version(),
               jax=jax.__version__, device=str(jax.devices()[0].device_kind), num_devices=jax.device_count(),
               load_avg_1m=os.getloadavg()[0],
               # torch's OpenMP spin-waits: on a busy machine its default (active) policy can slow torch
               # ~10x (bench/README.md), so a row measured under load records which policy it ran with.
               omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'))
  try:
    import torch  # pylint: disable=g-import-not-at-top
    facts.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
  except ImportError:
    facts.update(torch=None)
  return facts


def run_row(name, c, batch, size, args):
  augment = args.device_augment
  jax_run, compile_s = jax_stepper(c, batch, size, args.conv_impl, augment)
  out = dict(row=name, backbone=c.model.backbone, width=c.model.width, stem=c.model.stem,
             proj_dim=c.model.proj_dim, pred_hidden=c.model.pred_hidden, image_size=size, batch=batch,
             dtype=c.model.dtype, conv_impl=args.conv_impl, device_augment=augment, jax_compile_s=compile_s)
  if args.reference == 'none':
    (jax_s,) = interleaved([jax_run], args.warmup, args.rounds, args.iters)
    ref = None
  elif args.reference.startswith('jax:'):
    ref_run, _ = jax_stepper(c, batch, size, args.reference[4:])  # never augments: the cost shows
    jax_s, ref_s = interleaved([jax_run, ref_run], args.warmup, args.rounds, args.iters)
    ref = ('ref', ref_s)
  else:
    torch_run = torch_stepper(c, batch, size, args.torch_channels_last)
    if torch_run is None:
      (jax_s,) = interleaved([jax_run], args.warmup, args.rounds, args.iters)
      ref = None
    else:
      jax_s, torch_s = interleaved([jax_run, torch_run], args.warmup, args.rounds, args.iters)
      ref = ('torch', torch_s)
  out.update(jax_step_s=jax_s, jax_pairs_per_s=batch / jax_s)
  if ref is not None:
    key, ref_s = ref
    target = (TARGETS.get(name, MIN_RATIO)
              if args.rows == 'cpu' and key == 'torch' and not augment else None)
    ratio = ref_s / jax_s
    out.update({f'{key}_step_s': ref_s, f'{key}_pairs_per_s': batch / ref_s, f'speedup_vs_{key}': ratio})
    if key == 'ref':
      out['reference'] = args.reference
    if target is not None:
      out.update(target=target, target_met=bool(ratio >= target))
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--rows', choices=['cpu', 'one'], default=None,
                 help="cpu: the issue's CPU rows; one: the row of the model flags (default when any is given)")
  p.add_argument('--only', default='', help='comma-separated row names of --rows=cpu to run (default: all)')
  p.add_argument('--backbone', default=None)
  p.add_argument('--width', type=int, default=None)
  p.add_argument('--stem', default=None)
  p.add_argument('--image_size', type=int, default=None)
  p.add_argument('--batch', type=int, default=None)
  p.add_argument('--dtype', default=None, choices=['float32', 'bfloat16'])
  p.add_argument('--conv_impl', default='auto', choices=['auto', 'xla', 'im2col'])
  p.add_argument('--reference', default='torch', help="torch | none | jax:<conv_impl> (e.g. jax:xla)")
  p.add_argument('--no_torch', action='store_true', help='same as --reference=none')
  p.add_argument('--device_augment', action='store_true',
                 help="the JAX side's step includes the device augmentation (the reference's does not)")
  p.add_argument('--torch_channels_last', type=int, default=None, help='default: on GPU only')
  p.add_argument('--warmup', type=int, default=None, help='steps per side before timing (CPU 1, GPU 3)')
  p.add_argument('--rounds', type=int, default=None, help='alternations of the two sides (CPU 3, GPU 5)')
  p.add_argument('--iters', type=int, default=None, help='steps per side per round (CPU 2, GPU 10)')
  args = p.parse_args()
  cpu = jax.devices()[0].platform == 'cpu'
  for key, on_cpu, on_gpu in (('warmup', 1, 3), ('rounds', 3, 5), ('iters', 2, 10)):
    if getattr(args, key) is None:
      setattr(args, key, on_cpu if cpu else on_gpu)
  if args.no_torch:
    args.reference = 'none'
  flags = dict(backbone=args.backbone, width=args.width, stem=args.stem)
  given = {k: v for k, v in flags.items() if v is not None}
  if args.rows is None:
    args.rows = 'one' if given or args.image_size or args.batch or args.dtype else 'cpu'
  if args.rows == 'cpu':
    rows = [(name, _config(preset, dict(over, **given), args.dtype), batch, size)
            for name, preset, over, size, batch in CPU_ROWS]
    rows = [(n, c, b or c.batch_size, s or c.data.image_size) for n, c, b, s in rows
            if not args.only or n in args.only.split(',')]
  else:
    over = dict(dict(backbone='resnet18', width=64, stem='imagenet'), **given)
    rows = [('one', _config(None, over, args.dtype or 'float32'), args.batch or 32, args.image_size or 96)]
  for name, c, batch, size in rows:
    row = run_row(name, c, batch, size, args)
    print(json.dumps(dict(row, **machine_facts())), flush=True)  # load average at the row's end


if __name__ == '__main__':
  main()
