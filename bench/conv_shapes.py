"""Every convolution shape of the benchmarked networks, XLA's convolution against im2col (pad + k*k strided
slices + one matmul, `resnet.im2col_conv`), forward alone and forward + both gradients, one JSON line per
shape: the evidence behind `resnet.use_im2col`. With torch importable, torch's conv2d (NCHW,
oneDNN) on the same shape is timed in the same rounds: where XLA's convolution trails it, choosing between
this project's two forms cannot close the gap. Contenders are interleaved (A, B, A, B, ...) in one process
and compared as ratios of medians, so the ratios hold on a loaded machine; the milliseconds do not.

  python -m bench.conv_shapes [--rounds=5] [--nets=r18_64,r18_96,r18_128,cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from siampose_jax.models import resnet


def resnet_shapes(size, batch, width, stem):
  """(name, batch, in_hw, cin, cout, k, stride) of each distinct conv of a BasicBlock ResNet; repeated
  blocks of a stage have the shape of its second conv, so one of each is enough."""
  shapes = []
  if stem == 'imagenet':
    shapes.append(('stem', batch, size, 3, width, 7, 2))
    hw = size // 4
  else:
    shapes.append(('stem', batch, size, 3, width, 3, 2))
    hw = size // 2
  cin = width
  for i in range(4):
    cout = width * 2**i
    if i == 0:
      shapes.append(('s1_3x3', batch, hw, cin, cout, 3, 1))
    else:
      shapes.append((f's{i + 1}_3x3s2', batch, hw, cin, cout, 3, 2))
      shapes.append((f's{i + 1}_proj1x1s2', batch, hw, cin, cout, 1, 2))
      hw //= 2
      shapes.append((f's{i + 1}_3x3', batch, hw, cout, cout, 3, 1))
    cin = cout
  return shapes


NETS = {
    'r18_64': lambda: resnet_shapes(64, 32, 64, 'imagenet'),
    'r18_96': lambda: resnet_shapes(96, 32, 64, 'imagenet'),
    'r18_128': lambda: resnet_shapes(128, 32, 64, 'imagenet'),
    'cpu': lambda: resnet_shapes(64, 64, 16, 'small'),  # the cpu preset's tiny width-16 network, at 64 px
}


def _fns(impl, k, s):
  conv = resnet._CONV_FNS[impl]  # pylint: disable=protected-access
  dn = ('NHWC', 'HWIO', 'NHWC')
  pad = [(k // 2, k // 2)] * 2
  fwd = jax.jit(lambda x, w: conv(x, w, (s, s), pad, dimension_numbers=lax.conv_dimension_numbers(
      x.shape, w.shape, dn)))
  grad = jax.jit(jax.value_and_grad(lambda x, w, g: jnp.vdot(fwd(x, w), g), argnums=(0, 1)))
  return fwd, grad


def _median_time(fn, args, reps):
  ts = []
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    ts.append(time.perf_counter() - t)
  return statistics.median(ts)


def _torch_fns(x, w, g, k, s):
  """torch conv2d forward and forward + both gradients on the same data (NCHW / OIHW); None without torch."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  tx = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous().requires_grad_()
  tw = torch.tensor(np.asarray(w)).permute(3, 2, 0, 1).contiguous().requires_grad_()
  tg = torch.tensor(np.asarray(g)).permute(0, 3, 1, 2).contiguous()
  conv = lambda: torch.nn.functional.conv2d(tx, tw, stride=s, padding=k // 2)

  def fwd():
    with torch.no_grad():
      return conv()

  return fwd, lambda: torch.autograd.grad(conv(), (tx, tw), tg)


def measure(shape, rounds, reps):
  name, n, hw, cin, cout, k, s = shape
  x = jax.random.normal(jax.random.key(0), (n, hw, hw, cin))
  w = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) * (k * k * cin) ** -0.5
  (xf, xg), (mf, mg) = _fns('xla', k, s), _fns('im2col', k, s)
  y = xf(x, w)
  g = jax.random.normal(jax.random.key(2), y.shape)
  diff = float(jnp.max(jnp.abs(y - mf(x, w))) / jnp.max(jnp.abs(y)))
  fns = dict(xf=(xf, (x, w)), mf=(mf, (x, w)), xg=(xg, (x, w, g)), mg=(mg, (x, w, g)))
  torch_fns = _torch_fns(x, w, g, k, s)
  if torch_fns is not None:
    fns.update(tf=(torch_fns[0], ()), tg=(torch_fns[1], ()))
  for f, a in fns.values():
    jax.block_until_ready(f(*a))
  t = {key: [] for key in fns}
  for _ in range(rounds):  # interleaved: A, B, A, B, ...
    for key, (f, a) in fns.items():
      t[key].append(_median_time(f, a, reps))
  m = {key: statistics.median(v) for key, v in t.items()}
  rule = m['mg'] if resnet.use_im2col(y.shape[1:3], (k, k)) else m['xg']  # what the network runs
  extra = {} if torch_fns is None else dict(
      torch_fwd_ms=1e3 * m['tf'], torch_fwdgrad_ms=1e3 * m['tg'], torch_over_rule_fwdgrad=m['tg'] / rule)
  return dict(shape=name, batch=n, in_hw=hw, cin=cin, cout=cout, k=k, stride=s,
              rule_im2col=resnet.use_im2col(y.shape[1:3], (k, k)),
              xla_fwd_ms=1e3 * m['xf'], im2col_fwd_ms=1e3 * m['mf'], fwd_ratio=m['xf'] / m['mf'],
              xla_fwdgrad_ms=1e3 * m['xg'], im2col_fwdgrad_ms=1e3 * m['mg'], fwdgrad_ratio=m['xg'] / m['mg'],
              max_rel_diff=diff, **extra)


def main():
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument('--nets', default=','.join(NETS))
  p.add_argument('--rounds', type=int, default=5)
  p.add_argument('--reps', type=int, default=3)
  args = p.parse_args()
  for net in args.nets.split(','):
    for shape in NETS[net]():
      row = dict(net=net, **measure(shape, args.rounds, args.reps), load_avg_1m=os.getloadavg()[0],
                 omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'))
      print(json.dumps(row), flush=True)


if __name__ == '__main__':
  main()
