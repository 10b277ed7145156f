"""The experiment runner: a sweep over methods and seeds that resumes after an interruption without
re-running finished runs, and claims.md from constructed per-query results."""
from __future__ import annotations

import os

import numpy as np
import pytest

from siampose_jax import configs, reports
from siampose_jax.experiments import paper_tables


def _runs_log_sizes(workdir):
  return {(m, s): os.path.getsize(os.path.join(paper_tables.run_dir(workdir, m, s), 'run.log'))
          for m in ('nearby', 'random') for s in (0, 1)}


def test_sweep_resumes_without_rerunning_finished_runs(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # the runner finds the configs from any working directory
  workdir = str(tmp_path / 'sweep')
  args = ['--preset=test', '--seeds=2', '--methods=nearby,random', f'--workdir={workdir}',
          '--override', 'total_steps=3', '--override', f'data.cache_dir={tmp_path / "cache"}']
  # The sweep is killed while training (nearby, seed 1): it left a checkpoint, no DONE file.
  assert paper_tables.main(args) == 0
  killed = paper_tables.run_dir(workdir, 'nearby', 1)
  os.remove(os.path.join(killed, paper_tables.DONE))
  for name in ('table1.csv', 'table2.csv', 'eval_per_query.csv'):
    os.remove(os.path.join(killed, name))
  before = _runs_log_sizes(workdir)
  assert paper_tables.main(args) == 0
  after = _runs_log_sizes(workdir)
  assert [k for k in before if after[k] != before[k]] == [('nearby', 1)]  # only that run ran again
  assert 'resumed from' in open(os.path.join(killed, 'run.log')).read()
  table2 = reports.read_csv(os.path.join(workdir, 'table2.csv'))
  assert [r['method'] for r in table2] == ['Our embeddings (nearby pairs)', 'Random embeddings']
  mean, std = (float(x) for x in table2[0]['reid_map'].split(' ± '))
  per_seed = [r['reid_map'] for r in reports.read_csv(os.path.join(workdir, 'table2_per_seed.csv'))
              if r['run'] == 'nearby']
  assert mean == pytest.approx(np.mean(per_seed), abs=0.006) and std == pytest.approx(np.std(per_seed, ddof=1),
                                                                                         abs=0.006)
  claims_md = open(os.path.join(workdir, 'claims.md')).read()
  assert '| nearby > distant on 3D mAP | | | | | ±0.020 | not run | not run |' in claims_md
  row = next(line for line in claims_md.splitlines() if line.startswith('| nearby > random on 3D mAP |'))
  assert any(f'**{v}**' in row for v in ('holds', 'does not hold', 'equivalent', 'undecided'))
  assert os.path.exists(os.path.join(workdir, 'results.md'))


def _write_run(workdir, method, seed, value):
  """A finished run's eval_per_query.csv: 8 videos of 2 categories, 5 queries each; IoU, Re-ID score and
  100 x the rotation error `value` (+ a little per video), the 1-NN right where that is above 0.5."""
  path = paper_tables.run_dir(workdir, method, seed)
  os.makedirs(path)
  category = lambda v: 'cup' if v % 2 else 'shoe'
  rows = [dict(video_id=f'v{v}', frame_id=f, category=category(v), iou=value + 0.01 * v,
               neighbour_category=category(v) if value + 0.01 * v > 0.5 else 'bike', reid_map=value + 0.01 * v,
               rotation_error_within_category=100 * value + v) for v in range(8) for f in range(5)]
  reports.write_csv(os.path.join(path, 'eval_per_query.csv'), rows)


def test_claims_md_lists_every_ordering_and_the_combined_models(tmp_path):
  workdir = str(tmp_path)
  values = {'nearby': 0.6, 'distant': 0.4, 'random': 0.2, 'combined': 0.6, 'combined_shared': 0.1}
  for method, value in values.items():
    for seed in (0, 1):
      _write_run(workdir, method, seed, value + 0.01 * seed)
  text = open(paper_tables.write_claims(workdir, list(values), [0, 1])).read()
  rows = [line for line in text.splitlines() if line.startswith('| ') and ' on ' in line.split(' | ')[0]]
  assert len(rows) == 45 + 1 + 4  # every ordering, the pose ordering, two combined models x two
  assert '14 claims tested, 36 not run' in text
  assert '| ntxent > tcn on Re-ID mAP | | | | | ±0.020 | not run | not run |' in text
  assert '| nearby > random on Classif. Acc. | 100.00 | 0.00 | +100.00 | [+100.00, +100.00] |' in text
  assert '| combined_shared > nearby on 3D mAP |' in text
  # The spread table: nearby's values move by 0.01 between its seeds (std 0.007), the same on every test
  # video: all of it is the models'; pooled over the paper's rows and the combined model, not its alternatives.
  row = lambda m: [float(v) for v in text.split(f'| {m} | ')[1].split(' |\n')[0].split(' | ')]
  assert row('nearby')[6:9] == [0.007, 0.0, 0.007]
  pooled = row('Table 2 rows pooled (root mean square)')
  assert pooled[0] == pytest.approx(np.sqrt(np.mean([row(m)[0] ** 2 for m in ('nearby', 'distant', 'random',
                                                                              'combined')])), abs=2e-3)


def test_combined_alternatives_run_on_request(tmp_path):
  cmd = paper_tables.command('combined_shared', 'cpu', 1, str(tmp_path))
  assert f'--config={configs.path("combined")}:cpu' in cmd and '--config.model.split_feature=False' in cmd
  assert '--config.data.pair_mode=mixed' in paper_tables.command('combined_mixed', 'cpu', 0, str(tmp_path))
