"""train -> resume -> eval with the workdir and the frame store on gs:// (etils.epath calls routed to a local
folder by etils.epath.testing.mock_epath): config.json, metrics, TensorBoard events, curves, tables and the
store all go through epath.

What cannot be mocked that way: Orbax writes and reads array data with tensorstore, its own storage layer
(C++, with its own gs:// driver), which mock_epath does not reach. The test therefore points the checkpoint
directory at the very folder the mock maps the workdir's checkpoints/ to; everything else stays gs://.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from etils import epath
from siampose_jax import checkpointing, reports, train
from siampose_jax.evaluation import objectron
from tests import _gcs, runs


def test_gs_workdir_and_store_train_resume_evaluate(cache_dir, tmp_path, monkeypatch):
  cloud = tmp_path / 'cloud'
  monkeypatch.chdir(tmp_path)  # a path mistaken for a local one would appear here as ./gs:/...
  monkeypatch.setenv('SIAMPOSE_LOCAL_CACHE', str(tmp_path / 'local'))
  workdir, bucket = 'gs://bucket/runs/distant', cloud / 'bucket'
  monkeypatch.setattr(checkpointing, 'checkpoint_dir',
                      lambda w: epath.Path(str(w).replace('gs://', f'{cloud}/', 1)) / 'checkpoints')
  config = runs.short_config(cache_dir)  # as the reference run's: its compiled programs are in the cache
  config.data.store_dir = 'gs://bucket/stores/synthetic'

  stop_at_4 = lambda self, step: step == 4  # a preemption notice at step 4: checkpoint and stop
  with _gcs.mock_gcs(str(cloud)) as calls:
    monkeypatch.setattr(checkpointing.PreemptionNotice, 'reached', stop_at_4)
    first = train.train_and_evaluate(config, workdir)
    assert first['metrics']['preempted_at_step'] == 4
    monkeypatch.undo()  # (chdir and env too: set them again)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('SIAMPOSE_LOCAL_CACHE', str(tmp_path / 'local'))
    monkeypatch.setattr(checkpointing, 'checkpoint_dir',
                        lambda w: epath.Path(str(w).replace('gs://', f'{cloud}/', 1)) / 'checkpoints')
    resumed = train.train_and_evaluate(config, workdir)
    written = objectron.evaluate_tables(config, workdir)
  assert calls['gs'] > 0 and not os.path.exists(tmp_path / 'gs:')
  assert resumed['metrics']['final_step'] == runs.TOTAL_STEPS

  run = bucket / 'runs' / 'distant'
  rows = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in rows if 'loss' in r] == list(range(1, runs.TOTAL_STEPS + 1))  # across the restart
  assert json.loads((run / 'config.json').read_text())['data']['store_dir'] == config.data.store_dir
  assert sorted(map(int, os.listdir(run / 'checkpoints'))) == [6, 9, 10]  # the 3 kept of 3, 4 (preempted), 6, 9, 10
  assert any(n.startswith('events.out.tfevents') for n in os.listdir(run / 'tensorboard'))
  for name in ('metrics.csv', 'training_curves.png', 'table1.md', 'table2.csv', 'eval_per_query.csv',
               'ap_curve.png', 'retrieval.md', 'eval_embeddings.npz', 'eval_fits.npz'):
    assert (run / name).stat().st_size > 0, name
  assert written['table1_md'] == f'{workdir}/table1.md'
  saved = reports.read_npz(run / 'eval_embeddings.npz')
  np.testing.assert_allclose(np.linalg.norm(saved['embeddings'], axis=1), 1.0, rtol=1e-5)
  assert len(reports.read_npz(run / 'eval_fits.npz')['iou']) == len(saved['embeddings'])
  store = bucket / 'stores' / 'synthetic'
  assert (store / 'index.json').exists() and os.listdir(store / 'train')
  with pytest.raises(FileNotFoundError):  # nothing was staged at the literal path
    os.stat(tmp_path / 'gs:' / 'bucket')
