"""UCF101: the raw-layout reader on real .avi files written here, the TFDS source (mocked), clip ingest and
pair sampling, R@k against brute force, and one tiny train + Table 3 run on the synthetic action set."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from input_pipeline.formats import ucf101
from input_pipeline.formats.tfrecord import RecordError
from input_pipeline.loader import augment, datasets
from input_pipeline.store import clips, frame_store
from input_pipeline.synthetic import actions

CLASSES = ('Alpha', 'HandstandPushups')
GROUPS = (1, 8, 15, 22)   # one test group per official split, and one always in training
FRAMES, HEIGHT, WIDTH = 6, 24, 32


def _level(label: int, group: int, frame: int) -> int:
  """The grey level of a test clip's frame: tells class, group and frame apart after decoding."""
  return 20 + 30 * frame + 3 * group + label


def _write_avi(path, frames):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 25.0, (WIDTH, HEIGHT))
  assert writer.isOpened()
  for f in frames:
    writer.write(f)
  writer.release()


@pytest.fixture(scope='module')
def raw_root(tmp_path_factory):
  """2 classes x 4 groups x 1 clip of 6 flat grey frames, with the official list files (CRLF, as UCF
  ships them) written by hand; the second class is listed as 'HandStandPushups' (UCF's case mix-up)."""
  root = str(tmp_path_factory.mktemp('ucf101'))
  lists = os.path.join(root, 'ucfTrainTestlist')
  os.makedirs(lists)
  with open(os.path.join(lists, 'classInd.txt'), 'w', newline='') as f:
    f.write(''.join(f'{i + 1} {c}\r\n' for i, c in enumerate(CLASSES)))
  entries = []
  for label, cls in enumerate(CLASSES):
    for g in GROUPS:
      listed = f'v_{"HandStandPushups" if label else cls}_g{g:02d}_c01.avi'
      frames = [np.full((HEIGHT, WIDTH, 3), _level(label, g, i), np.uint8) for i in range(FRAMES)]
      _write_avi(os.path.join(root, 'UCF-101', cls, f'v_{cls}_g{g:02d}_c01.avi'), frames)
      entries.append((f'{cls}/{listed}', label, g))
  for n, test_groups in ((1, range(1, 8)), (2, range(8, 15)), (3, range(15, 22))):
    with open(os.path.join(lists, f'trainlist0{n}.txt'), 'w', newline='') as f:
      f.write(''.join(f'{p} {l + 1}\r\n' for p, l, g in entries if g not in test_groups))
    with open(os.path.join(lists, f'testlist0{n}.txt'), 'w', newline='') as f:
      f.write(''.join(f'{p}\r\n' for p, l, g in entries if g in test_groups))
  return root


@pytest.mark.parametrize('split,test_group', [(1, 1), (2, 8), (3, 15)])
def test_raw_reader_reads_each_official_split(raw_root, split, test_group):
  assert ucf101.read_class_index(raw_root) == CLASSES
  for subset in ucf101.SUBSETS:
    got = list(ucf101.raw_clips(raw_root, subset, split))
    want_groups = [test_group] if subset == 'test' else [g for g in GROUPS if g != test_group]
    assert sorted((c.label, c.group) for c in got) == sorted((l, g) for l in range(2) for g in want_groups)
    for clip in got:
      assert clip.frames.shape == (FRAMES, HEIGHT, WIDTH, 3) and clip.frames.dtype == np.uint8
      means = clip.frames.reshape(FRAMES, -1).mean(1)
      np.testing.assert_allclose(means, [_level(clip.label, clip.group, i) for i in range(FRAMES)], atol=2.5)
      assert clip.video_id.startswith(CLASSES[clip.label] + '/v_')


def test_raw_reader_errors_name_the_file(raw_root, tmp_path):
  with pytest.raises(ValueError, match='split 4'):
    ucf101.read_split_list(raw_root, 'train', 4)
  # A missing and a corrupt clip: errors that name the file.
  import shutil  # pylint: disable=g-import-not-at-top
  root = str(tmp_path / 'copy')
  shutil.copytree(raw_root, root)
  missing = os.path.join(root, 'UCF-101', 'Alpha', 'v_Alpha_g08_c01.avi')
  os.remove(missing)
  with pytest.raises(FileNotFoundError, match='v_Alpha_g08_c01.avi'):
    list(ucf101.raw_clips(root, 'train', 1))
  corrupt = os.path.join(root, 'UCF-101', 'Alpha', 'v_Alpha_g01_c01.avi')
  with open(corrupt, 'wb') as f:
    f.write(b'not a video' * 50)
  with pytest.raises(RecordError, match='v_Alpha_g01_c01.avi'):
    list(ucf101.raw_clips(root, 'test', 1))
  # A train-list label that contradicts classInd.txt, and a malformed classInd line: file and line named.
  train_list = os.path.join(root, 'ucfTrainTestlist', 'trainlist02.txt')
  with open(train_list, 'a') as f:
    f.write('Alpha/v_Alpha_g22_c02.avi 2\n')
  with pytest.raises(RecordError, match=r'trainlist02.txt line \d+: label 2'):
    ucf101.read_split_list(root, 'train', 2)
  with open(os.path.join(root, 'ucfTrainTestlist', 'classInd.txt'), 'a') as f:
    f.write('7 Gamma\n')
  with pytest.raises(RecordError, match='classInd.txt line 3'):
    ucf101.read_class_index(root)


def test_clip_ingest_and_pair_modes(raw_root, tmp_path):
  """Frames stored centre-cropped; nearby = the next frame of the same clip (the previous at the end),
  distant = any frame of the same clip."""
  info = clips.ingest_clips(str(tmp_path / 'store'), root=raw_root, split=1, frame_size=16)
  assert info.splits['train']['num_videos'] == 6 and info.splits['test']['num_videos'] == 2
  store = frame_store.open_store(info.path)
  assert store.index['categories'] == list(CLASSES)
  rec = store['test', 0]
  assert rec['image'].shape == (16, 16, 3) and 'point_2d' not in rec
  t = datasets.PairTransform(store, 'train', 'nearby', 16, aug=augment.NO_AUG)
  rng = np.random.default_rng(0)
  videos = store.videos('train')
  for v in videos:
    for pos, anchor in enumerate(v['records']):
      partner = t.sample(anchor, rng)[1]
      assert partner == v['records'][pos + 1 if pos + 1 < len(v['records']) else pos - 1]
  out = t.random_map(videos[0]['records'][2], rng)  # the pixels are those frames: grey levels 2 and 3
  label, group = videos[0]['category'], ucf101.group_of(videos[0]['video_id'] + '.avi')
  assert abs(out['view1'].mean() - _level(label, group, 2)) < 3
  assert abs(out['view2'].mean() - _level(label, group, 3)) < 3
  distant = datasets.PairTransform(store, 'train', 'distant', 16, aug=augment.NO_AUG)
  for v in videos:
    seen = {distant.sample(v['records'][0], rng)[1] for _ in range(60)}
    assert seen <= set(v['records']) and len(seen) > FRAMES // 2


def test_tfds_source_with_mock_data(tmp_path):
  """The TFDS path end to end on tfds.testing.mock_data (needs TensorFlow: in the `test` extra)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=3):
    got = list(ucf101.tfds_clips('train', 2))
    assert len(got) == 3 and len({c.video_id for c in got}) == 3
    names = ucf101.tfds_classes(2)
    for c in got:
      assert c.frames.ndim == 4 and c.frames.shape[-1] == 3 and c.frames.dtype == np.uint8
      assert 0 <= c.label < 101 and c.video_id.startswith(names[c.label] + '/')
    info = clips.ingest_clips(str(tmp_path / 'store'), source='tfds', split=2, frame_size=8)
  assert len(names) == 101 and names[0] == 'ApplyEyeMakeup'
  assert info.splits['train']['num_videos'] == 3 and info.splits['test']['num_videos'] == 3
  store = frame_store.open_store(info.path)
  assert store['train', 0]['image'].shape == (8, 8, 3)
  assert sum(len(v['records']) for v in store.videos('train')) == sum(len(c.frames) for c in got)


def _brute_force_recall(q, g, q_labels, g_labels, ks):
  """R@k from a float64 cosine ranking, ties to the lower gallery index."""
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  g = g / np.linalg.norm(g, axis=1, keepdims=True)
  out = {}
  for k in ks:
    hits = 0
    for i in range(len(q)):
      score = g @ q[i]
      order = sorted(range(len(g)), key=lambda j: (-score[j], j))
      hits += any(g_labels[j] == q_labels[i] for j in order[:k])
    out[k] = hits / len(q)
  return out


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_recall_at_k_equals_brute_force(seed):
  from siampose_jax.evaluation import ucf101 as ucf101_eval  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  n_classes, dim = 4, 6
  g = rng.normal(size=(40, dim))
  g[rng.choice(40, 12, replace=False)] = g[rng.choice(40, 12)]   # exact duplicates: tied scores
  g_labels = rng.integers(n_classes, size=40)
  q = np.concatenate([rng.normal(size=(20, dim)), g[rng.choice(40, 10)]])  # some queries equal a gallery row
  q_labels = rng.integers(n_classes, size=30)
  ks = (1, 2, 5, 10, 50)
  got, nn = ucf101_eval.retrieve(q, g, q_labels, g_labels, ks)
  assert nn.shape == (30, 40)
  assert got == pytest.approx(_brute_force_recall(q, g, q_labels, g_labels, ks))


def test_recall_ties_go_to_the_lower_gallery_index():
  from siampose_jax.evaluation import ucf101 as ucf101_eval  # pylint: disable=g-import-not-at-top
  g = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  recall, nn = ucf101_eval.retrieve(np.array([[1.0, 0.0]]), g, np.array([1]), np.array([0, 1, 1]), ks=(1, 2))
  assert nn[0].tolist() == [0, 1] and recall == {1: 0.0, 2: 1.0}  # K = max(ks)


def test_clip_sampling_and_pooling():
  from siampose_jax.evaluation import ucf101 as ucf101_eval  # pylint: disable=g-import-not-at-top
  assert ucf101_eval.sample_positions(40, 8).tolist() == [2, 7, 12, 17, 22, 27, 32, 37]
  assert ucf101_eval.sample_positions(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
  x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
  for pooling, want in (('mean', x.reshape(2, 3, 5).mean(1)), ('max', x.reshape(2, 3, 5).max(1))):
    got = ucf101_eval.pool(x, 3, pooling)
    np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-6)
  with pytest.raises(ValueError, match='pooling'):
    ucf101_eval.pool(x, 3, 'median')


def test_synthetic_actions_layout_and_determinism(tmp_path):
  params = dict(num_classes=3, groups=4, clips_per_group=1, num_frames=5, width=40, height=32, seed=3)
  a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
  actions.generate(a, **params)
  actions.generate(b, **params)
  assert ucf101.read_class_index(a) == actions.CLASSES[:3]
  for split, test_group in ((1, 1), (2, 9), (3, 17)):   # groups 1, 9, 17, 25: one held out per split
    test = ucf101.read_split_list(a, 'test', split)
    assert {r.group for r in test} == {test_group} and len(test) == 3
    assert {r.group for r in ucf101.read_split_list(a, 'train', split)} == {1, 9, 17, 25} - {test_group}
  clip = ucf101.read_split_list(a, 'train', 1)[0]
  with open(ucf101.clip_file(a, clip), 'rb') as fa, open(ucf101.clip_file(b, clip), 'rb') as fb:
    assert fa.read() == fb.read()
  frames = ucf101.read_video(ucf101.clip_file(a, clip))
  assert frames.shape == (5, 32, 40, 3) and np.abs(np.diff(frames.astype(np.int16), axis=0)).mean() > 1  # it moves


def test_train_and_table3_at_test_preset(tmp_path):
  """configs/ucf101_nearby.py:test end to end: synthetic clips -> store -> training -> table3.md."""
  from siampose_jax.configs import ucf101_distant, ucf101_nearby  # pylint: disable=g-import-not-at-top
  from siampose_jax import reports, train  # pylint: disable=g-import-not-at-top
  from siampose_jax.evaluation import ucf101 as ucf101_eval  # pylint: disable=g-import-not-at-top
  assert ucf101_distant.get_config('test').data.pair_mode == 'distant'
  config = ucf101_nearby.get_config('test')
  config.data.cache_dir = str(tmp_path / 'cache')
  workdir = str(tmp_path / 'run')
  result = train.train_and_evaluate(config, workdir)
  assert result['metrics']['final_step'] == config.total_steps and np.isfinite(result['metrics']['loss'])
  written = ucf101_eval.evaluate(config, workdir)
  rows = reports.read_csv(written['table3_csv'])
  assert [r['method'] for r in rows] == ['Our embeddings (nearby pairs)', 'Random embeddings']
  for r in rows:
    values = [r[f'r{k}'] for k in ucf101_eval.RECALL_KS]
    assert values == sorted(values) and 0 <= values[0] and values[-1] == 100.0  # the gallery is < 50 clips
  per_query = reports.read_csv(written['retrieval_per_query_csv'])
  assert rows[0]['r1'] == pytest.approx(100 * np.mean([r['hit_at_1'] for r in per_query]))
  with open(written['table3_md']) as f:
    assert '| Method | R@1 | R@5 | R@10 | R@20 | R@50 |' in f.read()


def test_experiment_runner_table3(tmp_path):
  """--table=3 runs the UCF101 configs; Table 3 over seeds is the mean ± std of each run's own row."""
  from siampose_jax import reports  # pylint: disable=g-import-not-at-top
  from siampose_jax import configs  # pylint: disable=g-import-not-at-top
  from siampose_jax.experiments import paper_tables  # pylint: disable=g-import-not-at-top
  cmd = paper_tables.command('ucf101_random', 'cpu', 2, str(tmp_path))
  assert f'--config={configs.path("ucf101_nearby")}:cpu' in cmd and '--config.eval.checkpoint=random' in cmd
  assert '--config.seed=2' in cmd
  assert f'--config={configs.path("ucf101_ntxent")}:cpu' in paper_tables.command('ucf101_ntxent', 'cpu', 0, str(tmp_path))
  rng = np.random.default_rng(0)
  values = {}
  for method, name in (('ucf101_nearby', 'Our embeddings (nearby pairs)'), ('ucf101_random', 'Random embeddings')):
    for seed in (0, 1, 2):
      row = {'method': name, **{f'r{k}': float(rng.uniform(0, 100)) for k in (1, 5, 10, 20, 50)}}
      values[method, seed] = row['r1']
      os.makedirs(paper_tables.run_dir(str(tmp_path), method, seed))
      reports.write_csv(os.path.join(paper_tables.run_dir(str(tmp_path), method, seed), 'table3.csv'),
                        [row, dict(row, method='Random embeddings')])
  written = paper_tables.aggregate_table3(str(tmp_path), ['ucf101_nearby', 'ucf101_random'], [0, 1, 2])
  rows = reports.read_csv(written['table3_csv'])
  assert [r['method'] for r in rows] == ['Our embeddings (nearby pairs)', 'Random embeddings']
  for r, method in zip(rows, ('ucf101_nearby', 'ucf101_random')):
    per_seed = [values[method, s] for s in (0, 1, 2)]
    assert r['r1'] == f'{np.mean(per_seed):.2f} ± {np.std(per_seed, ddof=1):.2f}'
  assert '| Method | R@1 |' in open(written['table3_md']).read()
