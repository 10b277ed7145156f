"""The random baselines over many draws: their mean is the floor computed over every allowed training frame."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from siampose_jax import configs, reports
from siampose_jax.configs import nearby
from siampose_jax.evaluation import methods, objectron
from siampose_jax.experiments import random_draws
from tests import runs


def _arrays(cache_dir):
  config = nearby.get_config('test')
  config.data.cache_dir = cache_dir
  return objectron.gallery_and_queries(config)[1:]


def _brute_force_floor(gallery, queries, in_category):
  """Overall AP@0.5 expected from a uniform pick: every query fitted from every allowed training frame."""
  g_cat, q_cat = gallery['category'], queries['category']
  pools = [np.flatnonzero(g_cat == c) if in_category else np.arange(len(g_cat)) for c in q_cat]
  hits = np.zeros(len(q_cat))
  for j in range(max(len(p) for p in pools)):  # round j: each query's j-th allowed frame, if it has one
    has = np.array([j < len(p) for p in pools])
    nn = np.array([p[j] if j < len(p) else p[0] for p in pools])
    iou = objectron.fit_and_score(gallery, queries, nn)['iou']
    hits += np.where(has, iou > 0.5, 0)
  expected = hits / np.array([len(p) for p in pools])
  return np.mean([expected[q_cat == c].mean() for c in np.unique(q_cat)])


def test_mean_of_draws_is_the_floor_over_every_allowed_frame(cache_dir):
  gallery, queries = _arrays(cache_dir)
  rows = random_draws.draw_rows(gallery, queries, draws=200)
  for key in methods.RANDOM_BASELINES:
    overall = np.array([r['overall'] for r in rows if r['row'] == str(key)])
    assert len(overall) == 200 and overall.std() > 0  # the draws differ
    want = _brute_force_floor(gallery, queries, key.uses_labels)
    assert overall.mean() == pytest.approx(want, abs=max(0.01, 4 * overall.std() / np.sqrt(200)))
  md = random_draws.summary_md(rows)
  assert 'mean ± std over 200 draws' in md and md.count('| Random') == 2


def test_cli_writes_one_row_per_draw_and_rejects_a_single_draw(cache_dir, tmp_path):
  cmd = [sys.executable, '-m', 'siampose_jax.experiments.random_draws', f'--config={configs.path("nearby")}:test',
         f'--config.data.cache_dir={cache_dir}', f'--workdir={tmp_path}']
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  out = subprocess.run(cmd + ['--draws=2'], cwd=runs.REPO, env=env, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = reports.read_csv(os.path.join(tmp_path, 'random_draws.csv'))
  assert sorted((r['method'], r['seed']) for r in rows) == [
      ('Random fit', 0), ('Random fit', 1), ('Random in-category fit', 0), ('Random in-category fit', 1)]
  assert 'random_draws.md' in out.stdout
  bad = subprocess.run(cmd + ['--draws=1'], cwd=runs.REPO, env=env, capture_output=True, text=True,
                       timeout=300)
  assert bad.returncode != 0 and '--draws must be >= 2' in bad.stderr
