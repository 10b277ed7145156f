"""The Table 2 baselines end to end: configs/tcn.py and configs/ntxent.py train through the same loop and
evaluate under their own names."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from siampose_jax.configs import combined, ntxent, tcn
from siampose_jax import encoder, train
from siampose_jax.evaluation import objectron


def _table2_methods(path):
  with open(path) as f:
    return [row['method'] for row in csv.DictReader(f)]


def _short_config(module, cache_dir):
  c = module.get_config('test')
  c.data.cache_dir = cache_dir
  c.num_devices = 1  # the sharded step is tested in test_step.py; one device compiles faster
  c.update(total_steps=3, log_every_steps=1, checkpoint_every_steps=3, monitor_every_steps=3)
  return c


def test_tcn_trains_on_triplets_and_evaluates_as_tcn(cache_dir, tmp_path):
  c = _short_config(tcn, cache_dir)
  out = train.train_and_evaluate(c, str(tmp_path))
  params = out['state'].params
  assert 'predictor' not in params and set(params) == {'encoder', 'projector'}
  m = out['metrics']
  assert m['final_step'] == 3 and 0.0 <= m['loss'] <= 2.2  # hinge of unit-vector distances: <= 2 + margin
  written = objectron.evaluate_tables(c, str(tmp_path))
  assert _table2_methods(written['table2_csv']) == ['TCN', 'Random embeddings']
  # The workdir's config.json rebuilds the predictor-less model.
  enc = encoder.load_encoder(str(tmp_path))
  assert not enc.model.use_predictor and enc.step == 3
  emb = enc(np.zeros((3, 32, 32, 3), np.uint8))
  np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, rtol=1e-5)


def test_ntxent_trains_and_evaluates_as_ntxent(cache_dir, tmp_path):
  c = _short_config(ntxent, cache_dir)
  out = train.train_and_evaluate(c, str(tmp_path))
  assert 'predictor' not in out['state'].params
  assert out['metrics']['loss'] > 0
  written = objectron.evaluate_tables(c, str(tmp_path))
  assert _table2_methods(written['table2_csv']) == ['NT-Xent', 'Random embeddings']


def test_combined_model_trains_two_heads_and_reidentifies_with_its_identity_half(cache_dir, tmp_path):
  c = _short_config(combined, cache_dir)
  out = train.train_and_evaluate(c, str(tmp_path))
  assert set(out['state'].params) == {'encoder', 'projector', 'predictor', 'projector2', 'predictor2'}
  written = objectron.evaluate_tables(c, str(tmp_path))
  name = _table2_methods(written['table2_csv'])[0]
  assert name.startswith('Our embeddings (combined: nearby head on the pose half')
  saved = np.load(written['embeddings_npz'])
  half = saved['embeddings'].shape[1]
  assert saved['reid_embeddings'].shape[1] == half and not np.allclose(saved['embeddings'],
                                                                        saved['reid_embeddings'])
  from siampose_jax.evaluation import metrics
  with open(written['table2_csv']) as f:
    row = next(csv.DictReader(f))
  want = metrics.reid_metrics(saved['reid_embeddings'], saved['video_id'], saved['frame_index'])['reid_map']
  assert float(row['reid_map']) == pytest.approx(want, rel=1e-6)
  other = metrics.reid_metrics(saved['embeddings'], saved['video_id'], saved['frame_index'])['reid_map']
  assert other != pytest.approx(want)  # it really is the other half
