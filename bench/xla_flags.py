"""The `cpu` preset's whole train step under XLA:CPU's library-fusion flags, against the same step without.

  python -m bench.xla_flags [--config=distant --rounds=3 --iters=15]

XLA reads its flags once per process, so each variant is timed in its own child process, and the variants
are interleaved round by round (baseline, ynn, xnn, onednn, baseline, ...), so a machine that slows down
slows them all. Each child compiles the step (the `cpu` preset's network, batch and image size, host
augmentation: the step the README's main command runs), warms it up and prints the median of `iters`
steps. One JSON line per variant: the median over rounds of the children's medians, and ratio = baseline
median / variant median (> 1: the flag makes the step faster). A variant whose child fails (XLA rejects an
unknown flag value by aborting) is reported with its error instead.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

VALUE = 'individual_convolution'
VARIANTS = {
    'baseline': '',
    'ynn': f'--xla_cpu_experimental_ynn_fusion_type={VALUE}',
    'xnn': f'--xla_cpu_experimental_xnn_fusion_type={VALUE}',
    'onednn': f'--xla_cpu_experimental_onednn_fusion_type={VALUE}',
}


def child(config: str, iters: int) -> dict:
  """Median seconds of the preset's jitted train step in this process (with its XLA_FLAGS)."""
  import importlib  # pylint: disable=g-import-not-at-top
  from bench import step as bench_step  # pylint: disable=g-import-not-at-top
  c = importlib.import_module(f'siampose_jax.configs.{config}').get_config('cpu')
  run, compile_s = bench_step.jax_stepper(c, c.batch_size, c.data.image_size, 'auto', False)
  (median,) = bench_step.interleaved([run], warmup=2, rounds=1, iters=iters)
  return dict(step_s=median, compile_s=compile_s, image_size=c.data.image_size, batch=c.batch_size,
              width=c.model.width)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--config', default='distant')
  p.add_argument('--rounds', type=int, default=3)
  p.add_argument('--iters', type=int, default=15)
  p.add_argument('--variants', default=','.join(VARIANTS))
  p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    print(json.dumps(child(args.config, args.iters)), flush=True)
    return
  names = args.variants.split(',')
  unknown = set(names) - set(VARIANTS)
  if unknown:
    raise SystemExit(f'unknown variants {sorted(unknown)}; known: {list(VARIANTS)}')
  times = {n: [] for n in names}
  errors, facts = {}, {}
  for r in range(args.rounds):
    for n in names:
      if n in errors:
        continue
      env = dict(os.environ, XLA_FLAGS=(os.environ.get('XLA_FLAGS', '') + ' ' + VARIANTS[n]).strip())
      out = subprocess.run([sys.executable, '-m', 'bench.xla_flags', '--child', f'--config={args.config}',
                            f'--iters={args.iters}'], env=env, capture_output=True, text=True)
      if out.returncode:
        errors[n] = (out.stderr.strip().splitlines() or [f'exit {out.returncode}'])[-1][:300]
        continue
      row = json.loads(out.stdout.strip().splitlines()[-1])
      times[n].append(row.pop('step_s'))
      facts = {k: v for k, v in row.items() if k != 'compile_s'}
      print(f'round {r + 1}/{args.rounds} {n}: {times[n][-1]:.4f} s/step', file=sys.stderr, flush=True)
  from bench.step import machine_facts  # pylint: disable=g-import-not-at-top
  base = statistics.median(times['baseline']) if times.get('baseline') else None
  for n in names:
    row = dict(variant=n, xla_flags=VARIANTS[n], config=f'{args.config}:cpu', rounds=args.rounds,
               iters=args.iters, **facts)
    if n in errors:
      row['error'] = errors[n]
    else:
      med = statistics.median(times[n])
      row.update(step_s=round(med, 5), step_s_per_round=[round(t, 5) for t in times[n]],
                 ratio=round(base / med, 3) if base else None)
    print(json.dumps(dict(row, **machine_facts())), flush=True)


if __name__ == '__main__':
  main()
