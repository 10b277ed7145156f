"""End to end on the embedded synthetic default: train -> checkpoints -> evaluation tables."""
from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest

from input_pipeline.formats.frame_record import CATEGORIES
from siampose_jax import reports, train
from siampose_jax.evaluation import objectron
from siampose_jax.models import resnet
from tests import runs


def _config(cache_dir, **overrides):
  return runs.short_config(cache_dir, **overrides)


def _losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = list(map(json.loads, f))
  assert rows[0]['step'] == 0 and 'knn_category_acc' in rows[0]  # the monitor before training
  return {r['step']: r['loss'] for r in rows if 'loss' in r}


def test_train_and_evaluate(cache_dir, reference_run):
  """Resuming (SIGTERM, SIGKILL) is tested in test_preemption.py, on real processes."""
  config = _config(cache_dir)
  ref_dir, ref = reference_run
  ref_losses = _losses(ref_dir)
  assert sorted(ref_losses) == list(range(1, config.total_steps + 1))
  assert os.path.exists(ref['metrics']['metrics_csv']) and os.path.exists(ref['metrics']['curves_png'])
  assert glob.glob(os.path.join(ref_dir, 'tensorboard', 'events.out.tfevents.*'))
  assert 0.0 <= ref['metrics']['knn_category_acc'] <= 1.0
  assert 1.0 <= ref['metrics']['embedding_rank'] <= resnet.feature_dim(config.model.backbone, config.model.width)

  # Evaluation of the finished run writes Tables 1 and 2 with the baselines.
  written = objectron.evaluate_tables(config, ref_dir)
  for key in ('table1_md', 'table1_csv', 'table2_md', 'table2_csv', 'per_query_csv', 'ap_curve_csv',
              'retrieval_md', 'embeddings_npz', 'fits_npz'):
    assert os.path.exists(written[key]), key
  table1 = reports.read_csv(written['table1_csv'])
  n_train = len(_store_videos(config, 'train'))
  ours = 'Our embeddings (distant pairs)'
  assert [r['method'] for r in table1] == [
      ours, f'{ours} (10% of videos: 1 of {n_train})', f'{ours} (1% of videos: 1 of {n_train})',
      'Random embeddings', 'Random fit', 'Random in-category fit', 'Nearest true viewpoint (oracle)',
      f'{ours} (1-NN within the true category; uses the label)',
      'Random embeddings (1-NN within the true category; uses the label)']
  assert list(table1[0])[-5:] == ['overall', 'failed_fits', 'rotation_error_median', 'azimuth_error',
                                  'elevation_error']
  # The table's median rotation error is the median of the per-query values, failed fits at 180 degrees.
  per_query = reports.read_csv(written['per_query_csv'])
  rotation = np.array([r['rotation_error'] for r in per_query])
  assert table1[0]['rotation_error_median'] == pytest.approx(np.median(rotation))
  failed = np.array([r['failure'] != '' for r in per_query])
  assert np.all(rotation[failed] == 180.0) and np.all((rotation[~failed] >= 0) & (rotation[~failed] <= 120.0))
  within = table1[[r['row'] for r in table1].index('model/within_category')]
  assert within['rotation_error_median'] == pytest.approx(
      np.median([r['rotation_error_within_category'] for r in per_query]))
  assert within['overall'] == pytest.approx(objectron.per_category_ap(
      np.array([r['iou_within_category'] for r in per_query]),
      np.array([CATEGORIES.index(r['category']) for r in per_query]))['overall'])
  # The Re-ID mAP of Table 2 is the reference's formula on the test embeddings the evaluation saved.
  from tests.test_metrics import _reference_reid_loop
  saved = np.load(written['embeddings_npz'])
  test_videos = _store_videos(config, 'test')
  assert len(saved['embeddings']) == sum(len(v['frame_ids']) for v in test_videos)
  assert set(saved['video_id']) == {v['video_id'] for v in test_videos}
  np.testing.assert_allclose(np.linalg.norm(saved['embeddings'], axis=1), 1.0, rtol=1e-5)
  want_reid = _reference_reid_loop(saved['embeddings'], saved['video_id'], saved['frame_index'])[0]
  table2 = reports.read_csv(written['table2_csv'])
  assert table2[0]['method'] == ours and table2[0]['reid_map'] == pytest.approx(want_reid, rel=1e-6)
  fits = np.load(written['fits_npz'])
  np.testing.assert_allclose(fits['iou'], [r['iou'] for r in reports.read_csv(written['per_query_csv'])])


def _store_videos(config, split):
  from input_pipeline.store import frame_store, ingest  # pylint: disable=g-import-not-at-top
  return frame_store.open_store(ingest.prepare_store(config.data)).videos(split)


def test_cli_rejects_unknown_config_key():
  out = runs.cli('--config=configs/distant.py:test', '--config.data.no_such_key=1')
  assert out.returncode != 0
  assert 'no_such_key' in out.stderr


def test_cli_rejects_bad_mode_and_preset():
  out = runs.cli('--config=configs/distant.py:test', '--config.mode=fit')
  assert out.returncode != 0 and "config.mode='fit'" in out.stderr
  out = runs.cli('--config=configs/distant.py:tpu_huge')
  assert out.returncode != 0 and 'unknown config preset' in out.stderr


def test_imagenet_baseline_row_beside_the_trained_model(reference_run, cache_dir, tmp_path):
  import safetensors.numpy
  from tests.test_convert import random_state_dict
  weights = str(tmp_path / 'resnet50.safetensors')
  safetensors.numpy.save_file(random_state_dict('resnet50'), weights)
  ref_dir, _ = reference_run
  config = _config(cache_dir)
  config.eval.checkpoint = ref_dir
  config.eval.imagenet_weights = weights
  written = objectron.evaluate_tables(config, str(tmp_path / 'eval'))
  rows = reports.read_csv(written['table2_csv'])
  assert [r['row'] for r in rows] == ['model', 'random_init', 'imagenet']
  assert [r['method'] for r in rows] == ['Our embeddings (distant pairs)', 'Random embeddings',
                                         'ImageNet embeddings']


def test_monitor_runs_on_its_own_schedule(cache_dir, tmp_path):
  """The online 1-NN monitor runs every monitor_every_steps (and at the end) even on steps that are
  not logged, and logged steps without it carry no accuracy."""
  workdir = str(tmp_path / 'monitor')
  train.train_and_evaluate(_config(cache_dir, total_steps=6, log_every_steps=4, monitor_every_steps=3),
                           workdir)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = list(map(json.loads, f))
  assert [r['step'] for r in rows if 'knn_category_acc' in r] == [0, 3, 6]
  assert [r['step'] for r in rows if 'loss' in r] == [4, 6]
