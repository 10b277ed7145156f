"""The experiment runner: a sweep over methods and seeds that resumes after an interruption without
re-running finished runs, and the claims' bootstrap intervals on constructed per-query results."""
from __future__ import annotations

import os

import numpy as np
import pytest

from siampose_jax import configs, reports
from siampose_jax.experiments import claims, paper_tables


def _runs_log_sizes(workdir):
  return {(m, s): os.path.getsize(os.path.join(paper_tables.run_dir(workdir, m, s), 'run.log'))
          for m in ('nearby', 'random') for s in (0, 1)}


def test_sweep_resumes_without_rerunning_finished_runs(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # the runner finds the configs from any working directory
  workdir = str(tmp_path / 'sweep')
  args = ['--preset=test', '--seeds=2', '--methods=nearby,random', f'--workdir={workdir}', '--bootstrap=20',
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
  assert 'random-init embeddings are worst on 3D mAP' in claims_md
  assert any(v in claims_md for v in ('**holds**', '**does not hold**', '**undecided**'))
  assert os.path.exists(os.path.join(workdir, 'results.md'))


def _runs(rng, n_videos, per_video, shift, seeds=3):
  video = np.repeat(np.arange(n_videos), per_video)
  out = []
  for _ in range(seeds):
    iou = np.clip(rng.normal(0.5 + shift, 0.2, video.size), 0, 1)
    out.append(claims.RunQueries(video=video, category=np.array(['cup', 'shoe'])[video % 2], iou=iou,
                                 correct=rng.random(video.size) < 0.8 + shift,
                                 reid=np.clip(rng.normal(0.5 + shift, 0.1, video.size), 0, 1)))
  return out


def test_claim_verdicts_follow_the_bootstrap_interval():
  rng = np.random.default_rng(0)
  runs = {'a': _runs(rng, 40, 10, 0.1), 'b': _runs(rng, 40, 10, 0.0), 'c': _runs(rng, 40, 10, 0.1)}
  boot = claims.bootstrap_means(runs, 'reid_map', samples=200)
  means = {m: np.mean([claims.metric(r, 'reid_map') for r in runs[m]]) for m in runs}
  assert claims.greater('a > b', boot['a'], boot['b'], means['a'], means['b']).verdict == 'holds'
  assert claims.greater('b > a', boot['b'], boot['a'], means['b'], means['a']).verdict == 'does not hold'
  assert claims.greater('a > c', boot['a'], boot['c'], means['a'], means['c']).verdict == 'undecided'
  # The metric is the paper's: the mean over categories of the fraction of IoU above 0.5.
  r = runs['a'][0]
  want = np.mean([np.mean(r.iou[r.category == c] > 0.5) for c in ('cup', 'shoe')])
  assert claims.metric(r, 'overall_3d_ap') == pytest.approx(want)
  assert claims.metric(r, 'classif_acc') == pytest.approx(100 * r.correct.mean())


def _runs_from(values, category):
  """One RunQueries per seed from per-(seed, query) Re-ID scores/correctness/IoUs, 2 queries per video."""
  videos = np.repeat(np.arange(len(category)), 2)
  return [claims.RunQueries(video=videos, category=np.asarray(category)[videos], iou=np.asarray(v)[videos],
                            correct=np.asarray(v)[videos] > 0.5, reid=np.asarray(v)[videos]) for v in values]


def test_seed_spread_total_is_the_std_of_the_metric_over_seeds():
  # Unequal categories (3D mAP weighs a video by its category's size): the total is the std over seeds of
  # claims.metric, for each of the three metrics.
  rng = np.random.default_rng(0)
  category = ['cup'] * 7 + ['shoe'] * 3 + ['bike'] * 12
  runs = _runs_from(rng.uniform(size=(4, len(category))), category)
  for name in claims.METRICS:
    want = np.std([claims.metric(r, name) for r in runs], ddof=1)
    assert claims.seed_spread(runs, name)[0] == pytest.approx(want)


def test_seed_spread_separates_the_models_from_the_test_videos():
  # Additive models (a seed's offset + a video's difficulty): no interaction, all of the spread is the
  # models'.
  seed_offset, difficulty = np.array([0.0, 0.03, -0.02, 0.05]), np.linspace(0.1, 0.8, 30)
  total, test, model = claims.seed_spread(_runs_from(seed_offset[:, None] + difficulty, ['cup'] * 30),
                                          'reid_map')
  assert test == pytest.approx(0.0, abs=1e-9) and model == pytest.approx(total)
  assert total == pytest.approx(np.std(seed_offset, ddof=1))
  # Random effects: model std 0.02, per-(seed, video) noise 0.1 over 50 videos -> test part 0.1/sqrt(50).
  rng = np.random.default_rng(1)
  x = rng.normal(0, 0.02, (400, 1)) + rng.normal(0, 0.1, (400, 50)) + difficulty[:1]
  total, test, model = claims.seed_spread(_runs_from(x, ['cup'] * 50), 'reid_map')
  assert test == pytest.approx(0.1 / np.sqrt(50), rel=0.05)
  assert model == pytest.approx(0.02, rel=0.15)
  assert total ** 2 == pytest.approx(test ** 2 + model ** 2)


def _write_run(workdir, method, seed, iou, reid):
  """A finished run's eval_per_query.csv: 8 videos of 2 categories, 5 queries each."""
  path = paper_tables.run_dir(workdir, method, seed)
  os.makedirs(path)
  rows = [dict(video_id=f'v{v}', frame_id=f, category='cup' if v % 2 else 'shoe', neighbour_category='cup',
               iou=iou, reid_map=reid) for v in range(8) for f in range(5)]
  reports.write_csv(os.path.join(path, 'eval_per_query.csv'), rows)


def test_combined_alternatives_are_checked_but_are_not_table2_rows(tmp_path):
  workdir = str(tmp_path)
  values = {'nearby': (0.6, 0.3), 'random': (0.2, 0.2), 'combined': (0.6, 0.3),
            'combined_shared': (0.1, 0.1), 'combined_mixed': (0.0, 0.5)}
  for method, (iou, reid) in values.items():
    for seed in (0, 1):
      _write_run(workdir, method, seed, iou + 0.01 * seed, reid + 0.01 * seed)
  text = open(paper_tables.write_claims(workdir, list(values), [0, 1], samples=20)).read()
  # combined_shared scores below random-init, but random-init's claim compares the paper's rows only.
  assert 'combined_shared, the worst trained' not in text and 'nearby, the worst trained' in text
  assert '**The combined model is within one std of the best single model on 3D mAP and on Re-ID mAP at ' \
         'once: holds.**' in text
  assert '`combined_shared` is within one std of the best single model on 3D mAP and on Re-ID mAP at once: ' \
         'does not hold.**' in text
  assert 'combined_mixed vs the best single model on Re-ID mAP (nearby): 0.505 vs' in text
  # The spread table: nearby's Re-ID moves by 0.01 between its seeds (std 0.007), the same on every test
  # video: all of it is the models'.
  assert '## Where the spread over seeds comes from' in text
  assert text.split('| nearby | ')[1].split(' |\n')[0].split(' | ')[6:] == ['0.007', '0.000', '0.007']
  # ... and pooled over the Table 2 rows (nearby, random, combined; not the alternatives): the root mean
  # square of their stds.
  row = lambda m: [float(v) for v in text.split(f'| {m} | ')[1].split(' |\n')[0].split(' | ')]
  pooled = row('Table 2 rows pooled (root mean square)')
  for k in (0, 3, 6):
    want = np.sqrt(np.mean([row(m)[k] ** 2 for m in ('nearby', 'random', 'combined')]))
    assert pooled[k] == pytest.approx(want, abs=2e-3)
  assert pooled[6] > 0 and pooled[6] == pytest.approx(pooled[8], abs=1e-3)
  # Only combined variants, no single model to set them beside: no check, and no crash.
  alone = open(paper_tables.write_claims(workdir, ['combined', 'random'], [0, 1], samples=20)).read()
  assert 'within one std' not in alone and 'combined, the worst trained' in alone
  cmd = paper_tables.command('combined_shared', 'cpu', 1, workdir)
  assert f'--config={configs.path("combined")}:cpu' in cmd and '--config.model.split_feature=False' in cmd
  assert '--config.data.pair_mode=mixed' in paper_tables.command('combined_mixed', 'cpu', 0, workdir)
