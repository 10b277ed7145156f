"""Objectron's raw layout: per-video annotation protos, AR metadata and the captured video.

  root/annotations/<class>/batch-i/j.pbdata     one `Sequence` proto (objects in WORLD coordinates;
                                                 per frame an ARCamera, 9 keypoints per object)
  root/videos/<class>/batch-i/j/video.MOV       frame k of the video is annotation frame_id k
  root/videos/<class>/batch-i/j/geometry.pbdata ARFrame protos, each a little-endian uint32 length then
                                                 the message (as Objectron's notebooks read it), one per
                                                 video frame
  root/[v1/]index/<class>_annotations_{train,test}  which videos exist (objectron_layout.Layout)

Readers turn a video into the same FrameRecords the per-frame tf.Example records hold: the world-frame
box is brought into each frame's camera frame with that frame's view matrix (world-to-camera, as in
Objectron's geometry tutorial; `transform` is camera-to-world), timestamps go from the protos' seconds
(ARKit's unit) to microseconds, and frames are re-encoded as JPEG q90. Missing files raise
FileNotFoundError, damaged or inconsistent content tfrecord.RecordError, each naming the file (and frame).
"""
from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from typing import Iterable, Iterator

import cv2
import numpy as np
from etils import epath
from google.protobuf import message as message_lib

from input_pipeline.formats import geometry
from input_pipeline.formats import objectron_layout
from input_pipeline.formats import paths
from input_pipeline.formats import protos
from input_pipeline.formats.frame_record import CATEGORIES, FrameRecord
from input_pipeline.formats.tfrecord import RecordError

JPEG_QUALITY = 90
# MPEG-4 Part 2: the one lossy codec OpenCV's bundled FFmpeg both writes into QuickTime (.MOV) and reads
# back here (its H.264/HEVC encoders are absent or hardware-only).
VIDEO_FOURCC = 'mp4v'
_LEN = struct.Struct('<I')
# How far the annotation's camera may drift from geometry.pbdata's, and keypoints from the posed box
# (metres), before source_check calls the video inconsistent.
_CAMERA_TOL = 1e-4
_KEYPOINT_TOL = 2e-3


raw_paths = objectron_layout.raw_paths  # (annotation .pbdata, video.MOV, geometry.pbdata) of a video id


def _require(path: str, what: str) -> None:
  if not epath.Path(path).is_file():
    raise FileNotFoundError(f'{path}: {what} does not exist')


def read_annotation(path: str) -> protos.Sequence:
  """The `Sequence` proto of an annotation file."""
  _require(path, 'annotation file')
  data = epath.Path(path).read_bytes()
  try:
    return protos.Sequence.FromString(data)
  except message_lib.DecodeError as e:
    raise RecordError(f'{path}: not a Sequence proto (truncated or corrupt: {e})') from e


def read_geometry(path: str) -> list:
  """The ARFrame protos of a geometry.pbdata file, one per video frame."""
  _require(path, 'geometry file')
  data = epath.Path(path).read_bytes()
  frames, offset = [], 0
  while offset < len(data):
    where = f'{path}: ARFrame {len(frames)} (byte offset {offset})'
    if offset + _LEN.size > len(data):
      raise RecordError(f'{where}: truncated length prefix')
    (length,) = _LEN.unpack_from(data, offset)
    end = offset + _LEN.size + length
    if end > len(data):
      raise RecordError(f'{where}: truncated message ({len(data) - offset - _LEN.size} of {length} bytes)')
    try:
      frames.append(protos.ARFrame.FromString(data[offset + _LEN.size:end]))
    except message_lib.DecodeError as e:
      raise RecordError(f'{where}: not an ARFrame proto ({e})') from e
    offset = end
  return frames


def write_geometry(path: str, frames: Iterable) -> None:
  """Writes ARFrame protos length-prefixed, as `read_geometry` (and Objectron's notebooks) read them."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(path, 'wb') as f:
    for frame in frames:
      data = frame.SerializeToString(deterministic=True)
      f.write(_LEN.pack(len(data)) + data)


def _rigid_inverse(m: np.ndarray) -> np.ndarray:
  out = np.eye(4)
  out[:3, :3] = m[:3, :3].T
  out[:3, 3] = -m[:3, :3].T @ m[:3, 3]
  return out


def _camera(cam) -> dict[str, np.ndarray] | None:
  """FrameRecord camera fields of an ARCamera, or None when it lacks intrinsics, projection or pose."""
  if len(cam.intrinsics) != 9 or len(cam.projection_matrix) != 16:
    return None
  has_view, has_transform = len(cam.view_matrix) == 16, len(cam.transform) == 16
  if not (has_view or has_transform):
    return None
  view = np.reshape(cam.view_matrix, (4, 4)).astype(np.float64) if has_view else None
  extrinsics = np.reshape(cam.transform, (4, 4)).astype(np.float64) if has_transform else None
  return dict(intrinsics=np.reshape(cam.intrinsics, (3, 3)).astype(np.float64),
              projection=np.reshape(cam.projection_matrix, (4, 4)).astype(np.float64),
              view=view if has_view else _rigid_inverse(extrinsics),
              extrinsics=extrinsics if has_transform else _rigid_inverse(view))


def _objects(seq, path: str) -> dict[int, tuple[np.ndarray, np.ndarray, str]]:
  """object id -> (object-to-world 4x4, scale, category); several objects all with id 0 (proto3's unset
  value) are told apart by their position instead."""
  ids = [o.id for o in seq.objects]
  if len(ids) > 1 and not any(ids):
    ids = list(range(len(ids)))
  if len(set(ids)) != len(ids):
    raise RecordError(f'{path}: duplicate object ids {ids}')
  out = {}
  for i, obj in zip(ids, seq.objects):
    if (len(obj.rotation), len(obj.translation), len(obj.scale)) != (9, 3, 3):
      raise RecordError(f'{path}: object {i} has {len(obj.rotation)} rotation, {len(obj.translation)} '
                        f'translation, {len(obj.scale)} scale values (expected 9, 3, 3)')
    pose = np.eye(4)
    pose[:3, :3] = np.reshape(obj.rotation, (3, 3))
    pose[:3, 3] = obj.translation
    out[i] = (pose, np.asarray(obj.scale, np.float64), obj.category)
  return out


def _labels(fa, objects, camera, category: str, where: str) -> dict:
  """FrameRecord fields (all but video id and image) of one FrameAnnotation, in the camera frame."""
  p2, p3, rot, trans, scale, vis, names, ids = [], [], [], [], [], [], [], []
  for a in fa.annotations:
    if a.object_id not in objects:
      raise RecordError(f'{where}: annotation of object {a.object_id}, which the Sequence does not have')
    kp_ids = [k.id for k in a.keypoints]
    if len(kp_ids) != geometry.NUM_KEYPOINTS or (any(kp_ids) and kp_ids != list(range(9))):
      raise RecordError(f'{where}: object {a.object_id} has keypoint ids {kp_ids}, expected 0..8')
    pose, s, name = objects[a.object_id]
    obj_cam = camera['view'] @ pose
    p2.append([(k.point_2d.x, k.point_2d.y, k.point_2d.depth) for k in a.keypoints])
    p3.append([(k.point_3d.x, k.point_3d.y, k.point_3d.z) for k in a.keypoints])
    rot.append(obj_cam[:3, :3])
    trans.append(obj_cam[:3, 3])
    scale.append(s)
    vis.append(a.visibility)
    names.append(name or category)
    ids.append(a.object_id)
  if len(fa.plane_center) != 3 or len(fa.plane_normal) != 3:
    raise RecordError(f'{where}: plane_center/plane_normal have {len(fa.plane_center)}/'
                      f'{len(fa.plane_normal)} values, expected 3')
  n = len(ids)
  p2 = np.asarray(p2, np.float64).reshape(n, 9, 3)
  p3 = np.asarray(p3, np.float64).reshape(n, 9, 3)
  if not (np.isfinite(p2).all() and np.isfinite(p3).all()):
    raise RecordError(f'{where}: keypoints contain NaN or infinite values')
  return dict(
      frame_id=int(fa.frame_id), timestamp_us=int(round(fa.timestamp * 1e6)), category=category,
      point_2d=p2, point_3d=p3, rotation=np.asarray(rot).reshape(n, 3, 3),
      translation=np.asarray(trans).reshape(n, 3), scale=np.asarray(scale).reshape(n, 3),
      visibility=np.asarray(vis, np.float64), plane_center=np.asarray(fa.plane_center, np.float64),
      plane_normal=np.asarray(fa.plane_normal, np.float64),
      object_names=() if all(s == category for s in names) else tuple(names),
      instance_ids=() if ids == list(range(n)) else tuple(ids), **camera)


def _check_camera(ann: dict, geo: dict, where: str, geometry_path: str) -> None:
  for key in ('view', 'intrinsics', 'projection'):
    if not np.allclose(ann[key], geo[key], rtol=_CAMERA_TOL, atol=_CAMERA_TOL):
      raise RecordError(f'{where}: camera {key} differs from {geometry_path} '
                        f'(max abs difference {np.abs(ann[key] - geo[key]).max():.3g})')


def _check_keypoints(labels: dict, where: str) -> None:
  box = geometry.box_keypoints(labels['rotation'], labels['translation'], labels['scale'])
  err = np.linalg.norm(box - labels['point_3d'], axis=-1).max(initial=0.0)
  if err > _KEYPOINT_TOL * max(1.0, float(np.abs(box).max(initial=0.0))):
    raise RecordError(f'{where}: point_3d is {err:.3g} m from the world box seen through the view '
                      'matrix; object, camera and keypoints disagree (source_check=False skips this check)')


def _encode_jpeg(image: np.ndarray, where: str) -> bytes:
  ok, buf = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
  if not ok:
    raise RecordError(f'{where}: JPEG encoding failed')
  return buf.tobytes()


def _video_frames(path: str, frame_ids: list[int]) -> Iterator[tuple[int, np.ndarray]]:
  """(frame id, BGR frame) for the sorted `frame_ids`, decoding the video once, front to back."""
  _require(path, 'video file')
  with _local_copy(path) as local:
    yield from _decode_frames(path, local, frame_ids)


@contextlib.contextmanager
def _local_copy(path: str):
  """A local file with the content of `path` (itself when local): OpenCV reads local files only."""
  if paths.is_local(path):
    yield path
    return
  with tempfile.TemporaryDirectory(prefix='siampose_video_') as tmp:
    local = os.path.join(tmp, os.path.basename(path))
    epath.Path(path).copy(local)
    yield local


def _decode_frames(path: str, local: str, frame_ids: list[int]) -> Iterator[tuple[int, np.ndarray]]:
  cap = cv2.VideoCapture(local)
  try:
    if not cap.isOpened():
      raise RecordError(f'{path}: OpenCV cannot open the video')
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if count > 0 and frame_ids and frame_ids[-1] >= count:
      raise RecordError(f'{path}: frame {frame_ids[-1]} is annotated but the video has {count} frames')
    k = 0
    for fid in frame_ids:
      while k < fid:
        if not cap.grab():
          raise RecordError(f'{path}: frame {fid} is annotated but the video ends after {k} frames')
        k += 1
      ok, image = cap.read()
      if not ok:
        raise RecordError(f'{path}: frame {fid} is annotated but the video ends after {k} frames')
      k += 1
      if image.shape[1] > image.shape[0]:
        raise RecordError(f'{path}: frame {fid} decodes landscape ({image.shape[1]}x{image.shape[0]}); '
                          'Objectron frames are portrait')
      yield fid, image
  finally:
    cap.release()


def read_raw_video(root: str, video_id: str, *, source_check: bool = True) -> Iterator[FrameRecord]:
  """FrameRecords of every annotated frame of one raw video, in frame order.

  Cameras come from the annotation; geometry.pbdata supplies them where the annotation has none. With
  `source_check`, geometry.pbdata is required and must agree with the annotation's cameras, and each
  object's keypoints must match its world box seen through the frame's view matrix. Every label is
  checked before the first frame is decoded.
  """
  category = video_id.split('/', 1)[0]
  if category not in CATEGORIES:
    raise ValueError(f'video id {video_id!r}: unknown class {category!r}; expected one of {CATEGORIES}')
  annotation_path, video_path, geometry_path = raw_paths(root, video_id)
  seq = read_annotation(annotation_path)
  _require(video_path, 'video file')
  objects = _objects(seq, annotation_path)
  ann_cameras = [_camera(fa.camera) if fa.HasField('camera') else None for fa in seq.frame_annotations]
  geo = read_geometry(geometry_path) if source_check or None in ann_cameras else None
  labels = {}
  for fa, camera in zip(seq.frame_annotations, ann_cameras):
    where = f'{annotation_path} frame {fa.frame_id}'
    if fa.frame_id < 0 or fa.frame_id in labels:
      raise RecordError(f'{where}: negative or duplicate frame_id')
    geo_camera = None
    if geo is not None:
      if fa.frame_id >= len(geo):
        raise RecordError(f'{where}: {geometry_path} has only {len(geo)} ARFrames')
      geo_camera = _camera(geo[fa.frame_id].camera)
    if camera is None:
      if geo_camera is None:
        raise RecordError(f'{where}: no complete camera here nor in {geometry_path} ARFrame {fa.frame_id}')
      camera = geo_camera
    elif geo_camera is not None and source_check:
      _check_camera(camera, geo_camera, where, geometry_path)
    labels[fa.frame_id] = _labels(fa, objects, camera, category, where)
    if source_check:
      _check_keypoints(labels[fa.frame_id], where)
  for fid, image in _video_frames(video_path, sorted(labels)):
    where = f'{video_path} frame {fid}'
    yield FrameRecord(video_id=video_id, image=_encode_jpeg(image, where), image_width=image.shape[1],
                      image_height=image.shape[0], **labels[fid])


def read_raw(root, splits=objectron_layout.SPLITS, *, categories=CATEGORIES,
             source_check: bool = True) -> Iterator[FrameRecord]:
  """Every annotated frame of the videos listed in the root's index files (see objectron_layout)."""
  layout = objectron_layout.Layout.find(root)
  for category in categories:
    for split in splits:
      for video_id in layout.videos(category, split):
        yield from read_raw_video(layout.root, video_id, source_check=source_check)


# ------------------------------------------------------------------------------------------ writer


def _camera_proto(rec: FrameRecord):
  return protos.ARCamera(
      tracking_state=protos.ARCamera.NORMAL, tracking_state_reason=protos.ARCamera.NONE,
      transform=np.ravel(rec.extrinsics), view_matrix=np.ravel(rec.view),
      projection_matrix=np.ravel(rec.projection), intrinsics=np.ravel(rec.intrinsics),
      image_resolution_width=geometry.SENSOR_WIDTH, image_resolution_height=geometry.SENSOR_HEIGHT)


def _world_objects(frames: list[FrameRecord]) -> dict[int, tuple[np.ndarray, np.ndarray, str]]:
  """id -> (object-to-world pose, scale, name) from the camera-frame poses; the objects must be static."""
  out = {}
  for rec in frames:
    where = f'FrameRecord {rec.video_id!r} frame {rec.frame_id}'
    if not np.allclose(np.asarray(rec.view) @ np.asarray(rec.extrinsics), np.eye(4), atol=1e-4):
      raise ValueError(f'{where}: view is not the inverse of extrinsics')
    ids = tuple(rec.instance_ids) or tuple(range(rec.instance_num))
    names = tuple(rec.object_names) or (rec.category,) * rec.instance_num
    for i, oid in enumerate(ids):
      pose = np.eye(4)
      pose[:3, :3], pose[:3, 3] = rec.rotation[i], rec.translation[i]
      pose = np.asarray(rec.extrinsics, np.float64) @ pose
      scale = np.asarray(rec.scale[i], np.float64)
      if oid not in out:
        out[oid] = (pose, scale, names[i])
      elif not (np.allclose(out[oid][0], pose, atol=1e-3) and np.allclose(out[oid][1], scale, atol=1e-4)):
        raise ValueError(f'{where}: object {oid} moves in the world; the raw layout holds one world box '
                         'per object')
  return out


def write_raw_video(root: str, frames: list[FrameRecord], *, fps: float = 30) -> tuple[str, str, str]:
  """Writes one video's frames (frame ids 0..N-1) in the raw layout; returns `raw_paths`.

  Objects go into the Sequence in world coordinates (camera-frame pose mapped through the extrinsics),
  cameras into every FrameAnnotation and into geometry.pbdata, the decoded images into video.MOV.
  """
  frames = sorted(frames, key=lambda r: r.frame_id)
  if not frames:
    raise ValueError('write_raw_video needs at least one frame')
  video_id = frames[0].video_id
  annotation_path, video_path, geometry_path = raw_paths(root, video_id)
  if {r.video_id for r in frames} != {video_id}:
    raise ValueError(f'{video_path}: frames from several videos {sorted({r.video_id for r in frames})}')
  if [r.frame_id for r in frames] != list(range(len(frames))):
    raise ValueError(f'{video_path}: frame ids must be 0..{len(frames) - 1} (frame k of the video is '
                     f'frame_id k), got {[r.frame_id for r in frames]}')
  objects = _world_objects(frames)
  seq = protos.Sequence()
  for oid, (pose, scale, name) in sorted(objects.items()):
    seq.objects.add(id=oid, category=name, type=protos.Object.BOUNDING_BOX,
                    method=protos.Object.ANNOTATION, rotation=pose[:3, :3].ravel(),
                    translation=pose[:3, 3], scale=scale,
                    keypoints=[protos.KeyPoint(x=x, y=y, z=z) for x, y, z in geometry.UNIT_BOX])
  ar_frames = []
  for rec in frames:
    camera = _camera_proto(rec)
    fa = seq.frame_annotations.add(frame_id=rec.frame_id, timestamp=rec.timestamp_us / 1e6, camera=camera,
                                   plane_center=np.ravel(rec.plane_center),
                                   plane_normal=np.ravel(rec.plane_normal))
    ids = tuple(rec.instance_ids) or tuple(range(rec.instance_num))
    for i, oid in enumerate(ids):
      fa.annotations.add(object_id=oid, visibility=float(np.ravel(rec.visibility)[i]), keypoints=[
          protos.AnnotatedKeyPoint(id=k, point_3d=protos.Point3D(x=p3[0], y=p3[1], z=p3[2]),
                                   point_2d=protos.NormalizedPoint2D(x=p2[0], y=p2[1], depth=p2[2]))
          for k, (p2, p3) in enumerate(zip(rec.point_2d[i], rec.point_3d[i]))])
    ar_frames.append(protos.ARFrame(timestamp=rec.timestamp_us / 1e6, camera=camera))
  os.makedirs(os.path.dirname(annotation_path), exist_ok=True)
  with open(annotation_path, 'wb') as f:
    f.write(seq.SerializeToString(deterministic=True))
  write_geometry(geometry_path, ar_frames)
  _write_video(video_path, frames, fps)
  return annotation_path, video_path, geometry_path


def _write_video(path: str, frames: list[FrameRecord], fps: float) -> None:
  size = (frames[0].image_width, frames[0].image_height)
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, size)
  if not writer.isOpened():
    raise RuntimeError(f'{path}: OpenCV cannot write {VIDEO_FOURCC!r} video into .MOV')
  try:
    for rec in frames:
      image = cv2.imdecode(np.frombuffer(rec.image, np.uint8), cv2.IMREAD_COLOR)
      if image is None or (image.shape[1], image.shape[0]) != size:
        raise ValueError(f'{path}: frame {rec.frame_id} image does not decode to {size[0]}x{size[1]}')
      writer.write(image)
  finally:
    writer.release()
