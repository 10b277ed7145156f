"""The figures of siampose_jax.evaluation.figures on a real evaluation of the synthetic default (the `test`
preset run shared with the other end-to-end tests): every kind is written, non-trivial, in TensorBoard too;
box edges sit where the keypoints project (projected here independently, from the intrinsics); the neighbour
grid shows the true top-k; the failure causes follow their documented rule; bad inputs fail clearly."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from input_pipeline.formats import geometry
from input_pipeline.store import frame_store
from siampose_jax.evaluation import figures as viz
from siampose_jax.evaluation import objectron
from tests import runs
from tests.test_evaluate import _to_uv

GREEN, WHITE = np.array(viz.GREEN), np.array(viz.WHITE)


@pytest.fixture(scope='module')
def evaluated(reference_run, cache_dir, tmp_path_factory):
  """A copy of the shared training run, evaluated (the evaluation writes eval_*.npz beside it)."""
  workdir = str(tmp_path_factory.mktemp('viz') / 'run')
  shutil.copytree(reference_run[0], workdir)
  config = runs.short_config(cache_dir)
  objectron.evaluate_tables(config, workdir)
  return workdir, config


@pytest.fixture(scope='module')
def figures(evaluated):
  workdir, config = evaluated
  return viz.make_figures(workdir, config=config)


def _read_png(path):
  return cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1]


def test_every_kind_is_written_and_not_trivial(evaluated, figures):
  workdir, _ = evaluated
  assert sorted(figures) == sorted(viz.KINDS)
  for kind, fig in figures.items():
    assert fig.path == os.path.join(workdir, f'viz_{kind}.png')
    image = _read_png(fig.path)
    np.testing.assert_array_equal(image, fig.image)
    h, w = image.shape[:2]
    assert h >= 400 and w >= 600, (kind, image.shape)
    colours, counts = np.unique(image.reshape(-1, 3).astype(np.int32) @ [65536, 256, 1], return_counts=True)
    assert len(colours) > 1000, (kind, len(colours))  # frames and crops, not a blank page
    assert counts.max() < 0.95 * h * w, kind  # the background does not fill the figure
  for kind in ('boxes', 'failures'):
    image = figures[kind].image
    assert np.all(image == GREEN, axis=-1).sum() > 200 and np.all(image == WHITE, axis=-1).sum() > 200, kind


def _events(logdir):
  """Every Event proto in a TensorBoard directory (TFRecord framing: length, crc, data, crc)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = []
  for name in sorted(os.listdir(logdir)):
    data = open(os.path.join(logdir, name), 'rb').read()
    pos = 0
    while pos < len(data):
      (n,) = struct.unpack('<Q', data[pos:pos + 8])
      out.append(event_pb2.Event.FromString(data[pos + 12:pos + 12 + n]))
      pos += 12 + n + 4
  return out


def test_figures_are_tensorboard_images(evaluated, figures):
  workdir, _ = evaluated
  images = {v.tag: (e.step, v.image) for e in _events(os.path.join(workdir, 'tensorboard'))
            for v in e.summary.value if v.HasField('image')}
  assert sorted(images) == sorted(f'viz/{k}' for k in viz.KINDS)
  for kind, fig in figures.items():
    step, image = images[f'viz/{kind}']
    assert step == runs.TOTAL_STEPS  # the evaluated checkpoint's step
    decoded = cv2.imdecode(np.frombuffer(image.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(decoded, fig.image)


def _segment_distance(points, segments):
  """Distance [P] of pixels [P, 2] to the nearest of the segments [S, 2, 2]."""
  a, b = segments[None, :, 0], segments[None, :, 1]
  ab = b - a
  t = np.clip(np.sum((points[:, None] - a) * ab, -1) / np.maximum(np.sum(ab * ab, -1), 1e-9), 0, 1)
  return np.linalg.norm(points[:, None] - (a + t[..., None] * ab), axis=-1).min(axis=1)


def test_box_edges_are_drawn_where_the_keypoints_project(evaluated, figures):
  """Every fitted query of the boxes page: its ground truth (green) and fitted box (white), projected
  here with the frame's intrinsics (not geometry's projection matrices), land on the PNG's drawn edges."""
  workdir, _ = evaluated
  emb = np.load(os.path.join(workdir, 'eval_embeddings.npz'))
  fits = np.load(os.path.join(workdir, 'eval_fits.npz'))
  store = frame_store.open_store(str(emb['store']))
  image = _read_png(figures['boxes'].path)
  queries = [p for p in figures['boxes'].panels if p.query >= 0 and fits['failure'][p.query] == '']
  assert len(queries) >= 9  # best, median and worst of several categories
  for panel in queries:
    rec = store['test', panel.record]
    assert emb['record'][panel.query] == panel.record
    (wx0, wy0, wx1, wy1), (ex0, ey0, ex1, ey1) = panel.window, panel.extent
    scale = np.array([(ex1 - ex0) / (wx1 - wx0), (ey1 - ey0) / (wy1 - wy0)])
    frame_hw = np.array([rec['image_width'], rec['image_height']])
    crop = image[ey0:ey1, ex0:ex1]
    for colour, points_3d in ((GREEN, rec['point_3d']), (WHITE, fits['fitted_point_3d'][panel.query])):
      px = (_to_uv(np.asarray(points_3d, np.float64), rec['intrinsics']) * frame_hw - (wx0, wy0)) * scale
      segments = px[geometry.EDGES]
      drawn = np.argwhere(np.all(crop == colour, axis=-1))[:, ::-1] + 0.5  # (x, y) pixel centres
      assert len(drawn) > 20, (panel, colour)
      # Drawn pixels lie on the box's edges, and the corners inside the panel are drawn.
      assert np.mean(_segment_distance(drawn, segments) < 3.0) > 0.95, (panel, colour)
      inside = np.all((px[1:] >= 3) & (px[1:] <= (ex1 - ex0 - 3, ey1 - ey0 - 3)), axis=1)
      near = [np.min(np.linalg.norm(drawn - c, axis=1)) < 3.0 for c in px[1:][inside]]
      assert np.mean(near) >= 0.75, (panel, colour, near)


def test_neighbour_grid_shows_the_true_top_k(evaluated, figures):
  """Each row: the query, its top-k over every frame but itself, then over the other videos' frames
  (compared by similarity, so that float rounding may order exact ties either way)."""
  workdir, _ = evaluated
  emb = np.load(os.path.join(workdir, 'eval_embeddings.npz'))
  pool = np.concatenate([emb['gallery_embeddings'], emb['embeddings']])
  keys = [('train', r) for r in emb['gallery_record']] + [('test', r) for r in emb['record']]
  where = {key: i for i, key in enumerate(keys)}
  videos = np.concatenate([emb['gallery_video_id'], emb['video_id']])
  panels = figures['neighbours'].panels
  rows = [panels[i:i + 9] for i in range(0, len(panels), 9)]
  assert len(rows) >= 6 and all(len(r) == 9 for r in rows)
  assert len({emb['category'][r[0].query] for r in rows}) == len(rows)  # queries of different categories
  for row in rows:
    q = row[0].query
    assert (row[0].split, row[0].record) == ('test', emb['record'][q])
    sim = pool @ emb['embeddings'][q]
    sim[len(emb['gallery_embeddings']) + q] = -np.inf
    other = np.where(videos == emb['video_id'][q], -np.inf, sim)
    for shown, allowed in ((row[1:5], sim), (row[5:], other)):
      idx = [where[(p.split, p.record)] for p in shown]
      assert np.all(np.isfinite(allowed[idx])) and len(set(idx)) == 4
      np.testing.assert_allclose(allowed[idx], np.sort(allowed)[::-1][:4], atol=1e-5)
    assert np.all(videos[[where[(p.split, p.record)] for p in row[5:]]] != emb['video_id'][q])


def test_failure_causes_follow_the_documented_rule():
  rng = np.random.default_rng(0)
  up = np.array([0.0, 1.0, 0.0])
  yaw = Rotation.from_rotvec(up * rng.uniform(0, 2 * np.pi))
  tilt = Rotation.from_rotvec([0.1, 0.0, 0.05])  # the ground plane need not be level in the camera frame
  rotation, scale, centre = (tilt * yaw).as_matrix(), np.array([0.3, 0.5, 0.4]), np.array([0.1, -0.2, -2.0])
  true_up = rotation[:, 1]
  truth = geometry.box_keypoints(rotation, centre, scale)

  def turned(degrees, axis=(0.0, 1.0, 0.0)):
    return (tilt * Rotation.from_rotvec(np.radians(degrees) * np.asarray(axis)) * yaw).as_matrix()

  fits = {
      'orientation': geometry.box_keypoints(turned(50), centre, scale),
      'scale': geometry.box_keypoints(rotation, centre + true_up * 0.5 * scale[1], 2.0 * scale),  # on the floor
      'ground plane': geometry.box_keypoints(rotation, centre + true_up * 0.4 * scale[1], scale),
      'unclear': geometry.box_keypoints(turned(20), centre + true_up * 0.1 * scale[1], 1.2 * scale),
      'half turn': geometry.box_keypoints(turned(180), centre + true_up * 0.1 * scale[1], 1.2 * scale),
      'hit': geometry.box_keypoints(turned(60), centre, 2 * scale),
      'failed': np.full((9, 3), np.nan),
  }
  iou = np.array([0.1] * 5 + [0.6, 0.0])
  failure = np.array([''] * 6 + ['ray_misses_plane'])
  cause = viz.failure_causes(np.stack(list(fits.values())), np.stack([truth] * len(fits)), iou, failure)
  # A half turn about the box's up axis leaves the box (as a solid) where it was: no orientation error.
  assert list(cause) == ['orientation', 'scale', 'ground plane', 'unclear', 'unclear', '',
                         'fit failed: ray misses plane']


def test_bad_requests_fail_clearly(evaluated, tmp_path):
  workdir, config = evaluated
  with pytest.raises(ValueError, match=r"unknown figure kind.*'bogus'.*pca,neighbours,boxes,failures"):
    viz.parse_what('pca,bogus')
  with pytest.raises(ValueError, match='no figure kind'):
    viz.parse_what(' , ')
  assert viz.parse_what('boxes, pca,boxes') == ('boxes', 'pca')
  out = subprocess.run([sys.executable, '-m', 'siampose_jax.evaluation.figures', f'--workdir={workdir}',
                        '--what=bogus'],
                       cwd=runs.REPO, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert out.returncode != 0 and "unknown figure kind(s) ['bogus']" in out.stderr, out.stderr[-2000:]

  # Missing evaluation files are named; a page that needs only the embeddings is drawn without the fits.
  bare = str(tmp_path / 'bare')
  os.makedirs(bare)
  shutil.copy(os.path.join(workdir, 'config.json'), bare)
  with pytest.raises(FileNotFoundError, match='eval_embeddings.npz'):
    viz.make_figures(bare, 'pca')
  shutil.copy(os.path.join(workdir, 'eval_embeddings.npz'), bare)
  with pytest.raises(FileNotFoundError, match='eval_fits.npz'):
    viz.make_figures(bare, 'neighbours,boxes')
  written = viz.visualize(bare, 'neighbours', config=config)
  assert written == {'viz_neighbours_png': os.path.join(bare, 'viz_neighbours.png')}
  assert sorted(f for f in os.listdir(bare) if f.endswith('.png')) == ['viz_neighbours.png']


def test_main_draws_the_figures_unless_turned_off(evaluated, monkeypatch):
  """siampose_jax.main's evaluation step (the tables stubbed: the workdir is evaluated already) adds the
  figures to the paths it prints, unless eval.visualize is off."""
  from siampose_jax import main  # pylint: disable=g-import-not-at-top
  workdir, config = evaluated
  monkeypatch.setattr(objectron, 'evaluate_tables', lambda config, workdir: {'table1_md': 'stub'})
  for name in os.listdir(workdir):
    if name.startswith('viz_'):
      os.remove(os.path.join(workdir, name))
  off = config.copy_and_resolve_references()
  off.eval.visualize = False
  assert main.evaluate(off, workdir) == {'table1_md': 'stub'}
  assert not any(f.startswith('viz_') for f in os.listdir(workdir))
  want = {f'viz_{k}_png': os.path.join(workdir, f'viz_{k}.png') for k in viz.KINDS}
  assert main.evaluate(config, workdir) == {'table1_md': 'stub', **want}
  assert all(os.path.exists(p) for p in want.values())


def test_workdir_on_cloud_storage(evaluated, tmp_path):
  """A gs:// workdir (epath mocked onto a local folder): the inputs are read and the figure written there."""
  from tests._gcs import mock_gcs  # pylint: disable=g-import-not-at-top
  workdir, config = evaluated
  bucket = tmp_path / 'bucket' / 'run'
  bucket.mkdir(parents=True)
  for name in ('config.json', 'eval_embeddings.npz'):
    shutil.copy(os.path.join(workdir, name), bucket)
  with mock_gcs(str(tmp_path)) as calls:
    assert viz.visualize('gs://bucket/run', 'pca') == {'viz_pca_png': 'gs://bucket/run/viz_pca.png'}
  assert calls['gs'] > 0
  np.testing.assert_array_equal(_read_png(str(bucket / 'viz_pca.png')).shape[2], 3)
  assert any(v.tag == 'viz/pca' for e in _events(str(bucket / 'tensorboard')) for v in e.summary.value)
