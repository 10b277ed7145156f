"""Every Table 2 method of the paper, trained and evaluated for several seeds; tables of mean ± std and the
paper's claims tested over seeds. With --table=3, the UCF101 action retrieval runs of Table 3 instead.

  python -m siampose_jax.experiments.paper_tables --preset=cpu --seeds=5 --workdir=DIR
      [--methods=nearby,distant,...] [--results_dir=results] [--allow_other_machine]
      [--imagenet_weights=resnet50.safetensors] [--override KEY=VALUE ...]
  python -m siampose_jax.experiments.paper_tables --preset=cpu --from_results
  python -m siampose_jax.experiments.paper_tables --table=3 --preset=cpu --seeds=3 --workdir=DIR

Each (method, seed) is one `python -m siampose_jax.main` run in DIR/<method>/seed<k> (its log in run.log
there; an interrupted one resumes from its last checkpoint). Its small results are then copied into the
repository, results/<preset>/<method>/seed<k>/ (`results`): a run counts as done when they are there, so a
sweep continues from the committed files on another machine, without DIR, when the same command is run again
there (of the same kind of machine, or with --allow_other_machine; at the same config: a run whose
config.json differs from what its command builds today is refused, naming the key). The tables and claims are always built
from results/<preset>/ alone, and written there: table1.{md,csv}, table2.{md,csv} (mean ± std over each
method's seeds), table2_per_seed.csv, claims.md (`claims`), results.md (how the runs were made, the tables
and the claims) and summary.md (the README's block: Table 2 and the verdicts). --from_results rebuilds them
without running anything, the same files byte for byte. Table 3's runs stay in DIR, and so do its tables.
"""
from __future__ import annotations

import argparse
import importlib
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
from siampose_jax.experiments import results

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
  config, overrides = method_config(method)
  overrides = dict(overrides, seed=seed, **(extra or {}))
  if method == 'imagenet':
    overrides['eval.checkpoint'] = f'imagenet:{imagenet_weights}'
  return ([sys.executable, '-m', 'siampose_jax.main', f'--config={configs.path(config)}:{preset}',
           f'--workdir={run_dir(workdir, method, seed)}']
          + [f'--config.{k}={v}' for k, v in overrides.items()])


def method_config(method: str) -> tuple[str, dict]:
  """(config name in configs/, its --config overrides) of a method of Table 2 or 3, or of 'imagenet'."""
  return IMAGENET if method == 'imagenet' else {**METHODS, **TABLE3_METHODS}[method]


def check_configs(preset_dir: str, existing: dict[str, dict], preset: str, extra: dict) -> None:
  """Refuses to add runs to a sweep whose finished runs' config.json differs from what their command builds
  today (the preset changed since), on any key their command does not set itself."""
  for name, run in sorted(existing.items()):
    config_name, overrides = method_config(run['method'])
    current = importlib.import_module(f'siampose_jax.configs.{config_name}').get_config(preset).to_dict()
    with open(os.path.join(preset_dir, name, 'config.json')) as f:
      stored = json.load(f)
    skip = {'seed', 'eval.checkpoint', *overrides, *extra, *results.PATH_OVERRIDES}
    drift = results.config_drift(stored, current, skip)
    if drift:
      key, then, now = drift[0]
      raise results.SweepMismatch(
          f'{preset_dir}: run {name} was made with {key}={then!r}, where the {preset!r} preset now has '
          f'{now!r} ({len(drift)} keys differ); a sweep\'s runs share their config: write to another '
          f'--results_dir, or continue it with --override for each of those keys')


def _portable(cmd: list[str]) -> list[str]:
  """A run's command as run.json records it: `python`, and config paths relative to the repository."""
  return ['python'] + [a.replace(str(results.REPO) + os.sep, '') for a in cmd[1:]]


def _child_env() -> dict:
  """The runs import this code (the commit run.json records), wherever the working directory is."""
  path = [str(results.REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
  return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def run_all(workdir: str, methods: list[str], seeds: list[int], preset: str, imagenet_weights: str = '',
            extra: dict | None = None, results_root: str | None = None, allow_other_machine: bool = False,
            sweep_command: str = '') -> None:
  """Runs every (method, seed) not done yet, one after the other, with an overall progress bar. With
  `results_root` (Table 2), a run is done when its results are there, and a finished run's results are
  copied there; adding runs to a sweep made on another kind of machine, or whose runs' config.json differs
  from what their command builds today (`check_configs`), raises results.SweepMismatch."""
  extra = extra or {}
  todo = [(m, s) for m in methods for s in ([0] if m == 'imagenet' else seeds)]

  def saved(method, seed):
    return results_root is not None and results.is_complete(results.run_dir(results_root, preset, method, seed))

  def finished(method, seed):
    return os.path.exists(os.path.join(run_dir(workdir, method, seed), DONE))

  done = [t for t in todo if saved(*t) or (results_root is None and finished(*t))]
  if results_root is not None and len(done) < len(todo):
    preset_dir = os.path.join(results_root, preset)
    existing = {f'{m}/seed{s}': results.read_run(results.run_dir(results_root, preset, m, s))
                for m, ss in results.completed(preset_dir, list(METHODS) + ['imagenet']).items() for s in ss}
    machine = results.machine()
    results.check_sweep(preset_dir, existing, machine['kind'], extra, allow_other_machine)
    check_configs(preset_dir, existing, preset, extra)
    provenance = {'commit': results.commit(results_root), 'versions': results.versions(), 'machine': machine}
  bar = tqdm.tqdm(total=len(todo), initial=len(done), unit='run', desc='paper tables', dynamic_ncols=True)
  for method, seed in todo:
    path = run_dir(workdir, method, seed)
    if (method, seed) in done:
      continue
    if not finished(method, seed):
      os.makedirs(path, exist_ok=True)
      cmd = command(method, preset, seed, workdir, imagenet_weights, extra)
      bar.set_postfix_str(f'{method} seed {seed}')
      start = time.time()
      with open(os.path.join(path, 'run.log'), 'a') as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=_child_env())
      if proc.returncode:
        raise RuntimeError(f'{method} seed {seed} failed (exit {proc.returncode}); see {path}/run.log; '
                           'rerun the same command to resume')
      with open(os.path.join(path, DONE), 'w') as f:
        json.dump({'seconds': round(time.time() - start, 1), 'command': cmd}, f, indent=1)
    if results_root is not None:
      with open(os.path.join(path, DONE)) as f:
        run = json.load(f)
      results.save_run(path, results.run_dir(results_root, preset, method, seed), {
          'sweep_command': sweep_command, 'command': _portable(run['command']), 'preset': preset,
          'method': method, 'seed': seed, 'overrides': extra, 'seconds': run['seconds'], **provenance})
    bar.update()
  bar.close()


def _mean_std(values: list[float], fmt: str = '{:.2f}') -> str:
  v = np.asarray(values, np.float64)
  return f'{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1) if len(v) > 1 else 0.0)}'


def _seed_rows(base, method, seeds, table):
  return [reports.read_csv(os.path.join(run_dir(base, method, s), table)) for s in seeds]


def _seeds_text(seeds_of: dict[str, list[int]]) -> str:
  return '; '.join(f'{m} {", ".join(map(str, ss))}' for m, ss in seeds_of.items())


def aggregate(base: str, seeds_of: dict[str, list[int]]) -> dict[str, str]:
  """Tables 1 and 2 of the runs base/<method>/seed<k> with mean ± std over each method's seeds,
  baselines from the random runs; written into `base`."""
  t1, t2, raw = [], [], []
  for m, seeds in seeds_of.items():
    rows1, rows2 = _seed_rows(base, m, seeds, 'table1.csv'), _seed_rows(base, m, seeds, 'table2.csv')
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
    raw += [dict(r, run=m, seed=s) for s, r in zip(seeds, per_seed)]
  notes = (f'Mean ± standard deviation over each method\'s seeds ({_seeds_text(seeds_of)}; one `python -m '
           'siampose_jax.main` run each; per-seed rows in table2_per_seed.csv).',)
  out = tables.write_tables(base, t1, t2, CATEGORIES, notes=notes)
  out['table2_per_seed_csv'] = reports.write_csv(os.path.join(base, 'table2_per_seed.csv'), raw)
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


def write_results_table3(workdir: str, methods: list[str], seeds: list[int], preset: str, table3_md: str,
                         sweep_command: str) -> str:
  """results.md of a Table 3 sweep: command, machine, versions, wall time (the runs' DONE files), Table 3."""
  seconds = sum(_done_seconds(workdir, m, s) for m in methods for s in ([0] if m == 'imagenet' else seeds))
  machine, versions = results.machine(), results.versions()
  with open(table3_md) as f:
    table = f.read().replace('# ', '## ', 1)
  return _write(os.path.join(workdir, 'results.md'), '\n'.join([
      '# Paper tables over seeds', '', f'- command: `{sweep_command}`',
      f'- preset `{preset}`, methods {methods}, seeds {seeds}',
      f'- machine: {machine["kind"]} ({machine["platform"]}, {machine["memory_gb"]} GB); '
      + ', '.join(f'{k} {v}' for k, v in versions.items()),
      f'- wall time of the runs: {seconds / 3600:.2f} h (sum of the runs\' DONE files)', '', '', table]))


def _done_seconds(workdir: str, method: str, seed: int) -> float:
  with open(os.path.join(run_dir(workdir, method, seed), DONE)) as f:
    return json.load(f)['seconds']


def runs_queries(base: str, seeds_of: dict[str, list[int]]) -> dict[str, list[claims_lib.RunQueries]]:
  """Every run's eval_per_query.csv, aligned on the same test queries (an error names a run that differs)."""
  files = {m: [os.path.join(run_dir(base, m, s), 'eval_per_query.csv') for s in ss]
           for m, ss in seeds_of.items()}
  rows = {m: [reports.read_csv(f) for f in fs] for m, fs in files.items()}
  videos = sorted({r['video_id'] for per_seed in rows.values() for rs in per_seed for r in rs})
  index = {v: i for i, v in enumerate(videos)}
  out = {m: [claims_lib.from_rows(rs, index, f) for rs, f in zip(per_seed, files[m])]
         for m, per_seed in rows.items()}
  first = next(iter(out.values()))[0]
  for m, runs in out.items():
    for run, f in zip(runs, files[m]):
      if not (np.array_equal(run.video, first.video) and np.array_equal(run.frame, first.frame)):
        raise ValueError(f'{f}: its test queries differ from {files[next(iter(files))][0]}\'s; every run of a '
                         'sweep is evaluated on the same test set')
  return out


def _write(path: str, text: str) -> str:
  with open(path, 'w') as f:
    f.write(text)
  return path


def summary(base: str, seeds_of: dict[str, list[int]], verdicts: list[claims_lib.Result],
            notes: list[str]) -> str:
  """The README's block: Table 2 (the paper's columns, mean ± std over n seeds, the paper's values beside),
  the provenance `notes` (runs from more than one kind of machine) and the verdicts of the claims tested
  (claims.md lists every claim)."""
  lines = ['Table 2, mean ± std over each method\'s n seeds (the paper\'s values in the last column):', '',
           '| Method | n | Classif. Acc. | 3D mAP | Re-ID mAP | paper: Acc. / 3D mAP / Re-ID mAP |',
           '|---|---|---|---|---|---|']
  for m, seeds in seeds_of.items():
    per_seed = [rows[0] for rows in _seed_rows(base, m, seeds, 'table2.csv')]
    cells = [_mean_std([r[k] for r in per_seed], claims_lib.FORMATS[k]) for k in claims_lib.TABLE2_METRICS]
    paper = ' / '.join(f'{v:.2f}' for v in claims_lib.PAPER_TABLE2[m]) if m in claims_lib.PAPER_TABLE2 else '—'
    lines.append(f'| {per_seed[0]["method"]} | {len(seeds)} | ' + ' | '.join(cells) + f' | {paper} |')
  lines += [line for n in notes for line in ('', n)]
  tested = [v for v in verdicts if v.verdict != 'not run']
  not_run = len(verdicts) - len(tested)
  lines += ['', 'Verdicts (claims.md says how they are decided' + (
      f'; it also lists the {not_run} claims whose methods are not in the sweep yet' if not_run else '') + '):',
            '', *claims_lib.result_rows(tested)]
  return '\n'.join(lines) + '\n'


def write_results(base: str, seeds_of: dict[str, list[int]], runs: dict[str, dict], written: dict,
                  notes: list[str]) -> str:
  """results.md: how the sweep was run (commands, machine, versions, commits, wall time, from each run's
  run.json), both tables and every verdict, in one file."""
  def distinct(key):
    values = {}
    for name, r in runs.items():
      values.setdefault(json.dumps(key(r), sort_keys=True), []).append(name)
    return sorted(values.items())

  def listed(key, show=str):
    return '; '.join(f'{show(json.loads(v))} ({len(names)} run{"s" * (len(names) > 1)})'
                     for v, names in distinct(key))

  def machine(m):
    return f'{m["kind"]} ({m["platform"]}, {m["memory_gb"]} GB)'

  def version(v):
    return ', '.join(f'{k} {x}' for k, x in v.items())

  hours = sum(r['seconds'] for r in runs.values()) / 3600
  parts = ['# Paper tables and claims over seeds', '',
           f'- preset `{next(iter(runs.values()))["preset"]}`; seeds per method: {_seeds_text(seeds_of)}',
           '- runner command: ' + listed(lambda r: r['sweep_command'], lambda c: f'`{c}`'),
           '- overrides: ' + listed(lambda r: r['overrides']),
           '- machine kind: ' + listed(lambda r: {k: r['machine'][k] for k in ('kind', 'platform', 'memory_gb')},
                                       machine),
           '- versions: ' + listed(lambda r: r['versions'], version),
           '- commit: ' + listed(lambda r: r['commit'], lambda c: f'`{c}`'),
           f'- wall time of the runs: {hours:.2f} h (the sum of their run.json seconds)', '',
           *[f'**{n}**' for n in notes]]
  for key in ('table1_md', 'table2_md', 'claims_md'):
    with open(written[key]) as f:
      parts += ['', f.read().replace('\n# ', '\n## ').replace('# ', '## ', 1)]
  return _write(os.path.join(base, 'results.md'), '\n'.join(parts))


def rebuild(base: str) -> dict[str, str]:
  """Tables 1 and 2, table2_per_seed.csv, claims.md, summary.md and results.md from the run results under
  `base` (results/<preset>) alone, written there; the same files on every rebuild."""
  seeds_of = results.completed(base, list(METHODS) + ['imagenet'])
  if not seeds_of:
    raise FileNotFoundError(f'{base}: no finished run (a folder <method>/seed<k> with '
                            f'{list(results.RUN_FILES) + [results.RUN_JSON]})')
  runs = {f'{m}/seed{s}': results.read_run(run_dir(base, m, s)) for m, ss in seeds_of.items() for s in ss}
  notes = results.provenance_notes(runs)
  written = aggregate(base, seeds_of)
  queries = runs_queries(base, {m: ss for m, ss in seeds_of.items() if m != 'imagenet'})
  verdicts = claims_lib.judge(queries, claims_lib.paper_claims(list(queries)))
  written['claims_md'] = _write(os.path.join(base, 'claims.md'),
                                claims_lib.claims_markdown(queries, verdicts, notes))
  written['summary_md'] = _write(os.path.join(base, 'summary.md'), summary(base, seeds_of, verdicts, notes))
  written['results_md'] = write_results(base, seeds_of, runs, written, notes)
  return written


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  p.add_argument('--workdir', default='', help='where the runs train (not needed with --from_results)')
  p.add_argument('--preset', default='cpu')
  p.add_argument('--table', default='2', choices=('2', '3'),
                 help='2: Tables 1 and 2 and the claims (Objectron); 3: UCF101 action retrieval')
  p.add_argument('--seeds', type=int, default=3)
  p.add_argument('--methods', default='', help=f'comma-separated, of {list(METHODS)} (--table=2, default: '
                 f'{list(TABLE2_ROWS)}) or {list(TABLE3_METHODS)} (--table=3, default: all)')
  p.add_argument('--imagenet_weights', default='', help='torchvision ResNet-50 weights: adds an ImageNet row')
  p.add_argument('--override', action='append', default=[], metavar='KEY=VALUE',
                 help='a --config.KEY=VALUE for every run (repeatable), e.g. total_steps=500')
  p.add_argument('--results_dir', default=results.DEFAULT_ROOT,
                 help='where each run\'s results, the tables and the claims go: <results_dir>/<preset>/ '
                      '(default: the repository\'s results/)')
  p.add_argument('--from_results', action='store_true',
                 help='run nothing: rebuild the tables and claims of <results_dir>/<preset>/ from its files')
  p.add_argument('--allow_other_machine', action='store_true',
                 help='add runs to a sweep made on another kind of machine (the tables flag the mix)')
  args = p.parse_args(argv)
  base = os.path.join(os.path.abspath(os.path.expanduser(args.results_dir)), args.preset)
  if args.from_results:
    if args.table == '3':
      p.error('--from_results rebuilds Tables 1 and 2 and the claims (--table=2)')
    for name, path in sorted(rebuild(base).items()):
      print(f'  {name}: {path}')
    return 0
  if not args.workdir:
    p.error('--workdir is required (where the runs train), unless --from_results')
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
  argv = sys.argv[1:] if argv is None else argv
  sweep_command = ' '.join(['python -m siampose_jax.experiments.paper_tables'] + list(argv))
  try:
    run_all(workdir, methods, seeds, args.preset, args.imagenet_weights, extra,
            None if args.table == '3' else os.path.dirname(base), args.allow_other_machine, sweep_command)
  except results.SweepMismatch as e:
    sys.exit(f'error: {e}')
  if args.table == '3':
    written = aggregate_table3(workdir, methods, seeds)
    written['results_md'] = write_results_table3(workdir, methods, seeds, args.preset, written['table3_md'],
                                                 sweep_command)
  else:
    written = rebuild(base)
  print(f'\n{len(methods)} methods x {len(seeds)} seeds in {workdir} ({time.time() - start:.0f} s this call)')
  for name, path in sorted(written.items()):
    print(f'  {name}: {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
