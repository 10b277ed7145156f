"""The evaluation's maths against independent computations: the box fit re-derived from the intrinsics, the
per-category and Objectron APs, the gallery subsets, and each baseline's expectation on constructed cases."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from input_pipeline.formats import geometry
from input_pipeline.formats.frame_record import CATEGORIES
from siampose_jax.evaluation import methods, metrics, objectron
from siampose_jax.evaluation.iou import box_iou_3d

W, H = geometry.IMAGE_WIDTH, geometry.IMAGE_HEIGHT  # portrait frame
SW, SH = geometry.SENSOR_WIDTH, geometry.SENSOR_HEIGHT  # landscape sensor of the intrinsics


# ------------------------------------------------------------------------------ an independent pinhole model
def _to_uv(points, k):
  """Objectron camera points [..., 3] -> portrait (u, v) through OpenCV intrinsics: the camera looks down -z
  with y up, OpenCV's looks down +z with y down; the landscape pixel (x, y) is the portrait (v W, (1 - u) H)."""
  cv = points * [1.0, -1.0, -1.0]
  x = k[0, 0] * cv[..., 0] / cv[..., 2] + k[0, 2]
  y = k[1, 1] * cv[..., 1] / cv[..., 2] + k[1, 2]
  return np.stack([1 - y / SH, x / SW], axis=-1)


def _ray(uv, k):
  x, y = uv[1] * SW, (1 - uv[0]) * SH
  d = np.linalg.solve(k, [x, y, 1.0]) * [1.0, -1.0, -1.0]
  return d / np.linalg.norm(d)


def _box(uv):
  return np.clip(np.concatenate([uv.min(0), uv.max(0)]), 0, 1)


def _diag(box):
  return np.hypot((box[2] - box[0]) * W, (box[3] - box[1]) * H)


def _reference_fit(nb3, nb2, nb_c, nb_n, q_box, q_c, q_n, k):
  """The reference's zero-shot fit, written once more from its description with scipy rotations and the
  intrinsics (not boxfit's projection matrices)."""
  nb_n, q_n = nb_n / np.linalg.norm(nb_n), q_n / np.linalg.norm(q_n)
  turn = Rotation.align_vectors([q_n], [nb_n])[0].as_matrix()
  points = nb3[0] + (nb3 - nb3[0]) @ turn.T
  height = (nb3[0] - nb_c) @ nb_n
  nb_box = _box(nb2)
  offset = (nb2[0] - (nb_box[:2] + nb_box[2:]) / 2) / (nb_box[2:] - nb_box[:2])
  ray = _ray((q_box[:2] + q_box[2:]) / 2 + offset * (q_box[2:] - q_box[:2]), k)

  def snap(points, height):
    t = (height + q_c @ q_n) / (ray @ q_n)
    return points - points[0] + t * ray

  points = snap(points, height)
  for _ in range(4):
    factor = (1 + _diag(q_box) / _diag(_box(_to_uv(points, k)))) / 2
    points = snap(points[0] + (points - points[0]) * factor, height * factor)
    height *= factor
  return points


# ------------------------------------------------------------------------------ scenes
def _look_at(eye, target, up):
  z = (eye - target) / np.linalg.norm(eye - target)
  x = np.cross(up, z)
  x /= np.linalg.norm(x)
  return np.stack([x, np.cross(z, x), z])  # world-to-camera rotation rows


def _frame(rng, k, category=0, tilt=0.15):
  """One annotated frame: a yawed box on a (tilted) ground plane, seen by a camera looking at it."""
  up = Rotation.from_rotvec(rng.normal(size=3) * tilt).apply([0.0, 1.0, 0.0])
  scale = rng.uniform([0.2, 0.1, 0.3], [0.5, 0.4, 0.6])
  base = Rotation.align_vectors([up], [[0.0, 1.0, 0.0]])[0]
  obj_rot = (base * Rotation.from_euler('y', rng.uniform(0, 2 * np.pi))).as_matrix()
  centre = rng.normal(size=3) * 0.05 + up * scale[1] / 2
  az, el, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.0), rng.uniform(1.2, 2.0)
  horizontal = base.apply([np.sin(az), 0.0, np.cos(az)])
  eye = centre + dist * (np.cos(el) * horizontal + np.sin(el) * up)
  world_to_cam = _look_at(eye, centre + rng.normal(size=3) * 0.03, up)
  kp3 = geometry.box_keypoints(world_to_cam @ obj_rot, world_to_cam @ (centre - eye), scale)
  kp2 = np.concatenate([_to_uv(kp3, k), -kp3[:, 2:]], axis=1)
  return {'point_3d': kp3, 'point_2d': kp2, 'plane_center': world_to_cam @ (centre - up * scale[1] / 2 - eye
                                                                            + 0.1 * horizontal),
          'plane_normal': world_to_cam @ up, 'projection': geometry.projection_from_intrinsics(k),
          'rotation': world_to_cam @ obj_rot, 'category': category, 'image_hw': (H, W), 'intrinsics': k}


def _stack(frames):
  return {key: np.stack([np.asarray(f[key]) for f in frames]) for key in frames[0]}


K_OFF_CENTRE = np.array([[1500.0, 0, 1010], [0, 1440.0, 690], [0, 0, 1]])  # fx != fy, principal point off


def test_fit_and_score_matches_an_independent_box_fit():
  rng = np.random.default_rng(0)
  gallery = _stack([_frame(rng, np.array([[1590.0, 0, 955], [0, 1600.0, 725], [0, 0, 1]])) for _ in range(12)])
  queries = _stack([_frame(rng, K_OFF_CENTRE) for _ in range(12)])
  nn = rng.permutation(12)
  res = objectron.fit_and_score(gallery, queries, nn)
  assert res['failed'] == 0 and (res['failure'] == '').all()
  for q in range(12):
    want = _reference_fit(gallery['point_3d'][nn[q]], gallery['point_2d'][nn[q], :, :2],
                          gallery['plane_center'][nn[q]], gallery['plane_normal'][nn[q]],
                          _box(queries['point_2d'][q, :, :2]), queries['plane_center'][q],
                          queries['plane_normal'][q], K_OFF_CENTRE)
    np.testing.assert_allclose(res['fitted'][q], want, atol=1e-9)
  np.testing.assert_allclose(res['iou'], box_iou_3d(res['fitted'], queries['point_3d']))
  # A frame fitted from itself is its own box.
  self_fit = objectron.fit_and_score(queries, queries, np.arange(12))
  np.testing.assert_allclose(self_fit['fitted'], queries['point_3d'], atol=1e-8)
  np.testing.assert_allclose(self_fit['iou'], 1.0, atol=1e-6)
  np.testing.assert_allclose(self_fit['azimuth_error'], 0.0, atol=1e-4)


def test_boxes_leaving_the_image_are_clipped_as_the_reference_does():
  rng = np.random.default_rng(1)
  queries = _stack([_frame(rng, K_OFF_CENTRE) for _ in range(3)])
  queries['point_2d'][:, :, 0] += 0.45  # the 2D boxes now run off the right edge (annotations unchanged)
  gallery = _stack([_frame(rng, K_OFF_CENTRE) for _ in range(3)])
  res = objectron.fit_and_score(gallery, queries, np.arange(3))
  for q in range(3):
    clipped = _box(queries['point_2d'][q, :, :2])
    assert clipped[2] == 1.0
    want = _reference_fit(gallery['point_3d'][q], gallery['point_2d'][q, :, :2], gallery['plane_center'][q],
                          gallery['plane_normal'][q], clipped, queries['plane_center'][q],
                          queries['plane_normal'][q], K_OFF_CENTRE)
    np.testing.assert_allclose(res['fitted'][q], want, atol=1e-9)


def test_degenerate_queries_are_counted_failures_not_errors():
  rng = np.random.default_rng(2)
  queries = _stack([_frame(rng, K_OFF_CENTRE) for _ in range(5)])
  gallery = _stack([_frame(rng, K_OFF_CENTRE) for _ in range(5)])
  queries['plane_normal'][1] = 0.0                      # zero normal
  queries['point_2d'][2, :, :2] = queries['point_2d'][2, :1, :2]  # an empty 2D box
  queries['point_2d'][3, :, 2] = -1.0                   # the box behind the camera
  queries['plane_center'][4] += 10 * queries['plane_normal'][4]  # a plane the centre ray meets behind
  res = objectron.fit_and_score(gallery, queries, np.arange(5))
  assert list(res['failure']) == ['', 'zero_plane_normal', 'empty_2d_box', 'box_behind_camera',
                                  'ray_misses_plane']
  assert res['failed'] == 4 and res['iou'][0] > 0 and np.all(res['iou'][1:] == 0)
  assert np.all(res['azimuth_error'][1:] == objectron.FAILED_AZIMUTH_ERROR)
  assert np.all(res['elevation_error'][1:] == objectron.FAILED_ELEVATION_ERROR)
  alone = objectron.fit_and_score(gallery, {k: v[:1] for k, v in queries.items()}, np.arange(1))
  np.testing.assert_allclose(alone['fitted'][0], res['fitted'][0])  # the good query is untouched


def test_per_category_ap_and_objectron_curves():
  iou = np.array([0.9, 0.4, 0.6, 0.51, 0.2, 0.8])
  cat = np.array([0, 0, 0, 1, 1, 2])
  row = objectron.per_category_ap(iou, cat)
  assert row == {CATEGORIES[0]: pytest.approx(2 / 3), CATEGORIES[1]: 0.5, CATEGORIES[2]: 1.0,
                 'overall': pytest.approx((2 / 3 + 0.5 + 1) / 3)}
  scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.2])
  thresholds, curves = objectron.objectron_ap_curves(iou, cat, scores)
  for i, c in enumerate(CATEGORIES[:3]):
    sel = cat == i
    np.testing.assert_allclose(curves[c], metrics.objectron_ap_curve(iou[sel], scores[sel])[1])
  np.testing.assert_allclose(curves['mean'], np.mean([curves[c] for c in CATEGORIES[:3]], axis=0))
  # The score order matters: category 0 ranked by score puts its miss (0.4) first.
  t5 = np.argmin(np.abs(thresholds - 0.5))
  assert curves[CATEGORIES[0]][t5] == pytest.approx(metrics.interpolated_ap([0, 1 / 3, 2 / 3], [0, 0.5, 2 / 3]))


def test_gallery_subset_keeps_int_n_ratio_videos_unstratified():
  video = np.repeat(np.arange(243), 12)
  for fraction, want in ((0.1, 24), (0.01, 2), (0.001, 1)):
    mask, kept = methods.gallery_subset(video, fraction, seed=3)
    assert kept == want and len(np.unique(video[mask])) == want and mask.sum() == 12 * want
  a, _ = methods.gallery_subset(video, 0.1, seed=3)
  b, _ = methods.gallery_subset(video, 0.1, seed=4)
  assert np.array_equal(a, methods.gallery_subset(video, 0.1, seed=3)[0]) and not np.array_equal(a, b)


def _copies(rng, n_per_category, categories):
  """A gallery whose frames of one category are exact copies of one frame, different across categories."""
  frames = [_frame(rng, K_OFF_CENTRE, category=c) for c in categories]
  return frames, _stack([dict(frames[i]) for i, _ in enumerate(categories) for _ in range(n_per_category[i])])


def test_random_baselines_meet_their_expectation():
  rng = np.random.default_rng(5)
  cats = (0, 1, 2)
  frames, gallery = _copies(rng, (10, 30, 60), cats)
  queries = _stack([frames[c] for c in rng.choice(3, 600)])
  full = np.ones(100, bool)
  # In-category: every neighbour is a copy of the query itself, so every fit is exact.
  in_category, anywhere = methods.RowKey(methods.RANDOM_IN_CATEGORY_FIT), methods.RowKey(methods.RANDOM_FIT)
  nn, _ = methods.random_method(in_category, gallery['category'], queries['category'], 0).neighbours(full)
  assert np.all(gallery['category'][nn] == queries['category'])
  assert objectron.per_category_ap(objectron.fit_and_score(gallery, queries, nn)['iou'],
                                  queries['category'])['overall'] == 1.0
  # Any category: the neighbour is of the query's category with probability its share of the gallery.
  nn, _ = methods.random_method(anywhere, gallery['category'], queries['category'], 0).neighbours(full)
  for c, share in zip(cats, (0.1, 0.3, 0.6)):
    hit = np.mean(gallery['category'][nn[queries['category'] == c]] == c)
    n = np.sum(queries['category'] == c)
    assert abs(hit - share) < 4 * np.sqrt(share * (1 - share) / n)
  again, _ = methods.random_method(anywhere, gallery['category'], queries['category'], 0).neighbours(full)
  assert np.array_equal(nn, again)  # seeded


def test_oracle_picks_the_closest_true_rotation_within_the_category():
  rng = np.random.default_rng(6)
  gallery = _stack([_frame(rng, K_OFF_CENTRE, category=i % 2) for i in range(40)])
  queries = _stack([_frame(rng, K_OFF_CENTRE, category=i % 2) for i in range(10)])
  nn, _ = methods.oracle_method(gallery, queries).neighbours(np.ones(40, bool))
  for q in range(10):
    same = np.flatnonzero(gallery['category'] == queries['category'][q])
    angles = [np.linalg.norm(Rotation.from_matrix(queries['rotation'][q].T @ gallery['rotation'][g]).as_rotvec())
              for g in same]
    assert nn[q] == same[np.argmin(angles)]
  # Symmetric categories: only the up axis counts.
  sym, _ = methods.oracle_method(gallery, queries, (CATEGORIES[0],)).neighbours(np.ones(40, bool))
  for q in np.flatnonzero(queries['category'] == 0):
    same = np.flatnonzero(gallery['category'] == 0)
    up = [np.arccos(np.clip(queries['rotation'][q][:, 1] @ gallery['rotation'][g][:, 1], -1, 1)) for g in same]
    assert sym[q] == same[np.argmin(up)]


def test_within_category_neighbour_is_the_best_same_category_frame():
  rng = np.random.default_rng(7)
  g_emb = rng.normal(size=(50, 8)).astype(np.float32)
  q_emb = rng.normal(size=(20, 8)).astype(np.float32)
  g_emb /= np.linalg.norm(g_emb, axis=1, keepdims=True)
  q_emb /= np.linalg.norm(q_emb, axis=1, keepdims=True)
  g_cat, q_cat = rng.integers(0, 4, 50), rng.integers(0, 4, 20)
  base = methods.embedding_method(methods.RowKey(methods.MODEL), 'e', g_emb, q_emb)
  within = methods.within_category_method(base, g_cat, q_cat)
  assert within.key == methods.RowKey(methods.MODEL, within_category=True) and within.key.uses_labels
  assert within.name.startswith('e (1-NN within the true category')
  mask = rng.random(50) < 0.8
  nn, score = within.neighbours(mask)
  for q in range(20):
    allowed = np.flatnonzero(mask & (g_cat == q_cat[q]))
    sims = g_emb[allowed] @ q_emb[q]
    assert nn[q] == allowed[np.argmax(sims)] and score[q] == pytest.approx(sims.max(), abs=1e-5)
  plain, plain_score = base.neighbours(mask)
  np.testing.assert_allclose(plain_score, [np.max(g_emb[mask] @ q) for q in q_emb], atol=1e-5)


def test_row_keys_round_trip_and_name_the_rows():
  keys = [methods.RowKey(source) for source in methods.EMBEDDING_SOURCES + methods.MODEL_FREE_SOURCES]
  keys += [methods.RowKey(methods.MODEL, within_category=True), methods.RowKey(methods.RANDOM_INIT, True),
           methods.RowKey(methods.MODEL, gallery_fraction=0.1), methods.RowKey(methods.RANDOM_INIT, False, 0.01)]
  assert len({str(k) for k in keys}) == len(keys)
  for key in keys:
    assert methods.RowKey.parse(str(key)) == key
  assert str(methods.RowKey(methods.MODEL, gallery_fraction=0.1)) == 'model@0.1'
  assert methods.RowKey(methods.MODEL, True).name('Ours') == 'Ours (1-NN within the true category; uses the label)'
  assert methods.RowKey(methods.RANDOM_INIT, False, 0.1).name(videos=(24, 243)) == (
      'Random embeddings (10% of videos: 24 of 243)')
  assert [k.uses_labels for k in keys[3:6]] == [False, True, True]  # random fit, in-category, oracle
  with pytest.raises(ValueError, match='bogus'):
    methods.RowKey('bogus')
  with pytest.raises(ValueError, match='no within-category'):
    methods.RowKey(methods.ORACLE, within_category=True)
  with pytest.raises(ValueError, match='unknown variant'):
    methods.RowKey.parse('model/sideways')
  with pytest.raises(ValueError, match='not a random baseline'):
    methods.random_method(methods.RowKey(methods.ORACLE), np.zeros(3, int), np.zeros(2, int), 0)
