"""tf.Example and Objectron schema protos, declared at runtime so that neither TensorFlow nor generated
`_pb2` modules are needed.

Each schema is a small table (message -> field specs, enum -> value names) mirroring the upstream .proto
files field for field (numbers, types, packing), so the wire format is identical:
  * tensorflow/core/example/{feature,example}.proto (package `tensorflow`);
  * Objectron's objectron/schema/a_r_capture_metadata.proto (package `research.compvideo.arcapture`,
    proto2; only the ARFrame parts describing the camera and plane anchors), object.proto and
    annotation_data.proto (package `xeno.pursuit.proto`, proto3).
Fields left out of a message are kept as unknown fields when parsing and re-serialising, so nothing is lost.
The messages live in a private descriptor pool and cannot clash with TensorFlow's own, if installed.
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    'double': _F.TYPE_DOUBLE, 'float': _F.TYPE_FLOAT, 'int64': _F.TYPE_INT64, 'int32': _F.TYPE_INT32,
    'bool': _F.TYPE_BOOL, 'string': _F.TYPE_STRING, 'bytes': _F.TYPE_BYTES,
}

# Field spec: '<optional|repeated> <type> <name> = <number> [packed] [default=X] [oneof=NAME]'.
# <type> is a scalar, `map<K,V>`, a message/enum of the same file (dotted if nested), or a fully
# qualified message name starting with '.' from a dependency.
_FEATURE_PROTO = dict(
    name='tensorflow/core/example/feature.proto', package='tensorflow', syntax='proto3',
    messages={
        'BytesList': ['repeated bytes value = 1'],
        'FloatList': ['repeated float value = 1 packed'],
        'Int64List': ['repeated int64 value = 1 packed'],
        'Feature': ['optional BytesList bytes_list = 1 oneof=kind',
                    'optional FloatList float_list = 2 oneof=kind',
                    'optional Int64List int64_list = 3 oneof=kind'],
        'Features': ['repeated map<string,Feature> feature = 1'],
        'FeatureList': ['repeated Feature feature = 1'],
        'FeatureLists': ['repeated map<string,FeatureList> feature_list = 1'],
    })

_EXAMPLE_PROTO = dict(
    name='tensorflow/core/example/example.proto', package='tensorflow', syntax='proto3',
    dependency=['tensorflow/core/example/feature.proto'],
    messages={
        'Example': ['optional .tensorflow.Features features = 1'],
        'SequenceExample': ['optional .tensorflow.Features context = 1',
                            'optional .tensorflow.FeatureLists feature_lists = 2'],
    })

_AR_CAPTURE_PROTO = dict(
    name='a_r_capture_metadata.proto', package='research.compvideo.arcapture', syntax='proto2',
    messages={
        'ARCamera': [
            'optional ARCamera.TrackingState tracking_state = 1 default=UNAVAILABLE',
            'optional ARCamera.TrackingStateReason tracking_state_reason = 2 default=NONE',
            'repeated float transform = 3 packed',
            'optional ARCamera.EulerAngles euler_angles = 4',
            'optional int32 image_resolution_width = 5',
            'optional int32 image_resolution_height = 6',
            'repeated float intrinsics = 7 packed',
            'repeated float projection_matrix = 8 packed',
            'repeated float view_matrix = 9 packed'],
        'ARCamera.EulerAngles': ['optional float roll = 1', 'optional float pitch = 2',
                                 'optional float yaw = 3'],
        'ARPlaneAnchor': [
            'optional string identifier = 1',
            'repeated float transform = 2',  # not packed upstream
            'optional ARPlaneAnchor.Alignment alignment = 3',
            'optional ARPlaneAnchor.PlaneVector center = 5',
            'optional ARPlaneAnchor.PlaneVector extent = 6',
            'optional bool classification_supported = 7',
            'optional ARPlaneAnchor.PlaneClassification classification = 8',
            'optional ARPlaneAnchor.PlaneClassificationStatus classification_status = 9'],
        'ARPlaneAnchor.PlaneVector': ['optional float x = 1', 'optional float y = 2',
                                      'optional float z = 3'],
        'ARFrame': [
            'optional double timestamp = 1',
            'optional double depth_data_timestamp = 3',
            'optional ARCamera camera = 4',
            'repeated ARPlaneAnchor plane_anchor = 7'],
    },
    enums={
        'ARCamera.TrackingState': ['UNDEFINED_TRACKING_STATE', 'UNAVAILABLE', 'LIMITED', 'NORMAL'],
        'ARCamera.TrackingStateReason': ['UNDEFINED_TRACKING_STATE_REASON', 'NONE', 'INITIALIZING',
                                         'EXCESSIVE_MOTION', 'INSUFFICIENT_FEATURES', 'RELOCALIZING'],
        'ARPlaneAnchor.Alignment': ['UNDEFINED', 'HORIZONTAL', 'VERTICAL'],
        'ARPlaneAnchor.PlaneClassification': ['NONE', 'WALL', 'FLOOR', 'CEILING', 'TABLE', 'SEAT'],
        'ARPlaneAnchor.PlaneClassificationStatus': ['UNKNOWN', 'UNAVAILABLE', 'UNDETERMINED', 'KNOWN'],
    })

_OBJECT_PROTO = dict(
    name='object.proto', package='xeno.pursuit.proto', syntax='proto3',
    messages={
        'KeyPoint': ['optional float x = 1', 'optional float y = 2', 'optional float z = 3',
                     'optional float confidence_radius = 4', 'optional string name = 5',
                     'optional bool hidden = 6'],
        'Object': ['optional int32 id = 1', 'optional string category = 2',
                   'optional Object.Type type = 3', 'repeated float rotation = 4 packed',
                   'repeated float translation = 5 packed', 'repeated float scale = 6 packed',
                   'repeated KeyPoint keypoints = 7', 'optional Object.Method method = 8'],
    },
    enums={
        'Object.Type': ['UNDEFINED_TYPE', 'BOUNDING_BOX', 'SKELETON', 'MESH'],
        'Object.Method': ['UNKNOWN_METHOD', 'ANNOTATION', 'AUGMENTATION'],
    })

_ANNOTATION_PROTO = dict(
    name='annotation_data.proto', package='xeno.pursuit.proto', syntax='proto3',
    dependency=['a_r_capture_metadata.proto', 'object.proto'],
    messages={
        'NormalizedPoint2D': ['optional float x = 1', 'optional float y = 2',
                              'optional float depth = 3'],
        'Point3D': ['optional float x = 1', 'optional float y = 2', 'optional float z = 3'],
        'AnnotatedKeyPoint': ['optional int32 id = 1', 'optional Point3D point_3d = 2',
                              'optional NormalizedPoint2D point_2d = 3'],
        'ObjectAnnotation': ['optional int32 object_id = 1', 'repeated AnnotatedKeyPoint keypoints = 2',
                             'optional float visibility = 3'],
        'FrameAnnotation': ['optional int32 frame_id = 1', 'repeated ObjectAnnotation annotations = 2',
                            'optional .research.compvideo.arcapture.ARCamera camera = 3',
                            'optional double timestamp = 4', 'repeated float plane_center = 5 packed',
                            'repeated float plane_normal = 6 packed'],
        'Sequence': ['repeated .xeno.pursuit.proto.Object objects = 1',
                     'repeated FrameAnnotation frame_annotations = 2'],
    })


def _file_descriptor(name, package, syntax, messages, enums=None, dependency=()):
  """Builds a FileDescriptorProto from one of the tables above."""
  fdp = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax=syntax,
                                           dependency=list(dependency))
  enums = enums or {}
  protos = {}
  for msg in sorted(messages, key=lambda m: m.count('.')):  # parents before nested messages
    parent, _, short = msg.rpartition('.')
    protos[msg] = (protos[parent].nested_type if parent else fdp.message_type).add(name=short)
  for enum, values in enums.items():
    parent, _, short = enum.rpartition('.')
    e = (protos[parent].enum_type if parent else fdp.enum_type).add(name=short)
    for number, value in enumerate(values):
      e.value.add(name=value, number=number)

  def set_type(field, type_name):
    if type_name in _SCALARS:
      field.type = _SCALARS[type_name]
    elif type_name.startswith('.'):
      field.type, field.type_name = _F.TYPE_MESSAGE, type_name
    elif type_name in messages or type_name in enums:
      field.type = _F.TYPE_MESSAGE if type_name in messages else _F.TYPE_ENUM
      field.type_name = f'.{package}.{type_name}'
    else:
      raise ValueError(f'{name}: unknown type {type_name!r}')

  for msg, specs in messages.items():
    proto = protos[msg]
    for spec in specs:
      label, type_name, field_name, eq, number, *opts = spec.split()
      assert eq == '=' and label in ('optional', 'repeated'), spec
      field = proto.field.add(name=field_name, number=int(number),
                              label=_F.LABEL_REPEATED if label == 'repeated' else _F.LABEL_OPTIONAL)
      if type_name.startswith('map<'):
        key_type, value_type = type_name[4:-1].split(',')
        entry = proto.nested_type.add(name=''.join(p.title() for p in field_name.split('_')) + 'Entry')
        entry.options.map_entry = True
        for entry_field, entry_number, entry_type in (('key', 1, key_type), ('value', 2, value_type)):
          set_type(entry.field.add(name=entry_field, number=entry_number, label=_F.LABEL_OPTIONAL),
                   entry_type)
        field.type, field.type_name = _F.TYPE_MESSAGE, f'.{package}.{msg}.{entry.name}'
      else:
        set_type(field, type_name)
      for opt in opts:
        key, _, value = opt.partition('=')
        if key == 'packed':
          field.options.packed = True
        elif key == 'default':
          field.default_value = value
        elif key == 'oneof':
          names = [o.name for o in proto.oneof_decl]
          if value not in names:
            proto.oneof_decl.add(name=value)
            names.append(value)
          field.oneof_index = names.index(value)
        else:
          raise ValueError(f'{name}: unknown field option {opt!r} in {spec!r}')
  return fdp


_POOL = descriptor_pool.DescriptorPool()
for _table in (_FEATURE_PROTO, _EXAMPLE_PROTO, _AR_CAPTURE_PROTO, _OBJECT_PROTO, _ANNOTATION_PROTO):
  _POOL.Add(_file_descriptor(**_table))


def _cls(full_name: str):
  return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


# tensorflow/core/example
BytesList = _cls('tensorflow.BytesList')
FloatList = _cls('tensorflow.FloatList')
Int64List = _cls('tensorflow.Int64List')
Feature = _cls('tensorflow.Feature')
Features = _cls('tensorflow.Features')
FeatureList = _cls('tensorflow.FeatureList')
FeatureLists = _cls('tensorflow.FeatureLists')
Example = _cls('tensorflow.Example')
SequenceExample = _cls('tensorflow.SequenceExample')
# Objectron: a_r_capture_metadata.proto (nested types are attributes, e.g. ARCamera.EulerAngles)
ARCamera = _cls('research.compvideo.arcapture.ARCamera')
ARPlaneAnchor = _cls('research.compvideo.arcapture.ARPlaneAnchor')
ARFrame = _cls('research.compvideo.arcapture.ARFrame')
# Objectron: object.proto and annotation_data.proto
KeyPoint = _cls('xeno.pursuit.proto.KeyPoint')
Object = _cls('xeno.pursuit.proto.Object')
NormalizedPoint2D = _cls('xeno.pursuit.proto.NormalizedPoint2D')
Point2D = NormalizedPoint2D  # the upstream name is NormalizedPoint2D
Point3D = _cls('xeno.pursuit.proto.Point3D')
AnnotatedKeyPoint = _cls('xeno.pursuit.proto.AnnotatedKeyPoint')
ObjectAnnotation = _cls('xeno.pursuit.proto.ObjectAnnotation')
FrameAnnotation = _cls('xeno.pursuit.proto.FrameAnnotation')
Sequence = _cls('xeno.pursuit.proto.Sequence')
