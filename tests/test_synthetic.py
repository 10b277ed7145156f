"""Tests of the synthetic Objectron generator: determinism, exact labels, renders, shards."""
from __future__ import annotations

import dataclasses
import json
import os

import cv2
import numpy as np
import pytest

from input_pipeline import synthetic
from input_pipeline.formats import geometry
from input_pipeline.formats.frame_record import CATEGORIES
from input_pipeline.formats import objectron_records
from input_pipeline.formats import splits
from input_pipeline.loader import augment
from input_pipeline.store import crops
from input_pipeline.store import frame_store
from input_pipeline.store import ingest
from input_pipeline.synthetic import objects as synthetic_objects
from input_pipeline.synthetic import render as synthetic_render
from input_pipeline.synthetic import scene as synthetic_scene
from input_pipeline.synthetic import videos as synthetic_videos

W, H = 480, 640


@pytest.fixture(scope='module')
def cup_records():
  return list(synthetic.render_video('cup', 1, 3, num_frames=3, seed=5))


def test_same_seed_gives_identical_bytes(cup_records):
  again = list(synthetic.render_video('cup', 1, 3, num_frames=3, seed=5))
  assert [objectron_records.encode_example(r) for r in again] == [
      objectron_records.encode_example(r) for r in cup_records]
  other = next(synthetic.render_video('cup', 1, 3, num_frames=3, seed=6))
  assert other.image != cup_records[0].image
  assert [r.frame_id for r in cup_records] == [0, 1, 2]
  assert [r.timestamp_us for r in cup_records] == [0, 33333, 66666]
  assert cup_records[0].video_id == 'cup/batch-0/3'


def test_keypoints_match_an_opencv_pinhole(cup_records):
  """point_2d is the landscape OpenCV projection of point_3d, rotated to portrait."""
  for rec in cup_records:
    pts = rec.point_3d[0]
    # ARKit camera (-z forward, y up) -> OpenCV camera (+z forward, y down): 180 degrees about x.
    rvec, _ = cv2.Rodrigues(np.diag([1.0, -1.0, -1.0]))
    px, _ = cv2.projectPoints(pts, rvec, np.zeros(3), rec.intrinsics, None)
    col, row = px[:, 0, 0], px[:, 0, 1]  # landscape 1920 x 1440 sensor pixels
    np.testing.assert_allclose(rec.point_2d[0, :, 0], (1440 - row) / 1440, atol=1e-9)
    np.testing.assert_allclose(rec.point_2d[0, :, 1], col / 1920, atol=1e-9)
    np.testing.assert_allclose(rec.point_2d[0, :, 2], -pts[:, 2], atol=1e-12)
    assert (rec.point_2d[0, :, 2] > 0).all()


def test_camera_and_object_frames(cup_records):
  for rec in cup_records:
    np.testing.assert_allclose(rec.view @ rec.extrinsics, np.eye(4), atol=1e-12)
    r = rec.extrinsics[:3, :3]
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    # Box = R (scale * unit) + t in the camera frame.
    rot, t, s = rec.rotation[0], rec.translation[0], rec.scale[0]
    np.testing.assert_allclose(rec.point_3d[0], (geometry.UNIT_BOX * s) @ rot.T + t,
                               atol=1e-12)
    # World up, seen in this camera, is the plane normal; the portrait image shows it pointing up
    # (camera -x), give or take the small roll.
    n = rec.plane_normal
    assert np.linalg.norm(n) == pytest.approx(1.0)
    assert -n[0] > 0.8 * np.hypot(n[0], n[1])


def test_box_stands_on_the_plane(cup_records):
  for rec in cup_records:
    kp, n, c = rec.point_3d[0], rec.plane_normal, rec.plane_center
    bottom, top = kp[[1, 2, 5, 6]], kp[[3, 4, 7, 8]]
    np.testing.assert_allclose((bottom - c) @ n, 0, atol=1e-9)  # bottom face lies in the plane
    np.testing.assert_allclose((top - c) @ n, rec.scale[0, 1], atol=1e-9)  # box's +y is up
    np.testing.assert_allclose((kp[2] - kp[1]) @ n, 0, atol=1e-9)
    assert -c @ n > 0  # the camera is above the ground


def _hull_mask(point_2d, grow):
  corners = np.stack([point_2d[1:, 0] * W - 0.5, point_2d[1:, 1] * H - 0.5], axis=-1)
  mask = np.zeros((H, W), np.uint8)
  cv2.fillConvexPoly(mask, cv2.convexHull(np.round(corners * 16).astype(np.int32)), 1,
                     cv2.LINE_8, 4)
  k = np.ones((2 * abs(grow) + 1,) * 2, np.uint8)
  return (cv2.dilate(mask, k) if grow > 0 else cv2.erode(mask, k)).astype(bool)


@pytest.mark.parametrize('category,frame', [('cereal_box', 0), ('book', 1), ('cup', 2)])
def test_object_is_rendered_inside_its_box(category, frame):
  video = synthetic.make_video(category, 2, 1, num_frames=3, seed=3)
  rec = synthetic.frame_record(video, frame, b'')
  with_obj = synthetic.render_frame(video, frame, with_occluders=False)
  background = synthetic.render_frame(video, frame, with_object=False, with_occluders=False)
  changed = (with_obj != background).any(axis=-1)
  assert changed.sum() > 500
  assert not (changed & ~_hull_mask(rec.point_2d[0], 2)).any()
  if category != 'cup':  # cuboids fill their box outline
    inner = _hull_mask(rec.point_2d[0], -2)
    assert changed[inner].mean() > 0.97


def test_instances_differ_and_persist_across_videos():
  a = synthetic_objects.make_instance('book', 0, seed=1)
  b = synthetic_objects.make_instance('book', 1, seed=1)
  assert not np.allclose(a.scale, b.scale)
  v1 = synthetic.make_video('book', 0, 0, num_frames=2, seed=1)
  v2 = synthetic.make_video('book', 0, 4, num_frames=2, seed=1)
  for t1, t2, ta in zip(v1.model.textures, v2.model.textures, a.textures):
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(t1, ta)
  np.testing.assert_array_equal(v1.model.scale, v2.model.scale)
  assert not np.array_equal(v1.env.ground, v2.env.ground)  # the scene around it changes
  assert not np.allclose(v1.camera_to_world, v2.camera_to_world)
  assert any(ta.shape != tb.shape or not np.array_equal(ta, tb)
             for ta, tb in zip(a.textures, b.textures))
  c = synthetic_objects.make_instance('book', 0, seed=2)
  assert not np.allclose(a.scale, c.scale)


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match='sofa'):
    synthetic_objects.make_instance('sofa', 0, 0)
  with pytest.raises(ValueError, match='num_frames'):
    synthetic.make_video('cup', 0, 0, num_frames=0, seed=0)
  with pytest.raises(ValueError, match='formats'):
    synthetic.generate('/nonexistent', formats=('video',))


def test_near_plane_geometry_is_clipped_not_crashing():
  video = synthetic.make_video('chair', 0, 0, num_frames=1, seed=0)
  view = synthetic.world_to_camera(video, 0)
  pose = np.eye(4)
  pose[:3, 3] = (0.0, 0.0, -0.1)  # the chair straddles the camera
  image = synthetic_render.render(video.env, view, video.projection,
                                 [synthetic_render.Placed(video.model, pose)])
  assert image.shape == (H, W, 3) and image.dtype == np.uint8
  quad = np.array([[0, 0, -1.0], [1, 0, -1], [1, 0, 1], [0, 0, 1]])
  clipped = synthetic_render._clip_near(quad)
  assert (clipped[:, 2] <= -synthetic_render.NEAR + 1e-12).all() and len(clipped) == 4
  assert len(synthetic_render._clip_near(quad * [1, 1, -1] + [0, 0, 2])) == 0


def test_generate_writes_parsable_shards_and_index(tmp_path):
  kw = dict(videos_per_category=3, frames_per_video=2, test_fraction=1 / 3, seed=4, num_shards=2,
            categories=('book', 'cup'), formats=('records', 'sequences'))
  summary = synthetic.generate(str(tmp_path / 'a'), **kw)
  root = str(tmp_path / 'a')
  for c in ('book', 'cup'):
    train = objectron_records.read_index(root, c, 'train')
    test = objectron_records.read_index(root, c, 'test')
    assert train == [f'{c}/batch-0/0', f'{c}/batch-0/1'] and test == [f'{c}/batch-0/2']
    for split, vids in (('train', train), ('test', test)):
      paths = sorted(os.listdir(os.path.join(root, 'v1', 'records_shuffled', c)))
      shards = [os.path.join(root, 'v1', 'records_shuffled', c, p) for p in paths
                if p.startswith(f'{c}_{split}-')]
      assert [os.path.basename(p) for p in shards] == [f'{c}_{split}-0000{i}-of-00002'
                                                       for i in range(2)]
      recs = list(objectron_records.read_examples(shards))
      assert sorted((r.video_id, r.frame_id) for r in recs) == sorted(
          (v, f) for v in vids for f in range(2))
      assert summary['categories'][c][split]['frames'] == len(recs)
      seqs = list(objectron_records.read_sequences(summary['categories'][c][split]['sequences']))
      assert [s[0].video_id for s in seqs] == vids and all(len(s) == 2 for s in seqs)
  # Records hold exactly what render_video produces: video 2 shows instance 2.
  rec = next(r for r in objectron_records.read_examples(
      summary['categories']['cup']['test']['records']) if r.frame_id == 1)
  ref = list(synthetic.render_video('cup', 2, 2, num_frames=2, seed=4))[1]
  assert rec.image == ref.image and rec.equal_annotations(ref)
  manifest = synthetic.dataset.read_manifest(root)
  assert manifest['version'] == synthetic.GENERATOR_VERSION and manifest['params']['seed'] == 4
  # Per video: its split, its own instance, and the scene choices as drawn by make_video.
  assert sorted(manifest['videos']) == sorted(f'{c}/batch-0/{v}' for c in ('book', 'cup') for v in range(3))
  for vid, info in manifest['videos'].items():
    c, _, v = vid.split('/')
    assert info['instance'] == f'{c}/instance-{v}' and info['category'] == c
    assert info['split'] == ('test' if v == '2' else 'train')
    video = synthetic.make_video(c, int(v), int(v), num_frames=2, seed=4)
    recs = [synthetic.frame_record(video, i, b'') for i in range(2)]
    assert {k: info[k] for k in ('occluders', 'lighting_drift', 'out_of_view_frames')} == dict(
        synthetic.scene_info(video), out_of_view_frames=sum(int(r.visibility[0] < 1) for r in recs))
  # A worker pool gives the same bytes.
  synthetic.generate(str(tmp_path / 'b'), num_workers=2, **kw)
  for rel in ('v1/records_shuffled/cup/cup_train-00001-of-00002',
              'v1/sequences/book/book_test-00000-of-00002', 'index/cup_annotations_test',
              'SYNTHETIC.json'):
    assert open(os.path.join(root, rel), 'rb').read() == open(tmp_path / 'b' / rel, 'rb').read()


def test_splits_are_instance_disjoint_and_validation_matches_the_ingest(tmp_path):
  """Read from the manifest: no object instance of the test or validation videos is in a training video
  (unless instances are shared on purpose), and the manifest's validation videos are the ones the ingest
  carves out with the same fraction."""
  plan = synthetic.dataset.video_plan(CATEGORIES, 40, 0.25, 0.1, instances_per_category=0)
  by_split = {s: {(p['category'], p['instance']) for p in plan.values() if p['split'] == s}
              for s in ('train', 'val', 'test')}
  assert len(by_split['test']) == 9 * 10 and 9 * 30 > len(by_split['train']) > 9 * 20 and by_split['val']
  assert not by_split['train'] & by_split['test'] and not by_split['train'] & by_split['val']
  official = {vid: 'test' if p['split'] == 'test' else 'train' for vid, p in plan.items()}
  assert splits.assign_all(official, 0.1) == {vid: p['split'] for vid, p in plan.items()}
  shared = synthetic.dataset.video_plan(('cup',), 8, 0.25, 0.0, instances_per_category=3)
  assert [p['instance'] for p in shared.values()] == [v % 3 for v in range(8)]
  # End to end: the ingested store's splits are the manifest's.
  kw = dict(videos_per_category=6, frames_per_video=2, categories=('cup', 'shoe'), val_fraction=0.3)
  root = str(tmp_path / 'root')
  synthetic.generate(root, **kw)
  info = ingest.ingest_dataset(root, str(tmp_path / 'store'), subsample=1, val_fraction=0.3, progress=False)
  store = frame_store.open_store(info.path)
  manifest = synthetic.dataset.read_manifest(root)['videos']
  for split in store.splits:
    assert {v['video_id'] for v in store.videos(split)} == {
        vid for vid, m in manifest.items() if m['split'] == split}
  assert store.has_frames('val')
  instances = {s: {manifest[v['video_id']]['instance'] for v in store.videos(s)} for s in store.splits}
  assert not instances['train'] & (instances['val'] | instances['test'])


def test_ensure_synthetic_caches_by_parameters(tmp_path, monkeypatch):
  kw = dict(videos_per_category=1, frames_per_video=1, categories=('book',), seed=0)
  root = synthetic.ensure_synthetic(str(tmp_path), **kw)
  assert os.path.exists(os.path.join(root, 'SYNTHETIC.json'))
  assert [p for p in os.listdir(tmp_path) if p.startswith('.tmp')] == []

  def fail(*a, **k):
    raise AssertionError('regenerated a cached dataset')

  monkeypatch.setattr(synthetic.dataset, 'generate', fail)
  assert synthetic.ensure_synthetic(str(tmp_path), num_workers=3, **kw) == root
  with pytest.raises(AssertionError):
    synthetic.ensure_synthetic(str(tmp_path), **dict(kw, seed=1))
  with open(os.path.join(root, 'SYNTHETIC.json'), 'w') as fh:
    json.dump({'version': -1, 'params': {}}, fh)
  with pytest.raises(ValueError, match='does not match'):
    synthetic.ensure_synthetic(str(tmp_path), **kw)


# ---------------------------------------------------------------- occluders and lighting drift


def _first_video(category, has, seed=0, num_frames=12):
  for k in range(20):
    video = synthetic.make_video(category, k % 4, k, num_frames=num_frames, seed=seed)
    if has(video):
      return video, k
  raise AssertionError(f'no {category} video in 20 has the wanted scene')


def _object_pixels(video, frame, with_occluders):
  """Pixels the object changes, over the same frame rendered without it."""
  full = synthetic.render_frame(video, frame, with_occluders=with_occluders)
  rest = synthetic.render_frame(video, frame, with_object=False, with_occluders=with_occluders)
  return (full != rest).any(axis=-1)


def test_occluders_hide_part_of_the_object_but_never_change_labels():
  video, k = _first_video('cereal_box', lambda v: v.occluders)
  inst = k % 4
  clear = synthetic.make_video('cereal_box', inst, k, num_frames=12, seed=0, occluders=False)
  assert clear.occluders == [] and not synthetic.scene_info(clear)['occluders']
  again = synthetic.make_video('cereal_box', inst, k, num_frames=12, seed=0, occluders=True)
  for a, b in zip(video.occluders, again.occluders):  # forcing what was drawn changes nothing
    np.testing.assert_array_equal(a.object_to_world, b.object_to_world)
  np.testing.assert_array_equal(video.camera_to_world, clear.camera_to_world)
  for i in range(video.num_frames):
    assert synthetic.frame_record(video, i, b'').equal_annotations(
        synthetic.frame_record(clear, i, b''))
  f = video.occluders[0].occluded_frame
  seen = _object_pixels(video, f, with_occluders=True)
  whole = _object_pixels(video, f, with_occluders=False)
  assert whole.sum() > 500
  assert seen.sum() < 0.9 * whole.sum()  # partly hidden ...
  assert not (seen & ~whole).any()        # ... and never drawn over its occluder
  # The occluder stands nearer the camera than the object in that frame; where the object hides,
  # the frame shows the occluder exactly as when rendered without the object.
  view = synthetic.world_to_camera(video, f)
  placed = [synthetic_render.Placed(o.model, view @ o.object_to_world) for o in video.occluders]
  obj = synthetic_render.Placed(video.model, view @ video.object_to_world)
  assert min(p.footprint_power() for p in placed) < obj.footprint_power()
  hidden = whole & ~seen
  np.testing.assert_array_equal(synthetic.render_frame(video, f)[hidden],
                                synthetic.render_frame(video, f, with_object=False)[hidden])


def test_render_draws_nearer_objects_last_whatever_the_order():
  video = synthetic.make_video('cup', 0, 0, num_frames=1, seed=0)
  view = synthetic.world_to_camera(video, 0)
  rng = np.random.default_rng(0)
  near = synthetic_objects.make_distractor(rng, 'box', 0.3, 0.5)
  far = synthetic_objects.make_distractor(rng, 'cylinder', 0.4, 1.5)  # sticks out behind `near`
  poses = []
  for z in (-2.0, -3.0):  # upright (model y = camera y), the far one right behind the near one
    pose = np.eye(4)
    pose[:3, 3] = (0.1, 0.0, z)
    poses.append(pose)
  a = synthetic_render.Placed(near, poses[0])
  b = synthetic_render.Placed(far, poses[1])
  render = lambda objs: synthetic_render.render(video.env, view, video.projection, objs)
  both = render([a, b])
  np.testing.assert_array_equal(both, render([b, a]))
  background = render([])
  near_mask = (render([a]) != background).any(axis=-1)
  far_mask = (render([b]) != background).any(axis=-1)
  assert near_mask.sum() > 1000 and (far_mask & ~near_mask).sum() > 100
  np.testing.assert_array_equal(both[near_mask], render([a])[near_mask])
  with pytest.raises(ValueError, match='pyramid'):
    synthetic_objects.make_distractor(rng, 'pyramid', 0.3, 0.5)


def _log_brightness_change(video, with_object):
  """|log| of the ratio of mean brightness (of the object, or the background) last/first frame."""
  means = []
  for i in (0, video.num_frames - 1):
    image = synthetic.render_frame(video, i, with_object=with_object, with_occluders=False)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)
    mask = _object_pixels(video, i, False) if with_object else np.ones(gray.shape, bool)
    means.append(gray[mask].mean())
  return abs(np.log(means[1] / means[0]))


def test_lighting_drift_changes_brightness_along_the_video():
  video, k = _first_video('book', lambda v: v.lighting_drift, seed=1, num_frames=6)
  static = synthetic.make_video('book', k % 4, k, num_frames=6, seed=1, lighting_drift=False)
  assert synthetic.scene_info(video)['lighting_drift'] and not static.lighting_drift
  np.testing.assert_array_equal(video.camera_to_world, static.camera_to_world)
  assert (static.lighting == static.lighting[0]).all()
  np.testing.assert_allclose(np.linalg.norm(video.lighting[:, :3], axis=1), 1.0)
  for with_object in (False, True):
    drift = _log_brightness_change(video, with_object)
    assert drift > 0.2 and drift > 2 * _log_brightness_change(static, with_object)
  # Same seed, same drifting frames.
  again = synthetic.make_video('book', k % 4, k, num_frames=6, seed=1)
  np.testing.assert_array_equal(synthetic.render_frame(video, 5), synthetic.render_frame(again, 5))


def test_scene_choices_are_drawn_for_about_30_percent_of_videos():
  videos = [synthetic.make_video(c, v % 4, v, num_frames=20, seed=2)
            for c in CATEGORIES for v in range(6)]
  occluded = np.mean([bool(v.occluders) for v in videos])
  drifting = np.mean([v.lighting_drift for v in videos])
  assert 0.15 < occluded < 0.45 and 0.15 < drifting < 0.45
  assert any(len(v.occluders) == 2 for v in videos)
  out_of_view = [v for v in videos if any(
      synthetic.frame_record(v, i, b'').visibility[0] < 1 for i in range(v.num_frames))]
  assert 0.1 < len(out_of_view) / len(videos) < 0.9


def test_backdrop_is_looked_up_by_world_azimuth():
  """A backdrop that is red only over azimuths [80, 100] degrees shows red exactly where the
  camera's horizontal ray points into that band (the panorama wraps at azimuth 0 = +z)."""
  video = synthetic.make_video('cup', 0, 0, num_frames=1, seed=0)
  backdrop = np.zeros((64, 360, 3), np.uint8)
  backdrop[..., 0] = 255                    # blue (BGR) everywhere ...
  backdrop[:, 80:100] = (0, 0, 255)         # ... but red for azimuth 80..100 degrees
  env = dataclasses.replace(video.env, backdrop=backdrop, exposure=1.0)
  for azimuth, red in ((90, True), (70, False), (110, False), (0, False), (270, False)):
    a = np.radians(azimuth)
    eye = np.array([0.0, 1.0, 0.0])
    c2w = synthetic_videos._look_at(eye, eye + (np.sin(a), 0, np.cos(a)), 0.0)
    image = synthetic_render.render(env, np.linalg.inv(c2w), video.projection)
    pixel = image[H // 2 - 40, W // 2]      # just above the horizon: backdrop, no ground
    assert (tuple(pixel) == (0, 0, 255)) == red, (azimuth, pixel)


def test_room_background_changes_with_the_viewing_direction(monkeypatch):
  """Distant frames share less background than nearby ones (the point of the room): inside the
  object's crop window, the background of a frame 12 frames later differs much more than that of
  the next frame, and much more than it would without rugs and backdrop (tiled floor, plain sky)."""
  def make():
    return synthetic.make_video('bike', 2, 6, num_frames=30, seed=0, occluders=False,
                                lighting_drift=False)

  def gap_difference(video, gap):
    def crop(frame, window_frame):
      point_2d = synthetic.frame_record(video, window_frame, b'').point_2d[0]
      background = synthetic.render_frame(video, frame, with_object=False)
      return crops.crop_and_resize(background, crops.crop_window(point_2d, (H, W)),
                                     64).astype(np.float32)
    return np.mean([np.abs(crop(i, i) - crop(i + gap, i)).mean() for i in (0, 5, 10, 15)])

  room = make()
  assert room.env.backdrop is not None
  tiles = room.env.ground.reshape(4, room.env.ground.shape[0] // 4, 4, -1, 3)
  assert not (tiles == tiles[:1, :, :1]).all()  # rugs break the floor's tiling
  monkeypatch.setattr(synthetic_scene, '_rugs',
                      lambda rng, floor, texel, diag: np.tile(floor, (4, 4, 1)).astype(np.float32))
  bare = make()
  bare = dataclasses.replace(bare, env=dataclasses.replace(bare.env, backdrop=None))
  far = gap_difference(room, 12)
  assert far > 2 * gap_difference(room, 1)
  assert far > 2 * gap_difference(bare, 12)


def test_validation_carve_keeps_a_training_video_in_every_class():
  """The hashed carve alone would take both training laptops at fraction 0.3 (the `test` preset's data);
  the class keeps the one with the larger hash, and other classes are carved by the hash alone."""
  official = {f'{c}/batch-0/{v}': 'test' if v == 2 else 'train' for c in CATEGORIES for v in range(3)}
  out = splits.assign_all(official, 0.3)
  hashed = {vid: splits._hash(vid, 0) < 0.3 for vid, s in official.items() if s == 'train'}
  assert hashed['laptop/batch-0/0'] and hashed['laptop/batch-0/1']  # the case this guards against
  laptops = sorted(['laptop/batch-0/0', 'laptop/batch-0/1'], key=lambda v: splits._hash(v, 0))
  assert [out[v] for v in laptops] == ['val', 'train']
  for vid, split in out.items():
    if official[vid] == 'test':
      assert split == 'test'
    elif not vid.startswith('laptop/'):
      assert split == ('val' if hashed[vid] else 'train')
  assert all(any(out[f'{c}/batch-0/{v}'] == 'train' for v in range(3)) for c in CATEGORIES)
  with pytest.raises(ValueError, match='fraction'):
    splits.assign_all(official, 1.0)


def test_more_test_videos_leave_the_training_split_byte_identical(tmp_path):
  # The cpu preset enlarges the test split (test_fraction 0.5 of 60 videos instead of 0.25 of 40): a video's
  # content depends on its index only, so the training shards, index and manifest entries stay the same.
  kw = dict(frames_per_video=2, seed=1, num_shards=1, categories=('cup',))
  small = synthetic.generate(str(tmp_path / 'small'), videos_per_category=4, test_fraction=0.25, **kw)
  large = synthetic.generate(str(tmp_path / 'large'), videos_per_category=6, test_fraction=0.5, **kw)
  for summary in (small, large):
    assert summary['categories']['cup']['train']['videos'] == 3
  assert [s['categories']['cup']['test']['videos'] for s in (small, large)] == [1, 3]
  train = [small['categories']['cup']['train']['records'], large['categories']['cup']['train']['records']]
  assert len(train[0]) == len(train[1]) == 1
  with open(train[0][0], 'rb') as a, open(train[1][0], 'rb') as b:
    assert a.read() == b.read()
  manifests = [json.loads((tmp_path / name / synthetic.MANIFEST).read_text())['videos']
               for name in ('small', 'large')]
  assert {k: v for k, v in manifests[0].items() if v['split'] != 'test'} == {
      k: v for k, v in manifests[1].items() if v['split'] != 'test'}
