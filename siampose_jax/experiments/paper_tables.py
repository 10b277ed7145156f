"""Every Table 2 method of the paper, trained and evaluated for several seeds; tables of mean ± std and the
paper's claims tested over seeds. With --table=3, the UCF101 action retrieval runs of Table 3 instead.

  python -m siampose_jax.experiments.paper_tables --preset=cpu --seeds=3 --workdir=DIR
      [--methods=nearby,distant,...] [--imagenet_weights=resnet50.safetensors] [--override KEY=VALUE ...]
  python -m siampose_jax.experiments.paper_tables --table=3 --preset=cpu --seeds=3 --workdir=DIR

Each (method, seed) is one `python -m siampose_jax.main` run in DIR/<method>/seed<k> (its log in run.log
there); a run whose DONE file exists is reused, and an interrupted one resumes from its last checkpoint, so a
sweep stopped at any point continues where it was when the same command is run again. Writes
DIR/table1.{md,csv}, DIR/table2.{md,csv} (mean ± std over seeds per cell) and DIR/claims.md (`claims`: every
ordering of the paper's Table 2 and the pose ordering, with intervals over seeds and test videos).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import tqdm

from input_pipeline.formats.frame_record import CATEGORIES
from siampose_jax import configs, reports
from siampose_jax.evaluation import tables
from siampose_jax.evaluation.methods import MODEL_FREE_SOURCES, RowKey
from siampose_jax.experiments import claims as claims_lib

# name -> (config name in configs/, --config overrides); the rows of Table 2.
METHODS = {
    'nearby': ('nearby', {}),
    'distant': ('distant', {}),
    'same_frame': ('same_frame', {}),
    'ntxent': ('ntxent', {}),
    'tcn': ('tcn', {}),
    'combined': ('combined', {}),
    'random': ('nearby', {'mode': 'eval', 'eval.checkpoint': 'random'}),
    # Alternatives to configs/combined.py (two heads, each on its own half of the feature), run on request:
    'combined_shared': ('combined', {'model.split_feature': False}),  # both heads, whole feature
    'combined_mixed': ('nearby', {'data.pair_mode': 'mixed'}),        # one head, mixed pairs
}
TABLE2_ROWS = ('nearby', 'distant', 'same_frame', 'ntxent', 'tcn', 'combined', 'random')  # the default
# Table 3 (UCF101 action retrieval): its rows, the same way.
TABLE3_METHODS = {
    'ucf101_nearby': ('ucf101_nearby', {}),
    'ucf101_distant': ('ucf101_distant', {}),
    'ucf101_random': ('ucf101_nearby', {'mode': 'eval', 'eval.checkpoint': 'random'}),
    'ucf101_ntxent': ('ucf101_ntxent', {}),  # an extra row: the NT-Xent baseline, next-frame pairs
}
IMAGENET = ('nearby', {'mode': 'eval', 'model.backbone': 'resnet50', 'model.width': 64,
                                  'model.stem': 'imagenet'})
DONE = 'DONE'


def run_dir(workdir: str, method: str, seed: int) -> str:
  return os.path.join(workdir, method, f'seed{seed}')


def command(method: str, preset: str, seed: int, workdir: str, imagenet_weights: str = '',
            extra: dict | None = None) -> list[str]:
  config, overrides = IMAGENET if method == 'imagenet' else {**METHODS, **TABLE3_METHODS}[method]
  overrides = dict(overrides, seed=seed, **(extra or {}))
  if method == 'imagenet':
    overrides['eval.checkpoint'] = f'imagenet:{imagenet_weights}'
  return ([sys.executable, '-m', 'siampose_jax.main', f'--config={configs.path(config)}:{preset}',
           f'--workdir={run_dir(workdir, method, seed)}']
          + [f'--config.{k}={v}' for k, v in overrides.items()])


def run_all(workdir: str, methods: list[str], seeds: list[int], preset: str, imagenet_weights: str = '',
            extra: dict | None = None) -> None:
  """Runs every (method, seed) not done yet, one after the other, with an overall progress bar."""
  todo = [(m, s) for m in methods for s in ([0] if m == 'imagenet' else seeds)]
  done = [t for t in todo if os.path.exists(os.path.join(run_dir(workdir, *t), DONE))]
  bar = tqdm.tqdm(total=len(todo), initial=len(done), unit='run', desc='paper tables', dynamic_ncols=True)
  for method, seed in todo:
    path = run_dir(workdir, method, seed)
    if (method, seed) in done:
      continue
    os.makedirs(path, exist_ok=True)
    cmd = command(method, preset, seed, workdir, imagenet_weights, extra)
    bar.set_postfix_str(f'{method} seed {seed}')
    start = time.time()
    with open(os.path.join(path, 'run.log'), 'a') as log:
      proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
      raise RuntimeError(f'{method} seed {seed} failed (exit {proc.returncode}); see {path}/run.log; '
                         'rerun the same command to resume')
    with open(os.path.join(path, DONE), 'w') as f:
      json.dump({'seconds': round(time.time() - start, 1), 'command': cmd}, f, indent=1)
    bar.update()
  bar.close()


def _mean_std(values: list[float]) -> str:
  v = np.asarray(values, np.float64)
  return f'{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2f}'


def _seed_rows(workdir, method, seeds, table):
  return [reports.read_csv(os.path.join(run_dir(workdir, method, s), table)) for s in seeds]


def aggregate(workdir: str, methods: list[str], seeds: list[int]) -> dict[str, str]:
  """Tables 1 and 2 with mean ± std over seeds of each run's own rows, baselines from the random runs."""
  seeds_of = {m: [0] if m == 'imagenet' else seeds for m in methods}
  t1, t2, raw = [], [], []
  for m in methods:
    rows1, rows2 = _seed_rows(workdir, m, seeds_of[m], 'table1.csv'), _seed_rows(workdir, m, seeds_of[m],
                                                                                  'table2.csv')
    own = RowKey.parse(rows2[0][0]['row']).source  # the run's own embedding (Table 2's first row)
    keys = [r['row'] for r in rows1[0] if RowKey.parse(r['row']).source == own]
    if m == 'random':  # the model-free baselines once, from the random-init runs
      keys += [r['row'] for r in rows1[0] if RowKey.parse(r['row']).source in MODEL_FREE_SOURCES]
    for key in keys:
      per_seed = [next(r for r in rows if r['row'] == key) for rows in rows1]
      t1.append({k: (_mean_std([r[k] for r in per_seed]) if isinstance(v, float) else v)
                 for k, v in per_seed[0].items()})
    per_seed = [rows[0] for rows in rows2]
    t2.append({k: (_mean_std([r[k] for r in per_seed]) if isinstance(v, float) else v)
               for k, v in per_seed[0].items()})
    raw += [dict(r, run=m, seed=s) for s, r in zip(seeds_of[m], per_seed)]
  notes = (f'Mean ± standard deviation over seeds {seeds} (one `python -m siampose_jax.main` run each; '
           f'per-seed rows in table2_per_seed.csv).',)
  out = tables.write_tables(workdir, t1, t2, CATEGORIES, notes=notes)
  out['table2_per_seed_csv'] = reports.write_csv(os.path.join(workdir, 'table2_per_seed.csv'), raw)
  return out


def aggregate_table3(workdir: str, methods: list[str], seeds: list[int]) -> dict[str, str]:
  """Table 3 with mean ± std over seeds of each run's own row (its first: the run's embedding)."""
  rows, raw = [], []
  for m in methods:
    per_seed = [rows_[0] for rows_ in _seed_rows(workdir, m, seeds, 'table3.csv')]
    rows.append({k: (_mean_std([r[k] for r in per_seed]) if isinstance(v, float) else v)
                 for k, v in per_seed[0].items()})
    raw += [dict(r, run=m, seed=s) for s, r in zip(seeds, per_seed)]
  notes = (f'Mean ± standard deviation over seeds {seeds} (one `python -m siampose_jax.main` run each; '
           'per-seed rows in table3_per_seed.csv).',)
  out = tables.write_table3(workdir, rows, notes=notes)
  out['table3_per_seed_csv'] = reports.write_csv(os.path.join(workdir, 'table3_per_seed.csv'), raw)
  return out


def _runs_queries(workdir, methods, seeds) -> dict[str, list[claims_lib.RunQueries]]:
  rows = {m: [reports.read_csv(os.path.join(run_dir(workdir, m, s), 'eval_per_query.csv')) for s in seeds]
          for m in methods}
  videos = sorted({r['video_id'] for per_seed in rows.values() for rs in per_seed for r in rs})
  index = {v: i for i, v in enumerate(videos)}
  return {m: [claims_lib.from_rows(rs, index) for rs in per_seed] for m, per_seed in rows.items()}


def write_claims(workdir: str, methods: list[str], seeds: list[int]) -> str:
  """claims.md: every claim of the paper (`claims.paper_claims`) with both means, their difference, a 95 %
  interval over seeds and test videos, δ and verdicts; then where the spread over seeds comes from."""
  have = [m for m in methods if m != 'imagenet']
  runs = _runs_queries(workdir, have, seeds)
  verdicts = claims_lib.judge(runs, claims_lib.paper_claims(have))
  path = os.path.join(workdir, 'claims.md')
  with open(path, 'w') as f:
    f.write(claims_lib.claims_markdown(runs, verdicts))
  return path


def _run_seconds(workdir, methods, seeds) -> float:
  total = 0.0
  for m in methods:
    for s in ([0] if m == 'imagenet' else seeds):
      with open(os.path.join(run_dir(workdir, m, s), DONE)) as f:
        total += json.load(f)['seconds']
  return total


def write_results(workdir: str, methods: list[str], seeds: list[int], preset: str, written: dict,
                  argv: list[str], tables=('table1_md', 'table2_md', 'claims_md')) -> str:
  """results.md: how the sweep was run (command, machine, versions, seeds, wall time), both tables and
  every verdict, in one file (docs/results_synthetic.md is a copy of one)."""
  import platform  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import flax  # pylint: disable=g-import-not-at-top
  env = (f'{platform.platform()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, '
         f'jax {jax.__version__} ({jax.default_backend()}), flax {flax.__version__}')
  hours = _run_seconds(workdir, methods, seeds) / 3600
  parts = ['# Paper tables and claims over seeds', '',
           f'- command: `python -m siampose_jax.experiments.paper_tables {" ".join(argv)}`',
           f'- preset `{preset}`, methods {methods}, seeds {seeds}',
           f'- machine: {env}',
           f'- wall time of the runs: {hours:.2f} h (sum of the runs\' DONE files)', '']
  for key in tables:
    with open(written[key]) as f:
      parts += ['', f.read().replace('\n# ', '\n## ').replace('# ', '## ', 1)]
  path = os.path.join(workdir, 'results.md')
  with open(path, 'w') as f:
    f.write('\n'.join(parts))
  return path


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  p.add_argument('--workdir', required=True)
  p.add_argument('--preset', default='cpu')
  p.add_argument('--table', default='2', choices=('2', '3'),
                 help='2: Tables 1 and 2 and the claims (Objectron); 3: UCF101 action retrieval')
  p.add_argument('--seeds', type=int, default=3)
  p.add_argument('--methods', default='', help=f'comma-separated, of {list(METHODS)} (--table=2, default: '
                 f'{list(TABLE2_ROWS)}) or {list(TABLE3_METHODS)} (--table=3, default: all)')
  p.add_argument('--imagenet_weights', default='', help='torchvision ResNet-50 weights: adds an ImageNet row')
  p.add_argument('--override', action='append', default=[], metavar='KEY=VALUE',
                 help='a --config.KEY=VALUE for every run (repeatable), e.g. total_steps=500')
  args = p.parse_args(argv)
  bad = [o for o in args.override if '=' not in o]
  if bad:
    p.error(f'--override needs KEY=VALUE, got {bad}')
  extra = dict(o.split('=', 1) for o in args.override)
  known = TABLE3_METHODS if args.table == '3' else METHODS
  methods = args.methods.split(',') if args.methods else list(TABLE3_METHODS if args.table == '3'
                                                                 else TABLE2_ROWS)
  unknown = [m for m in methods if m not in known]
  if unknown:
    p.error(f'unknown methods {unknown} for --table={args.table}; expected some of {list(known)}')
  if args.imagenet_weights:
    methods.append('imagenet')
  seeds = list(range(args.seeds))
  workdir = os.path.abspath(os.path.expanduser(args.workdir))
  start = time.time()
  run_all(workdir, methods, seeds, args.preset, args.imagenet_weights, extra)
  argv = sys.argv[1:] if argv is None else argv
  if args.table == '3':
    written = aggregate_table3(workdir, methods, seeds)
    written['results_md'] = write_results(workdir, methods, seeds, args.preset, written, argv, ('table3_md',))
  else:
    written = aggregate(workdir, methods, seeds)
    written['claims_md'] = write_claims(workdir, methods, seeds)
    written['results_md'] = write_results(workdir, methods, seeds, args.preset, written, argv)
  print(f'\n{len(methods)} methods x {len(seeds)} seeds in {workdir} ({time.time() - start:.0f} s this call)')
  for name, path in sorted(written.items()):
    print(f'  {name}: {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
