"""Objectron raw layout: the same synthetic videos read back identically through all three layouts."""
from __future__ import annotations

import os
import shutil
import struct

import cv2
import numpy as np
import pytest

from input_pipeline import synthetic
from input_pipeline.formats import geometry
from input_pipeline.formats import objectron_raw as raw
from input_pipeline.formats import protos
from input_pipeline.formats.frame_record import FrameRecord
from input_pipeline.formats.tfrecord import RecordError
from input_pipeline.store import frame_store
from input_pipeline.store import ingest
from input_pipeline.synthetic import videos as synthetic_videos

NUM_FRAMES = 4
SEED = 3
VIDEO = 'cup/batch-0/0'


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('objectron'))
  synthetic.generate(path, videos_per_category=2, frames_per_video=NUM_FRAMES, instances_per_category=2,
                     test_fraction=0.5, seed=SEED, num_shards=1, categories=('cup',),
                     formats=('records', 'sequences', 'raw'))
  return path


@pytest.fixture
def copy(root, tmp_path):
  """A private copy of the raw layout, for tests that damage it."""
  dst = str(tmp_path / 'root')
  for sub in ('annotations', 'videos', 'index'):
    shutil.copytree(os.path.join(root, sub), os.path.join(dst, sub))
  return dst


def _by_frame(records):
  return {(r.video_id, r.frame_id): r for r in records}


def _pixels(rec):
  return cv2.imdecode(np.frombuffer(rec.image, np.uint8), cv2.IMREAD_COLOR).astype(np.float64)


def _edit_annotation(root, edit, video_id=VIDEO):
  path = raw.raw_paths(root, video_id)[0]
  seq = raw.read_annotation(path)
  edit(seq)
  with open(path, 'wb') as f:
    f.write(seq.SerializeToString())
  return path


def test_three_layouts_give_the_same_frames(root):
  layouts = {fmt: _by_frame(ingest.read_frames(root, fmt)) for fmt in ('records', 'sequences', 'raw')}
  truth = _by_frame(r for v in (0, 1) for r in synthetic.render_video(
      'cup', v % 2, v, num_frames=NUM_FRAMES, seed=SEED))
  assert set(layouts['raw']) == set(layouts['records']) == set(layouts['sequences']) == set(truth)
  assert len(truth) == 2 * NUM_FRAMES
  for key, ref in truth.items():
    for fmt, recs in layouts.items():
      assert recs[key].equal_annotations(ref, atol=1e-5), (fmt, key)
    got = layouts['raw'][key]
    assert got.image[:3] == b'\xff\xd8\xff'  # re-encoded as JPEG
    assert (got.image_height, got.image_width) == (geometry.IMAGE_HEIGHT, geometry.IMAGE_WIDTH)
    diff = np.abs(_pixels(got) - _pixels(ref)).mean()
    assert diff < 8, (key, diff)  # video compression only
    # The pose is in this frame's camera frame: it rebuilds the annotated camera-frame keypoints.
    np.testing.assert_allclose(geometry.box_keypoints(got.rotation, got.translation, got.scale),
                               got.point_3d, atol=1e-5)


def test_annotation_and_geometry_hold_world_objects_and_cameras(root):
  annotation_path, video_path, geometry_path = raw.raw_paths(root, VIDEO)
  assert annotation_path == os.path.join(root, 'annotations', 'cup', 'batch-0', '0.pbdata')
  assert video_path == os.path.join(root, 'videos', 'cup', 'batch-0', '0', 'video.MOV')
  video = synthetic.make_video('cup', 0, 0, num_frames=NUM_FRAMES, seed=SEED)
  seq = raw.read_annotation(annotation_path)
  (obj,) = seq.objects
  assert obj.category == 'cup' and obj.type == protos.Object.BOUNDING_BOX
  np.testing.assert_allclose(np.reshape(obj.rotation, (3, 3)), video.object_to_world[:3, :3], atol=1e-6)
  np.testing.assert_allclose(obj.translation, video.object_to_world[:3, 3], atol=1e-6)
  np.testing.assert_allclose(obj.scale, video.model.scale, rtol=1e-6)
  np.testing.assert_allclose([(k.x, k.y, k.z) for k in obj.keypoints], geometry.UNIT_BOX)
  frames = raw.read_geometry(geometry_path)
  assert [fa.frame_id for fa in seq.frame_annotations] == list(range(NUM_FRAMES)) == list(range(len(frames)))
  for i, (fa, ar) in enumerate(zip(seq.frame_annotations, frames)):
    np.testing.assert_allclose(np.reshape(ar.camera.transform, (4, 4)), video.camera_to_world[i], atol=1e-6)
    np.testing.assert_allclose(np.reshape(fa.camera.view_matrix, (4, 4)),
                               synthetic.world_to_camera(video, i), atol=1e-6)
    assert ar.timestamp == pytest.approx(i * synthetic_videos.FRAME_PERIOD_US / 1e6)
  cap = cv2.VideoCapture(video_path)
  assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == NUM_FRAMES
  cap.release()


def test_geometry_round_trip_and_framing(tmp_path):
  frames = [protos.ARFrame(timestamp=0.5 * i, camera=protos.ARCamera(
      transform=np.arange(16) + i, intrinsics=np.arange(9), image_resolution_width=1920),
      plane_anchor=[protos.ARPlaneAnchor(identifier=f'p{i}')]) for i in range(3)]
  path = str(tmp_path / 'g' / 'geometry.pbdata')
  raw.write_geometry(path, frames)
  assert raw.read_geometry(path) == frames
  data = open(path, 'rb').read()  # framing: <uint32 length><ARFrame>, read independently
  offset, parsed = 0, []
  while offset < len(data):
    (n,) = struct.unpack('<I', data[offset:offset + 4])
    parsed.append(protos.ARFrame.FromString(data[offset + 4:offset + 4 + n]))
    offset += 4 + n
  assert parsed == frames
  for cut, what in ((len(data) - 3, 'truncated message'), (len(data) - len(frames[2].SerializeToString())
                                                          - 2, 'truncated length prefix')):
    with open(path, 'wb') as f:
      f.write(data[:cut])
    with pytest.raises(RecordError, match=f'{path}.*ARFrame 2.*{what}'):
      raw.read_geometry(path)
  with open(path, 'wb') as f:
    f.write(struct.pack('<I', 3) + b'\xff\xff\xff')
  with pytest.raises(RecordError, match=f'{path}.*ARFrame 0.*not an ARFrame'):
    raw.read_geometry(path)


def test_camera_comes_from_geometry_when_the_annotation_has_none(root, copy):
  ref = list(raw.read_raw_video(root, VIDEO))

  def drop_cameras(seq):
    for fa in seq.frame_annotations:
      fa.ClearField('camera')
  _edit_annotation(copy, drop_cameras)
  got = list(raw.read_raw_video(copy, VIDEO, source_check=False))
  assert len(got) == NUM_FRAMES and all(a.equal_annotations(b, atol=1e-6) for a, b in zip(got, ref))
  geometry_path = raw.raw_paths(copy, VIDEO)[2]
  os.remove(geometry_path)
  with pytest.raises(FileNotFoundError, match=geometry_path):
    list(raw.read_raw_video(copy, VIDEO, source_check=False))


def test_camera_and_keypoint_cross_checks(copy):
  geometry_path = raw.raw_paths(copy, VIDEO)[2]
  original = raw.read_geometry(geometry_path)
  damaged = raw.read_geometry(geometry_path)
  damaged[2].camera.view_matrix[3] += 0.01  # x translation of the view
  raw.write_geometry(geometry_path, damaged)
  with pytest.raises(RecordError, match=r'frame 2: camera view differs from .*geometry\.pbdata'):
    list(raw.read_raw_video(copy, VIDEO))
  assert len(list(raw.read_raw_video(copy, VIDEO, source_check=False))) == NUM_FRAMES
  raw.write_geometry(geometry_path, original)

  def move(seq):
    seq.objects[0].translation[0] += 0.05
  annotation_path = _edit_annotation(copy, move)
  with pytest.raises(RecordError, match=f'{annotation_path} frame 0: point_3d is 0.05 m from the world box'):
    list(raw.read_raw_video(copy, VIDEO))
  moved = list(raw.read_raw_video(copy, VIDEO, source_check=False))
  assert len(moved) == NUM_FRAMES
  os.remove(geometry_path)
  with pytest.raises(FileNotFoundError, match=geometry_path):  # source_check needs geometry.pbdata
    list(raw.read_raw_video(copy, VIDEO))


def test_missing_files_and_damage_name_the_file(copy):
  annotation_path, video_path, _ = raw.raw_paths(copy, VIDEO)
  data = open(annotation_path, 'rb').read()
  with open(annotation_path, 'wb') as f:
    f.write(data[:len(data) // 2 + 1])
  with pytest.raises(RecordError, match=f'{annotation_path}: not a Sequence proto'):
    list(raw.read_raw_video(copy, VIDEO))
  os.remove(annotation_path)
  with pytest.raises(FileNotFoundError, match=f'{annotation_path}: annotation file does not exist'):
    list(raw.read_raw_video(copy, VIDEO))
  with pytest.raises(FileNotFoundError, match=f'{annotation_path}'):
    list(ingest.read_frames(copy, 'raw'))  # the index lists the video
  other = 'cup/batch-0/1'
  os.remove(raw.raw_paths(copy, other)[1])
  with pytest.raises(FileNotFoundError, match=f'{raw.raw_paths(copy, other)[1]}: video file does not'):
    list(raw.read_raw_video(copy, other))
  with pytest.raises(ValueError, match='unknown class'):
    list(raw.read_raw_video(copy, 'mug/batch-1/1'))
  shutil.rmtree(os.path.join(copy, 'index'))
  with pytest.raises(FileNotFoundError, match=r'not a copy of Objectron: no <class>_annotations_\{train,test\} '
                     r'index files in .*/v1/index or .*/index'):
    list(raw.read_raw(copy))


def test_frame_beyond_the_video_names_file_and_frame(copy):
  video_path = raw.raw_paths(copy, VIDEO)[1]

  def extra_frame(seq):
    fa = seq.frame_annotations.add()
    fa.CopyFrom(seq.frame_annotations[0])
    fa.frame_id = NUM_FRAMES + 2
  _edit_annotation(copy, extra_frame)
  with pytest.raises(RecordError, match=f'{video_path}: frame {NUM_FRAMES + 2} is annotated but the video '
                                        f'has {NUM_FRAMES} frames'):
    list(raw.read_raw_video(copy, VIDEO, source_check=False))
  with pytest.raises(RecordError, match=f'frame {NUM_FRAMES + 2}: .*geometry.pbdata has only {NUM_FRAMES}'):
    list(raw.read_raw_video(copy, VIDEO))


def test_ingest_raw_matches_ingest_records(root, tmp_path):
  stores = {}
  for fmt in ('records', 'raw'):
    ingest.ingest_dataset(root, str(tmp_path / fmt), fmt=fmt, subsample=2)
    stores[fmt] = frame_store.open_store(str(tmp_path / fmt))
  a, b = stores['records'], stores['raw']
  assert a.splits == b.splits == ('test', 'train') and b.num_frames('train') == NUM_FRAMES // 2
  for split in a.splits:
    videos = {fmt: [(v['video_id'], v['frame_ids']) for v in s.videos(split)] for fmt, s in stores.items()}
    assert videos['records'] == videos['raw'] and len(videos['raw']) == 1
    # Record order differs (the per-frame shards are shuffled), so match frames through the index.
    for va, vb in zip(a.videos(split), b.videos(split)):
      for ia, ib in zip(va['records'], vb['records']):
        ra, rb = a[split, ia], b[split, ib]
        assert (ra['video_id'], ra['frame_id']) == (rb['video_id'], rb['frame_id'])
        for key in ('point_2d', 'point_3d', 'rotation', 'translation', 'scale', 'intrinsics', 'view'):
          np.testing.assert_allclose(ra[key], rb[key], atol=1e-5)
        assert np.abs(ra['image'].astype(float) - rb['image']).mean() < 8


def test_writer_rejects_gaps_moving_objects_and_landscape_frames(root, tmp_path):
  recs = list(synthetic.render_video('cup', 0, 0, num_frames=3, seed=SEED))
  with pytest.raises(ValueError, match=r'frame ids must be 0\.\.1'):
    raw.write_raw_video(str(tmp_path), [recs[0], recs[2]])
  moved = FrameRecord(**{**vars(recs[1]), 'translation': recs[1].translation + 0.1})
  with pytest.raises(ValueError, match='object 0 moves'):
    raw.write_raw_video(str(tmp_path), [recs[0], moved, recs[2]])
  # A video that decodes landscape is refused rather than mislabelled.
  rotated = []
  for r in recs:
    image = cv2.rotate(cv2.imdecode(np.frombuffer(r.image, np.uint8), cv2.IMREAD_COLOR),
                       cv2.ROTATE_90_CLOCKWISE)
    rotated.append(FrameRecord(**{**vars(r), 'image': cv2.imencode('.jpg', image)[1].tobytes(),
                                  'image_width': image.shape[1], 'image_height': image.shape[0]}))
  raw.write_raw_video(str(tmp_path), rotated)
  with pytest.raises(RecordError, match='frame 0 decodes landscape'):
    list(raw.read_raw_video(str(tmp_path), VIDEO))
