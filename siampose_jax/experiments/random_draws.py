"""The random baselines over many draws: how far one Table 1 row sits from the floor it estimates.

"Random fit" and "Random in-category fit" are each one uniform draw of a training frame per query, seeded
by config.seed (the reference draws once too), so a row moves with the seed. This evaluates `--draws`
seeds (0, 1, ...) on the config's frame store — labels only: no image is decoded and nothing is embedded
— and writes DIR/random_draws.csv (one row per draw: Table 1's per-category and overall AP@0.5) and
DIR/random_draws.md (mean ± std over the draws: the expectation a single row estimates).

  python -m siampose_jax.experiments.random_draws --config=configs/nearby.py:cpu --workdir=DIR --draws=20
"""
from __future__ import annotations

import os

import numpy as np
import tqdm
from absl import app, flags
from ml_collections import config_flags

from input_pipeline.formats.frame_record import CATEGORIES
from siampose_jax import reports
from siampose_jax.evaluation import methods, objectron


def draw_rows(gallery: dict, queries: dict, draws: int, symmetric=()) -> list[dict]:
  """Table 1 rows (per-category and overall AP@0.5) of each random baseline for seeds 0 .. draws-1."""
  full = np.ones(len(gallery['category']), bool)
  rows = []
  with tqdm.tqdm(total=draws * len(methods.RANDOM_BASELINES), desc='random draws', unit='draw') as bar:
    for key in methods.RANDOM_BASELINES:
      for seed in range(draws):
        nn, _ = methods.random_method(key, gallery['category'], queries['category'], seed).neighbours(full)
        res = objectron.fit_and_score(gallery, queries, nn, symmetric)
        rows.append({'row': str(key), 'method': key.name(), 'seed': seed,
                     **objectron.per_category_ap(res['iou'], queries['category']), 'failed_fits': res['failed']})
        bar.update()
  return rows


def summary_md(rows: list[dict]) -> str:
  """Mean ± std over the draws of each baseline, per category and overall."""
  cols = [c for c in (*CATEGORIES, 'overall') if c in rows[0]]
  lines = ['# The random baselines over draws', '',
           f'AP@0.5, mean ± std over {sum(r["row"] == rows[0]["row"] for r in rows)} draws (seeds 0, 1, '
           '...); Table 1 shows one draw, seeded by config.seed.', '',
           '| method | ' + ' | '.join(cols) + ' | min / max overall |', '|---|' + '---|' * (len(cols) + 1)]
  for key in methods.RANDOM_BASELINES:
    mine = [r for r in rows if r['row'] == str(key)]
    cells = [f'{np.mean([r[c] for r in mine]):.3f} ± {np.std([r[c] for r in mine], ddof=1):.3f}' for c in cols]
    overall = [r['overall'] for r in mine]
    lines.append(f'| {key.name()} | ' + ' | '.join(cells) + f' | {min(overall):.3f} / {max(overall):.3f} |')
  return '\n'.join(lines) + '\n'


def main(argv) -> None:
  del argv
  config, workdir = _CONFIG.value, os.path.expanduser(_WORKDIR.value)
  if _DRAWS.value < 2:
    raise app.UsageError(f'--draws must be >= 2 for a std, got {_DRAWS.value}')
  _, gallery, queries = objectron.gallery_and_queries(config)
  rows = draw_rows(gallery, queries, _DRAWS.value, tuple(config.eval.symmetric_categories))
  os.makedirs(workdir, exist_ok=True)
  csv_path = reports.write_csv(os.path.join(workdir, 'random_draws.csv'), rows)
  md_path, summary = os.path.join(workdir, 'random_draws.md'), summary_md(rows)
  with open(md_path, 'w') as f:
    f.write(summary)
  print(summary)
  print(f'  random_draws_csv: {csv_path}\n  random_draws_md: {md_path}')


if __name__ == '__main__':
  # Flags are defined only when run as a program: the tests import this module beside siampose_jax.main,
  # which defines --config too.
  _CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file[:preset].',
                                            lock_config=True)
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Where random_draws.{csv,md} are written.')
  _DRAWS = flags.DEFINE_integer('draws', 20, 'Seeds 0 .. draws-1 of each random baseline.')
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main)
