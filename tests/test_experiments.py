"""The experiment runner: a sweep over methods and seeds that resumes after an interruption without
re-running finished runs, keeps each run's results in results/<preset>/, continues from them alone and
rebuilds its tables and claims from them byte for byte; a sweep stays on one kind of machine."""
from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest

from siampose_jax import configs, reports
from siampose_jax.configs import nearby as _nearby_config
from siampose_jax.experiments import claims, paper_tables, results


def _runs_log_sizes(workdir):
  return {(m, s): os.path.getsize(os.path.join(paper_tables.run_dir(workdir, m, s), 'run.log'))
          for m in ('nearby', 'random') for s in (0, 1)}


def _outputs(base):
  """The sweep's own files (tables, claims, summary, results) in results/<preset>/, as bytes."""
  return {f: open(os.path.join(base, f), 'rb').read() for f in sorted(os.listdir(base))
          if os.path.isfile(os.path.join(base, f))}


def test_sweep_resumes_and_its_results_outlive_the_machine(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # the runner finds the configs from any working directory
  workdir, results_dir = str(tmp_path / 'sweep'), str(tmp_path / 'results')
  args = ['--preset=test', '--seeds=2', '--methods=nearby,random', f'--workdir={workdir}',
          f'--results_dir={results_dir}', '--override', 'total_steps=3', '--override',
          f'data.cache_dir={tmp_path / "cache"}']
  assert paper_tables.main(args) == 0
  base = os.path.join(results_dir, 'test')
  for m in ('nearby', 'random'):
    for s in (0, 1):
      assert sorted(os.listdir(results.run_dir(results_dir, 'test', m, s))) == sorted(
          results.RUN_FILES + (results.RUN_JSON,))
  run = results.read_run(results.run_dir(results_dir, 'test', 'nearby', 1))
  assert (run['preset'], run['method'], run['seed']) == ('test', 'nearby', 1) and run['seconds'] > 0
  assert run['overrides'] == {'total_steps': '3', 'data.cache_dir': str(tmp_path / 'cache')}
  assert run['command'][:3] == ['python', '-m', 'siampose_jax.main'] and run['sweep_command'].endswith(args[-1])
  assert run['machine'] == results.machine() and run['machine']['kind'].endswith('cpu: 8 x cpu')
  assert set(run['versions']) == {'python', 'jax', 'jaxlib', 'flax', 'optax', 'orbax', 'grain', 'numpy'}
  assert len(run['commit'].split('-')[0]) == 40
  # The random-init runs only evaluate; their config is kept too.
  with open(os.path.join(results.run_dir(results_dir, 'test', 'random', 0), 'config.json')) as f:
    assert json.load(f)['eval']['checkpoint'] == 'random'

  # The sweep is killed while training (nearby, seed 1): it left a checkpoint, no DONE file, no results.
  killed = paper_tables.run_dir(workdir, 'nearby', 1)
  os.remove(os.path.join(killed, paper_tables.DONE))
  for name in ('table1.csv', 'table2.csv', 'eval_per_query.csv'):
    os.remove(os.path.join(killed, name))
  shutil.rmtree(results.run_dir(results_dir, 'test', 'nearby', 1))
  before = _runs_log_sizes(workdir)
  assert paper_tables.main(args) == 0
  after = _runs_log_sizes(workdir)
  assert [k for k in before if after[k] != before[k]] == [('nearby', 1)]  # only that run ran again
  assert 'resumed from' in open(os.path.join(killed, 'run.log')).read()
  table2 = reports.read_csv(os.path.join(base, 'table2.csv'))
  assert [r['method'] for r in table2] == ['Our embeddings (nearby pairs)', 'Random embeddings']
  mean, std = (float(x) for x in table2[0]['reid_map'].split(' ± '))
  per_seed = [r['reid_map'] for r in reports.read_csv(os.path.join(base, 'table2_per_seed.csv'))
              if r['run'] == 'nearby']
  assert mean == pytest.approx(np.mean(per_seed), abs=0.006) and std == pytest.approx(np.std(per_seed, ddof=1),
                                                                                         abs=0.006)
  claims_md = open(os.path.join(base, 'claims.md')).read()
  assert '| nearby > distant on 3D mAP | | | | | ±0.020 | not run | not run |' in claims_md
  row = next(line for line in claims_md.splitlines() if line.startswith('| nearby > random on 3D mAP |'))
  assert any(f'**{v}**' in row for v in ('holds', 'does not hold', 'equivalent', 'undecided'))
  # The claims' means, from the per-query CSVs, are Table 2's.
  per_seed = reports.read_csv(os.path.join(base, 'table2_per_seed.csv'))
  for name, label in (('classif_acc', 'Classif. Acc.'), ('overall_3d_ap', '3D mAP'), ('reid_map', 'Re-ID mAP')):
    row = next(line for line in claims_md.splitlines() if line.startswith(f'| nearby > random on {label} |'))
    a, b = (float(v.replace('−', '-')) for v in row.split(' | ')[1:3])
    for value, method in ((a, 'nearby'), (b, 'random')):
      want = np.mean([r[name] for r in per_seed if r['run'] == method])
      assert value == pytest.approx(want, abs=0.006 if name == 'classif_acc' else 6e-4), (name, method)
  assert '3 claims tested, 45 not run' in claims_md
  assert {'results.md', 'summary.md', 'table1.md', 'table2.md'} <= set(os.listdir(base))

  # On another machine: no workdir, only the committed results. The tables and claims are rebuilt from
  # them byte for byte, and the same command runs nothing again.
  written = _outputs(base)
  shutil.rmtree(workdir)
  assert paper_tables.main(['--preset=test', f'--results_dir={results_dir}', '--from_results']) == 0
  assert _outputs(base) == written
  assert paper_tables.main(args) == 0
  assert not os.path.exists(workdir) and _outputs(base) == written


CATEGORY_OF = {v: 'cup' if v % 2 else 'shoe' for v in range(8)}


def _write_results(root, method, seed, value, kind='CPU A, 2 cores, cpu: 1 x cpu', overrides=None):
  """A finished run's results: 8 test videos of 2 categories, 5 queries each; IoU, Re-ID score and 100 x
  value the rotation error, all `value` (+ a little per video), the 1-NN right where value > 0.5."""
  path = results.run_dir(root, 'cpu', method, seed)
  os.makedirs(path)
  name = 'Random embeddings' if method == 'random' else f'Our embeddings ({method})'
  key = 'random_init' if method == 'random' else 'model'
  per_query = [dict(video_id=f'v{v}', frame_id=f, category=CATEGORY_OF[v], iou=value + 0.01 * v,
                    neighbour_category=CATEGORY_OF[v] if value + 0.01 * v > 0.5 else 'bike',
                    reid_map=value + 0.01 * v, rotation_error_within_category=100 * value + v)
               for v in range(8) for f in range(5)]
  reports.write_csv(os.path.join(path, 'eval_per_query.csv'), per_query)
  table1 = [{'row': key, 'method': name, 'cup': value, 'shoe': value, 'overall': value}]
  if method == 'random':
    table1.append({'row': 'oracle', 'method': 'Nearest true viewpoint (oracle)', 'cup': 0.9, 'shoe': 0.9,
                   'overall': 0.9})
  reports.write_csv(os.path.join(path, 'table1.csv'), table1)
  reports.write_csv(os.path.join(path, 'table2.csv'), [{'row': key, 'method': name, 'classif_acc': 100 * value,
                                                        'overall_3d_ap': value, 'reid_map': value}])
  with open(os.path.join(path, 'config.json'), 'w') as f:
    f.write('{}')
  with open(os.path.join(path, results.RUN_JSON), 'w') as f:
    json.dump({
      'sweep_command': 'python -m siampose_jax.experiments.paper_tables --preset=cpu', 'command': ['python'],
      'preset': 'cpu', 'method': method, 'seed': seed, 'overrides': overrides or {}, 'seconds': 60.0,
      'commit': 'c0ffee', 'versions': {'python': '3.11'},
      'machine': {'kind': kind, 'platform': 'Linux', 'memory_gb': 8.0}}, f)


def test_from_results_rebuilds_every_claim_and_flags_mixed_machines(tmp_path):
  root = str(tmp_path)
  values = {'nearby': 0.6, 'distant': 0.4, 'random': 0.2, 'combined': 0.6, 'combined_shared': 0.1}
  for method, value in values.items():
    for seed in (0, 1):
      _write_results(root, method, seed, value + 0.01 * seed,
                     kind='CPU B, 4 cores, cpu: 1 x cpu' if (method, seed) == ('random', 1) else
                     'CPU A, 2 cores, cpu: 1 x cpu')
  base = os.path.join(root, 'cpu')
  assert paper_tables.main(['--preset=cpu', f'--results_dir={root}', '--from_results']) == 0
  written = _outputs(base)
  paper_tables.rebuild(base)
  assert _outputs(base) == written  # the same files on every rebuild
  text = written['claims.md'].decode()
  rows = [line for line in text.splitlines() if line.startswith('| ') and ' on ' in line.split(' | ')[0]]
  assert len(rows) == 45 + 1 + 4  # every ordering, the pose ordering, two combined models x two
  assert '14 claims tested, 36 not run' in text and 'family verdict comes from Bonferroni intervals' in text
  assert '| ntxent > tcn on Re-ID mAP | | | | | ±0.020 | not run | not run |' in text
  assert '| nearby > random on Classif. Acc. | 100.00 | 0.00 | +100.00 | [+100.00, +100.00] |' in text
  assert '| distant > nearby on Re-ID mAP |' in text and 'nearby < distant on median rotation error' in text
  assert '| combined_shared > nearby on 3D mAP |' in text
  flag = ('Runs from more than one kind of machine (continued with --allow_other_machine): CPU A, 2 cores, '
          'cpu: 1 x cpu: combined (seeds 0, 1), combined_shared (seeds 0, 1), distant (seeds 0, 1), nearby '
          '(seeds 0, 1), random (seed 0); CPU B, 4 cores, cpu: 1 x cpu: random (seed 1). Their differences')
  for result_text in (text, written['results.md'].decode(), written['summary.md'].decode()):
    assert flag in result_text
  # The spread table: nearby's values move by 0.01 between its seeds (std 0.007), the same on every test
  # video: all of it is the models'; pooled over the paper's rows and the combined model, not its alternatives.
  row = lambda m: [float(v) for v in text.split(f'| {m} | ')[1].split(' |\n')[0].split(' | ')]
  assert row('nearby')[6:9] == [0.007, 0.0, 0.007]
  pooled = row('Table 2 rows pooled (root mean square)')
  assert pooled[0] == pytest.approx(np.sqrt(np.mean([row(m)[0] ** 2 for m in ('nearby', 'distant', 'random',
                                                                              'combined')])), abs=2e-3)
  summary = written['summary.md'].decode()
  assert '| Our embeddings (nearby) | 2 | 60.50 ± 0.71 | 0.605 ± 0.007 | 0.605 ± 0.007 | 95.70 / 0.69 / 0.53 |' \
      in summary
  assert '| Our embeddings (combined) | 2 |' in summary and '| not run |' not in summary
  assert 'the 36 claims whose methods are not in the sweep yet' in summary
  assert written['claims.md'].decode().count('| not run |') == 36
  results_md = written['results.md'].decode()
  assert '- wall time of the runs: 0.17 h' in results_md and '`c0ffee` (10 runs)' in results_md
  assert '## Table 2' in results_md and '## The paper\'s claims on this benchmark' in results_md


def test_a_sweep_is_continued_on_its_kind_of_machine_only(tmp_path, monkeypatch):
  root, workdir = str(tmp_path / 'results'), str(tmp_path / 'runs')
  monkeypatch.setattr(results, '_devices', lambda: {'backend': 'gpu', 'device_kind': 'H100', 'device_count': 1})
  here = results.machine()['kind']
  assert here.endswith(', gpu: 1 x H100') and f'{results._cores()} cores' in here
  _write_results(root, 'nearby', 0, 0.5)
  args = ['--preset=cpu', '--seeds=2', '--methods=nearby', f'--workdir={workdir}', f'--results_dir={root}']
  refusal = ("its runs ['nearby/seed0'] were made on a machine of kind ['CPU A, 2 cores, cpu: 1 x cpu'], this "
             f"one is of kind '{here}'")
  with pytest.raises(SystemExit, match=re.escape(refusal)):
    paper_tables.main(args)
  assert not os.path.exists(workdir)  # refused before anything ran
  existing = {'nearby/seed0': results.read_run(results.run_dir(root, 'cpu', 'nearby', 0))}
  results.check_sweep(root, existing, here, {}, allow_other_machine=True)
  # The same kind with other settings is refused too; where the data is cached is not a setting.
  kind = existing['nearby/seed0']['machine']['kind']
  results.check_sweep(root, existing, kind, {'data.cache_dir': '/elsewhere'}, allow_other_machine=False)
  with pytest.raises(results.SweepMismatch, match="--override {}, this call has {'total_steps': '3'}"):
    results.check_sweep(root, existing, kind, {'total_steps': '3'}, allow_other_machine=False)


def test_a_sweep_is_continued_at_its_preset_only(tmp_path):
  """A run's config.json is compared with what its command builds today: a preset changed under a sweep
  (or a key added since) is refused, naming the key, unless the call overrides that key."""
  root = str(tmp_path / 'results')
  _write_results(root, 'nearby', 0, 0.5)
  _write_results(root, 'random', 0, 0.3)
  preset_dir = os.path.join(root, 'cpu')
  existing = {f'{m}/seed0': results.read_run(results.run_dir(root, 'cpu', m, 0)) for m in ('nearby', 'random')}

  def store(method, config):
    with open(os.path.join(results.run_dir(root, 'cpu', method, 0), 'config.json'), 'w') as f:
      json.dump(config, f)

  today = _nearby_config.get_config('cpu').to_dict()
  store('nearby', dict(today, seed=0))
  store('random', dict(today, seed=0, mode='eval', eval=dict(today['eval'], checkpoint='random')))
  paper_tables.check_configs(preset_dir, existing, 'cpu', {})  # the random run's own overrides are its command's
  older = json.loads(json.dumps(today))
  older['data']['image_size'] = today['data']['image_size'] - 8
  del older['optim']['momentum']
  store('nearby', older)
  with pytest.raises(results.SweepMismatch, match=re.escape(
      f"run nearby/seed0 was made with data.image_size={today['data']['image_size'] - 8}, where the 'cpu' "
      f"preset now has {today['data']['image_size']} (2 keys differ)")):
    paper_tables.check_configs(preset_dir, existing, 'cpu', {})
  with pytest.raises(results.SweepMismatch, match='made with optim.momentum=None'):
    paper_tables.check_configs(preset_dir, existing, 'cpu', {'data.image_size': '40'})
  paper_tables.check_configs(preset_dir, existing, 'cpu', {'data.image_size': '40', 'optim.momentum': '0.9'})


def test_combined_alternatives_run_on_request():
  cmd = paper_tables.command('combined_shared', 'cpu', 1, '/tmp/w')
  assert f'--config={configs.path("combined")}:cpu' in cmd and '--config.model.split_feature=False' in cmd
  assert '--config.data.pair_mode=mixed' in paper_tables.command('combined_mixed', 'cpu', 0, '/tmp/w')
  assert 'combined_mixed' not in paper_tables.TABLE2_ROWS and 'combined' in claims.COMBINED


@pytest.mark.parametrize('sweep, in_readme', [('cpu', False), ('recipe_40px/cpu', True)])
def test_the_committed_cpu_sweeps_rebuild_identically(tmp_path, sweep, in_readme):
  """results/cpu/ (the `cpu` preset's sweep) and results/recipe_40px/cpu/ (the sweep of its 40 px recipe,
  every method of Table 2) rebuild their tables, claims, summary and results.md byte for byte from their run
  files alone; the README's results block is the full sweep's summary.md."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  committed = os.path.join(repo, 'results', sweep)
  copy = str(tmp_path / 'cpu')
  shutil.copytree(committed, copy)
  for f in _outputs(copy):
    os.remove(os.path.join(copy, f))
  paper_tables.rebuild(copy)
  assert _outputs(copy) == _outputs(committed)
  with open(os.path.join(repo, 'README.md')) as f:
    readme = f.read()
  with open(os.path.join(committed, 'summary.md')) as f:
    assert (f.read().strip() in readme) == in_readme
