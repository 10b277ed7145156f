"""The inspect CLI: JSON lines for frame stores and Objectron roots, layout detection, summary."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from input_pipeline import synthetic
from input_pipeline.store import frame_store
from input_pipeline.store import ingest
from input_pipeline.store import inspect as inspect_cli

NUM_FRAMES = 3
SEED = 1
REQUIRED = {'video_id': None, 'frame_id': None, 'category': None, 'instance_id': None,
            'point_2d': (9, 2), 'point_3d': (9, 3), 'rotation': (3, 3), 'translation': (3,),
            'scale': (3,), 'intrinsics': (3, 3), 'plane_center': (3,), 'plane_normal': (3,),
            'image_height': None, 'image_width': None}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('objectron'))
  synthetic.generate(path, videos_per_category=2, frames_per_video=NUM_FRAMES, instances_per_category=1,
                     test_fraction=0.5, seed=SEED, num_shards=1, categories=('shoe',),
                     formats=('records', 'raw'))
  return path


def _lines(capsys, argv):
  assert inspect_cli.main(argv) == 0
  return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _check_keys(row):
  for key, shape in REQUIRED.items():
    assert key in row, key
    if shape:
      assert np.asarray(row[key]).shape == shape, key


def test_raw_root_json_matches_the_renderer(root, capsys):
  rows = _lines(capsys, [root, '--json', '--format', 'raw'])
  truth = {(r.video_id, r.frame_id): r for v in (0, 1) for r in synthetic.render_video(
      'shoe', 0, v, num_frames=NUM_FRAMES, seed=SEED)}
  assert sorted((r['video_id'], r['frame_id']) for r in rows) == sorted(truth)
  for row in rows:
    _check_keys(row)
    ref = truth[row['video_id'], row['frame_id']]
    assert row['category'] == 'shoe' and row['instance_id'] == 0 and row['instance_num'] == 1
    assert row['split'] == ('train' if row['video_id'].endswith('/0') else 'test')
    assert (row['image_height'], row['image_width']) == (640, 480)
    np.testing.assert_allclose(row['point_2d'], ref.point_2d[0, :, :2], atol=1e-6)
    np.testing.assert_allclose(row['depth'], ref.point_2d[0, :, 2], atol=1e-5)
    for key in ('point_3d', 'rotation', 'translation', 'scale', 'intrinsics', 'plane_center',
                'plane_normal'):
      np.testing.assert_allclose(row[key], np.asarray(getattr(ref, key))[0] if key in (
          'point_3d', 'rotation', 'translation', 'scale') else getattr(ref, key), atol=1e-5, rtol=1e-6)
  assert len(_lines(capsys, [root, '--json', '--format', 'raw', '--limit', '2'])) == 2


def test_layout_detection(root, tmp_path):
  assert inspect_cli.detect_layout(root) == 'records'  # the first of several layouts
  os.makedirs(tmp_path / 'r' / 'annotations')
  with pytest.raises(FileNotFoundError, match=r'r: not a frame store .* no <class>_annotations_.* index files in '
                     r'\S*/r/v1/index or \S*/r/index'):
    inspect_cli.detect_layout(str(tmp_path / 'r'))  # data without index files
  os.makedirs(tmp_path / 'r' / 'v1' / 'index')  # the bucket's place for them
  (tmp_path / 'r' / 'v1' / 'index' / 'cup_annotations_test').write_text('cup/batch-1/2\n')
  assert inspect_cli.detect_layout(str(tmp_path / 'r')) == 'raw'


def test_store_json_via_subprocess_and_summary(root, tmp_path, capsys):
  store_dir = str(tmp_path / 'store')
  ingest.ingest_dataset(root, store_dir, fmt='records', subsample=1)
  out = subprocess.run([sys.executable, '-m', 'input_pipeline.store.inspect', store_dir, '--json', '--limit', '4'],
                       cwd=REPO, capture_output=True, text=True, check=True).stdout
  rows = [json.loads(line) for line in out.splitlines()]
  assert len(rows) == 4
  store = frame_store.open_store(store_dir)
  for i, row in enumerate(rows):
    _check_keys(row)
    rec = store[row['split'], i if row['split'] == store.splits[0] else i - store.num_frames(store.splits[0])]
    assert (row['video_id'], row['frame_id']) == (rec['video_id'], rec['frame_id'])
    np.testing.assert_allclose(row['point_2d'], rec['point_2d'][:, :2])
    np.testing.assert_allclose(row['rotation'], rec['rotation'])
  assert inspect_cli.main([store_dir]) == 0
  text = capsys.readouterr().out.split()
  # header, then 'split category videos frames' rows, then the total
  assert text[:6] == [store_dir, '(store)', 'split', 'category', 'videos', 'frames']
  assert text[6:] == ['test', 'shoe', '1', str(NUM_FRAMES), 'train', 'shoe', '1', str(NUM_FRAMES),
                      'total', '2', str(2 * NUM_FRAMES)]
