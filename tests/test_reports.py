"""Report files: tables written and read back, and the multi-run combination of the paper's tables."""
from __future__ import annotations

import os

import pytest

from siampose_jax import reports
from siampose_jax.evaluation import tables

CATS = ('cup', 'shoe')


def _run(workdir, name, ap, with_baselines=True):
  t1 = [{'row': 'model', 'method': name, 'cup': ap, 'shoe': ap / 2, 'overall': ap * 0.75}]
  t2 = [{'row': 'model', 'method': name, 'classif_acc': 90.0, 'overall_3d_ap': ap * 0.75, 'reid_map': 0.5,
         'reid_top1': 0.9, 'frame_jitter': 1.5}]
  if with_baselines:
    t1.append({'row': 'random_fit', 'method': 'Random fit', 'cup': 0.1, 'shoe': 0.0, 'overall': 0.05})
    t2.append({'row': 'random_init', 'method': 'Random embeddings', 'classif_acc': 30.0, 'overall_3d_ap': 0.1, 'reid_map': 0.03,
               'reid_top1': 0.2, 'frame_jitter': 9.0})
  os.makedirs(workdir, exist_ok=True)
  return tables.write_tables(str(workdir), t1, t2, CATS)


def test_tables_round_trip_and_markdown_layout(tmp_path):
  out = _run(tmp_path, 'Our embeddings (nearby pairs)', 0.6)
  rows = reports.read_csv(out['table1_csv'])
  assert rows[0] == {'row': 'model', 'method': 'Our embeddings (nearby pairs)', 'cup': 0.6, 'shoe': 0.3,
                     'overall': 0.6 * 0.75}
  assert 'model' not in open(out['table1_md']).read()  # the key is for programs, the name for readers
  md = open(out['table2_md']).read().splitlines()
  # The paper's columns first, then the extra ones this run has.
  assert md[2] == '| Method | Classif. Acc. | 3D mAP | Re-ID mAP | Re-ID top-1 | Top-1 frame jitter |'
  assert md[4].startswith('| Our embeddings (nearby pairs) | 90.00 | 0.45 | 0.50 |')
  assert any('reference code' in line for line in md)  # the note on the Re-ID definition


def test_combine_keeps_each_method_once_and_identical_baselines_once(tmp_path):
  a, b = tmp_path / 'nearby', tmp_path / 'distant'
  _run(a, 'Our embeddings (nearby pairs)', 0.6)
  _run(b, 'Our embeddings (distant pairs)', 0.4)
  out = tables.combine_tables([str(a), str(b)], str(tmp_path / 'all'), CATS)
  methods = [r['method'] for r in reports.read_csv(out['table1_csv'])]
  assert methods == ['Our embeddings (nearby pairs)', 'Random fit', 'Our embeddings (distant pairs)']
  methods2 = [r['method'] for r in reports.read_csv(out['table2_csv'])]
  assert methods2 == ['Our embeddings (nearby pairs)', 'Random embeddings', 'Our embeddings (distant pairs)']
  assert '"Random fit" is identical in the 2 runs that have it.' in open(out['table1_md']).read()
  with pytest.raises(FileNotFoundError, match='evaluate'):
    tables.combine_tables([str(a), str(tmp_path / 'never_evaluated')], str(tmp_path / 'x'), CATS)


def test_combine_keeps_differing_baselines_and_repeated_methods_per_run(tmp_path):
  a, b = tmp_path / 'seed0', tmp_path / 'seed1'
  _run(a, 'Our embeddings (nearby pairs)', 0.6)
  out_b = _run(b, 'Our embeddings (nearby pairs)', 0.5)
  rows = reports.read_csv(out_b['table2_csv'])  # another seed: another random-init baseline
  rows[1]['reid_map'] = 0.04
  reports.write_csv(out_b['table2_csv'], rows)
  out = tables.combine_tables([str(a), str(b)], str(tmp_path / 'all'), CATS)
  methods2 = [r['method'] for r in reports.read_csv(out['table2_csv'])]
  assert methods2 == ['Our embeddings (nearby pairs) [seed0]', 'Random embeddings [seed0]',
                      'Our embeddings (nearby pairs) [seed1]', 'Random embeddings [seed1]']
  methods1 = [r['method'] for r in reports.read_csv(out['table1_csv'])]
  assert methods1 == ['Our embeddings (nearby pairs) [seed0]', 'Random fit',
                      'Our embeddings (nearby pairs) [seed1]']


def test_training_reports_write_csv_and_png(tmp_path):
  log = tmp_path / 'metrics.jsonl'
  log.write_text('{"step": 1, "loss": 0.1}\n{"step": 2, "loss": -0.2, "knn_category_acc": 0.3}\n')
  out = reports.training_reports(str(tmp_path))
  rows = reports.read_csv(out['metrics_csv'])
  assert [r['loss'] for r in rows] == [0.1, -0.2] and rows[1]['knn_category_acc'] == 0.3
  assert open(out['curves_png'], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
