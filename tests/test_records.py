"""Objectron record formats: TFRecord framing, hand-declared protos, FrameRecord <-> tf.Example."""
from __future__ import annotations

import os
import struct

import cv2
import google_crc32c
import numpy as np
import pytest

from input_pipeline.formats import objectron_records as orec
from input_pipeline.formats import protos
from input_pipeline.formats import tfrecord
from input_pipeline.formats.frame_record import FrameRecord
from input_pipeline.formats.tfrecord import RecordError


def make_record(seed=0, video_id='cup/batch-3/12', frame_id=45, n=2, ext='.jpg', **overrides):
  """A small random FrameRecord (values need not be geometrically consistent for format tests)."""
  rng = np.random.default_rng(seed)
  ok, buf = cv2.imencode(ext, rng.integers(0, 255, (8, 6, 3), dtype=np.uint8))
  assert ok
  fields = dict(
      video_id=video_id, frame_id=frame_id, timestamp_us=1_500_000 + 33_333 * frame_id,
      category=video_id.split('/')[0], image=buf.tobytes(), image_width=6, image_height=8,
      point_2d=rng.uniform(0, 1, (n, 9, 3)), point_3d=rng.normal(size=(n, 9, 3)),
      rotation=rng.normal(size=(n, 3, 3)), translation=rng.normal(size=(n, 3)),
      scale=rng.uniform(0.1, 1, (n, 3)), visibility=rng.uniform(0, 1, (n,)),
      intrinsics=rng.normal(size=(3, 3)) * 1000, projection=rng.normal(size=(4, 4)),
      view=rng.normal(size=(4, 4)), extrinsics=rng.normal(size=(4, 4)),
      plane_center=rng.normal(size=3), plane_normal=rng.normal(size=3),
      object_names=tuple(f'cup_{i}' for i in range(n)), instance_ids=tuple(range(3, 3 + n)))
  fields.update(overrides)
  return FrameRecord(**fields)


def _reencode(rec, edit):
  """tf.Example bytes of `rec` after `edit(example_proto)`."""
  ex = protos.Example.FromString(orec.encode_example(rec))
  edit(ex)
  return ex.SerializeToString()


def _mask(crc):
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------- tf.Example


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(n=1, object_names=(), instance_ids=(), ext='.png'),
    dict(n=0, object_names=(), instance_ids=()),
    dict(video_id='vid7/batch-0/1', category='toy', object_names=('toy', 'toy2')),
])
def test_example_round_trip(kwargs):
  rec = make_record(**kwargs)
  back = orec.decode_example(orec.encode_example(rec))
  assert back.equal_annotations(rec)
  assert back.image == rec.image
  assert back.point_2d.dtype == np.float32 and back.point_2d.shape == rec.point_2d.shape
  np.testing.assert_array_equal(back.point_3d, rec.point_3d.astype(np.float32))


def test_example_layout_matches_objectron_keys():
  rec = make_record()
  feats = protos.Example.FromString(orec.encode_example(rec)).features.feature
  floats = lambda k: np.array(feats[k].float_list.value, np.float32)
  np.testing.assert_array_equal(floats('point_2d'), rec.point_2d.astype(np.float32).reshape(-1))
  np.testing.assert_array_equal(floats('camera/intrinsics'), rec.intrinsics.astype(np.float32).reshape(-1))
  np.testing.assert_array_equal(floats('object/orientation')[9:18],
                                rec.rotation[1].astype(np.float32).reshape(-1))  # row-major, instance 1
  assert list(feats['image/filename'].bytes_list.value) == [b'cup/batch-3/12/000045_inst-3-4.jpg']
  assert list(feats['image/format'].bytes_list.value) == [b'jpeg']
  assert list(feats['instance_num'].int64_list.value) == [2]
  assert list(feats['point_num'].int64_list.value) == [9, 9]
  assert list(feats['image/id'].int64_list.value) == [45]
  assert list(feats['object/name'].bytes_list.value) == [b'cup_0', b'cup_1']
  plain = protos.Example.FromString(orec.encode_example(make_record(instance_ids=())))
  assert list(plain.features.feature['image/filename'].bytes_list.value) == [b'cup/batch-3/12/000045.jpg']


def test_empty_object_names_written_as_category():
  rec = make_record(object_names=())
  feats = protos.Example.FromString(orec.encode_example(rec)).features.feature
  assert list(feats['object/name'].bytes_list.value) == [b'cup', b'cup']
  assert orec.decode_example(orec.encode_example(rec)).object_names == ()


def test_encode_rejects_bad_records():
  with pytest.raises(ValueError, match='point_3d'):
    orec.encode_example(make_record(point_3d=np.zeros((2, 8, 3))))
  with pytest.raises(ValueError, match='category'):
    orec.encode_example(make_record(category='shoe'))
  with pytest.raises(ValueError, match='NaN'):
    orec.encode_example(make_record(translation=np.full((2, 3), np.nan)))
  with pytest.raises(ValueError, match='JPEG nor PNG'):
    orec.encode_example(make_record(image=b'GIF89a'))


@pytest.mark.parametrize('key,edit,pattern', [
    ('point_3d', lambda ex: ex.features.feature.pop('point_3d'), 'missing required key'),
    ('point_2d', lambda ex: ex.features.feature['point_2d'].float_list.value.pop(), 'not a multiple of 27'),
    ('point_2d', lambda ex: ex.features.feature['point_2d'].float_list.value.extend([0.5] * 27),
     'instance_num=2'),
    ('point_2d', lambda ex: ex.features.feature['point_2d'].float_list.value.__setitem__(4, np.nan),
     'NaN'),
    ('object/scale', lambda ex: ex.features.feature['object/scale'].int64_list.value.append(1),
     'expected float_list'),
    ('camera/view', lambda ex: ex.features.feature['camera/view'].float_list.value.pop(), 'expected'),
    ('image/filename', lambda ex: ex.features.feature['image/filename'].bytes_list.value.__setitem__(
        0, b'frame.jpg'), 'expected'),
    ('image/filename', lambda ex: ex.features.feature['image/id'].int64_list.value.__setitem__(0, 7),
     'image/id is 7'),
])
def test_decode_errors_name_key_and_source(tmp_path, key, edit, pattern):
  bad = _reencode(make_record(), edit)
  with pytest.raises(RecordError, match=pattern) as err:
    orec.decode_example(bad, source='x.tfrecord record 5')
  assert f"'{key}'" in str(err.value) and 'x.tfrecord record 5' in str(err.value)
  # Through a shard on disk the message names the file and the record index.
  path = str(tmp_path / 'cup_train-00000-of-00001')
  tfrecord.write_records(path, [orec.encode_example(make_record()), bad])
  with pytest.raises(RecordError) as err:
    list(orec.read_examples(path))
  assert path in str(err.value) and 'record 1' in str(err.value) and f"'{key}'" in str(err.value)


def test_decode_garbage_is_record_error():
  with pytest.raises(RecordError, match='zzz'):
    orec.decode_example(b'\xff\xff\xff', source='zzz')


# ------------------------------------------------------------------------------------ shards & files


def test_shards_round_trip(tmp_path):
  recs = [make_record(seed=i, frame_id=i, n=1 + i % 2) for i in range(7)]
  prefix = str(tmp_path / 'records_shuffled' / 'cup' / 'cup_train')
  paths = orec.write_shards(prefix, (orec.encode_example(r) for r in recs), num_shards=3)
  assert [os.path.basename(p) for p in paths] == [f'cup_train-0000{i}-of-00003' for i in range(3)]
  assert [tfrecord.count_records(p) for p in paths] == [3, 2, 2]  # round-robin
  assert tfrecord.count_records(prefix + '-*-of-*') == 7
  back = sorted(orec.read_examples(prefix + '-*'), key=lambda r: r.frame_id)
  assert len(back) == 7
  for a, b in zip(recs, back):
    assert b.equal_annotations(a) and b.image == a.image
  assert [r.frame_id for r in orec.read_examples(paths[::-1])] == [2, 5, 1, 4, 0, 3, 6]


def test_sequence_round_trip(tmp_path):
  recs = [make_record(seed=i, frame_id=5 * i, n=2) for i in range(4)]
  data = orec.encode_sequence(recs)
  seq = protos.SequenceExample.FromString(data)
  assert list(seq.context.feature['sequence_id'].bytes_list.value) == [b'cup/batch-3/12']
  assert list(seq.context.feature['count'].int64_list.value) == [4]
  assert len(seq.feature_lists.feature_list['point_3d'].feature) == 4
  back = orec.decode_sequence(data)
  assert len(back) == 4
  assert all(b.equal_annotations(a) and b.image == a.image for a, b in zip(recs, back))
  others = [make_record(seed=9, video_id='cup/batch-3/13', frame_id=i, n=1) for i in range(2)]
  paths = orec.write_shards(str(tmp_path / 'cup' / 'cup_train'),
                            [data, orec.encode_sequence(others)], num_shards=2)
  videos = list(orec.read_sequences(paths))
  assert [[r.frame_id for r in v] for v in videos] == [[0, 5, 10, 15], [0, 1]]
  assert videos[1][1].equal_annotations(others[1])


def test_sequence_errors():
  recs = [make_record(seed=i, frame_id=i) for i in range(3)]
  with pytest.raises(ValueError, match='several videos'):
    orec.encode_sequence(recs + [make_record(video_id='cup/batch-1/1')])
  seq = protos.SequenceExample.FromString(orec.encode_sequence(recs))
  del seq.feature_lists.feature_list['point_2d'].feature[-1]
  with pytest.raises(RecordError, match="'point_2d' has 2 frames"):
    orec.decode_sequence(seq.SerializeToString(), source='s.tfrecord record 0')
  seq = protos.SequenceExample.FromString(orec.encode_sequence(recs))
  seq.feature_lists.feature_list['plane/normal'].feature[1].float_list.value.append(1.0)
  with pytest.raises(RecordError, match="s.tfrecord record 0 frame 1: key 'plane/normal'"):
    orec.decode_sequence(seq.SerializeToString(), source='s.tfrecord record 0')


def test_index_files(tmp_path):
  ids = ['cup/batch-1/3', 'cup/batch-12/0']
  path = orec.write_index(str(tmp_path), 'cup', 'train', ids)
  assert path == str(tmp_path / 'index' / 'cup_annotations_train')
  assert open(path).read() == 'cup/batch-1/3\ncup/batch-12/0\n'
  assert orec.read_index(str(tmp_path), 'cup', 'train') == ids
  with pytest.raises(ValueError, match='shoe/batch-1/3'):
    orec.write_index(str(tmp_path), 'cup', 'test', ['shoe/batch-1/3'])
  with pytest.raises(ValueError, match='split'):
    orec.read_index(str(tmp_path), 'cup', 'val')
  with open(path, 'a') as f:
    f.write('cup/3\n')
  with pytest.raises(ValueError, match='line 3'):
    orec.read_index(str(tmp_path), 'cup', 'train')


# --------------------------------------------------------------------------------------- TFRecord


def test_framing_known_bytes(tmp_path):
  assert google_crc32c.value(b'123456789') == 0xE3069283  # the CRC-32C check value
  data = b'123456789'
  path = str(tmp_path / 'one.tfrecord')
  tfrecord.write_records(path, [data, b''])
  raw = open(path, 'rb').read()
  assert len(raw) == (8 + 4 + 9 + 4) + (8 + 4 + 0 + 4)
  assert raw[0:8] == b'\x09' + b'\x00' * 7
  assert raw[8:12] == struct.pack('<I', _mask(google_crc32c.value(raw[0:8])))
  assert raw[12:21] == data
  assert raw[21:25] == struct.pack('<I', _mask(0xE3069283))
  assert raw[37:41] == struct.pack('<I', _mask(0))  # crc32c of nothing is 0
  assert [d for _, _, d in tfrecord.read_records(path)] == [data, b'']


def test_framing_matches_tensorflow(tmp_path):
  tf = pytest.importorskip('tensorflow')
  payloads = [orec.encode_example(make_record(seed=i, frame_id=i)) for i in range(3)]
  ours = str(tmp_path / 'ours.tfrecord')
  tfrecord.write_records(ours, payloads)
  theirs = str(tmp_path / 'theirs.tfrecord')
  with tf.io.TFRecordWriter(theirs) as w:
    for p in payloads:
      w.write(p)
  assert open(ours, 'rb').read() == open(theirs, 'rb').read()
  parsed = tf.train.Example.FromString(payloads[1])
  assert list(parsed.features.feature['image/id'].int64_list.value) == [1]


def _three_record_file(tmp_path):
  path = str(tmp_path / 'cup_test-00000-of-00001')
  tfrecord.write_records(path, [b'a' * 10, b'b' * 20, b'c' * 30])
  return path, bytearray(open(path, 'rb').read())


@pytest.mark.parametrize('cut', [3, 20, 40])  # inside the payload crc, the payload, the header
def test_truncated_file(tmp_path, cut):
  path, raw = _three_record_file(tmp_path)
  open(path, 'wb').write(raw[:len(raw) - cut])
  with pytest.raises(RecordError, match='truncated') as err:
    list(tfrecord.read_records(path))
  assert path in str(err.value) and 'record 2' in str(err.value) and 'offset 62' in str(err.value)


def test_truncated_file_count(tmp_path):
  path, raw = _three_record_file(tmp_path)
  open(path, 'wb').write(raw[:-1])
  with pytest.raises(RecordError, match='record 2'):
    tfrecord.count_records(path)


@pytest.mark.parametrize('pos,pattern', [(26 + 12 + 3, 'data checksum'), (26 + 1, 'length checksum'),
                                         (26 + 12 + 20 + 1, 'data checksum')])
def test_flipped_byte(tmp_path, pos, pattern):
  path, raw = _three_record_file(tmp_path)
  raw[pos] ^= 0x10
  open(path, 'wb').write(raw)
  with pytest.raises(RecordError, match=pattern) as err:
    list(tfrecord.read_records(path))
  assert path in str(err.value) and 'record 1' in str(err.value)


def test_expand_paths(tmp_path):
  for name in ('x-00001-of-00002', 'x-00000-of-00002'):
    tfrecord.write_records(str(tmp_path / name), [b'1'])
  assert [os.path.basename(p) for p in tfrecord.expand_paths(str(tmp_path / 'x-*'))] == [
      'x-00000-of-00002', 'x-00001-of-00002']
  with pytest.raises(FileNotFoundError, match='y-'):
    tfrecord.expand_paths(str(tmp_path / 'y-*'))
  with pytest.raises(FileNotFoundError, match='nope'):
    tfrecord.expand_paths([str(tmp_path / 'nope')])


# ----------------------------------------------------------------------------------- proto wire


def _ld(field, payload):
  """Length-delimited field (payloads here are < 128 bytes)."""
  assert len(payload) < 128
  return bytes([field << 3 | 2, len(payload)]) + payload


def _f32(*values):
  return struct.pack(f'<{len(values)}f', *values)


def test_tf_example_wire_format():
  assert protos.Feature(bytes_list=protos.BytesList(value=[b'ab'])).SerializeToString() == (
      _ld(1, _ld(1, b'ab')))
  assert protos.Feature(float_list=protos.FloatList(value=[1.0, 2.0])).SerializeToString() == (
      _ld(2, _ld(1, _f32(1.0, 2.0))))  # packed
  assert protos.Feature(int64_list=protos.Int64List(value=[1, 300])).SerializeToString() == (
      _ld(3, _ld(1, b'\x01\xac\x02')))  # packed varints
  int_feature = _ld(3, _ld(1, b'\x01'))
  example = _ld(1, _ld(1, _ld(1, b'a') + _ld(2, int_feature)))
  ex = protos.Example.FromString(example)
  assert list(ex.features.feature['a'].int64_list.value) == [1]
  assert ex.SerializeToString() == example
  seq = protos.SequenceExample.FromString(
      _ld(1, _ld(1, _ld(1, b'c') + _ld(2, int_feature))) +
      _ld(2, _ld(1, _ld(1, b'k') + _ld(2, _ld(1, int_feature) + _ld(1, int_feature)))))
  assert list(seq.context.feature['c'].int64_list.value) == [1]
  assert len(seq.feature_lists.feature_list['k'].feature) == 2
  assert seq.feature_lists.feature_list['k'].feature[1].WhichOneof('kind') == 'int64_list'


def test_objectron_wire_format():
  obj = protos.Object(id=7, category='cup', type=protos.Object.BOUNDING_BOX, rotation=[1.0],
                      translation=[2.0], scale=[3.0], method=protos.Object.ANNOTATION)
  obj.keypoints.add(x=1.0, hidden=True)
  assert obj.SerializeToString() == (
      b'\x08\x07' + _ld(2, b'cup') + b'\x18\x01' + _ld(4, _f32(1.0)) + _ld(5, _f32(2.0)) +
      _ld(6, _f32(3.0)) + _ld(7, b'\x0d' + _f32(1.0) + b'\x30\x01') + b'\x40\x01')
  cam = protos.ARCamera(transform=[1.0], image_resolution_width=1440, image_resolution_height=1920,
                        intrinsics=[2.0], projection_matrix=[3.0], view_matrix=[4.0])
  cam.euler_angles.yaw = 1.0
  assert cam.SerializeToString() == (
      _ld(3, _f32(1.0)) + _ld(4, b'\x1d' + _f32(1.0)) + b'\x28\xa0\x0b' + b'\x30\x80\x0f' +
      _ld(7, _f32(2.0)) + _ld(8, _f32(3.0)) + _ld(9, _f32(4.0)))
  assert protos.ARCamera().tracking_state == protos.ARCamera.UNAVAILABLE  # proto2 default
  frame = protos.FrameAnnotation(frame_id=3, timestamp=0.5, plane_center=[1.0], plane_normal=[2.0])
  ann = frame.annotations.add(object_id=1, visibility=1.0)
  ann.keypoints.add(id=2, point_3d=protos.Point3D(z=1.0), point_2d=protos.NormalizedPoint2D(depth=1.0))
  frame.camera.view_matrix.append(4.0)
  assert frame.SerializeToString() == (
      b'\x08\x03' + _ld(2, b'\x08\x01' + _ld(2, b'\x08\x02' + _ld(2, b'\x1d' + _f32(1.0)) +
                                              _ld(3, b'\x1d' + _f32(1.0))) + b'\x1d' + _f32(1.0)) +
      _ld(3, _ld(9, _f32(4.0))) + b'\x21' + struct.pack('<d', 0.5) + _ld(5, _f32(1.0)) +
      _ld(6, _f32(2.0)))
  arframe = protos.ARFrame(timestamp=0.5)
  arframe.camera.image_resolution_width = 1
  plane = arframe.plane_anchor.add(identifier='p', transform=[1.0, 2.0],
                                   alignment=protos.ARPlaneAnchor.HORIZONTAL)
  plane.center.y = 1.0
  assert arframe.SerializeToString() == (
      b'\x09' + struct.pack('<d', 0.5) + _ld(4, b'\x28\x01') +
      _ld(7, _ld(1, b'p') + b'\x15' + _f32(1.0) + b'\x15' + _f32(2.0) + b'\x18\x01' +
          _ld(5, b'\x15' + _f32(1.0))))  # plane transform is not packed upstream
  seq = protos.Sequence.FromString(_ld(1, b'\x08\x07') + _ld(2, b'\x08\x03'))
  assert seq.objects[0].id == 7 and seq.frame_annotations[0].frame_id == 3


def test_objectron_sequence_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  seq = protos.Sequence()
  for i in range(2):
    seq.objects.add(id=i, category='cup', type=protos.Object.BOUNDING_BOX,
                    rotation=np.eye(3).ravel().tolist(), translation=rng.normal(size=3).tolist(),
                    scale=[0.1, 0.2, 0.3])
  for f in range(3):
    frame = seq.frame_annotations.add(frame_id=f, timestamp=f / 30, plane_center=[0, -1, 0],
                                      plane_normal=[0, 1, 0])
    frame.camera.transform.extend(np.eye(4).ravel().tolist())
    frame.camera.intrinsics.extend([1500, 0, 960, 0, 1500, 720, 0, 0, 1])
    ann = frame.annotations.add(object_id=1, visibility=0.75)
    for k, (p3, p2) in enumerate(zip(rng.normal(size=(9, 3)), rng.uniform(size=(9, 3)))):
      ann.keypoints.add(id=k, point_3d=protos.Point3D(x=p3[0], y=p3[1], z=p3[2]),
                        point_2d=protos.NormalizedPoint2D(x=p2[0], y=p2[1], depth=p2[2]))
  path = tmp_path / 'annotations' / 'cup' / 'batch-3' / '12.pbdata'
  path.parent.mkdir(parents=True)
  path.write_bytes(seq.SerializeToString())
  back = protos.Sequence.FromString(path.read_bytes())
  assert back == seq
  assert back.objects[1].scale[2] == pytest.approx(0.3)
  assert back.frame_annotations[2].timestamp == pytest.approx(2 / 30)
  kp = back.frame_annotations[1].annotations[0].keypoints[8]
  assert kp.id == 8 and kp.point_2d.depth == pytest.approx(seq.frame_annotations[1].annotations[0]
                                                           .keypoints[8].point_2d.depth)
  assert list(back.frame_annotations[0].camera.intrinsics)[:3] == [1500, 0, 960]
