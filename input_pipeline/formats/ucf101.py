"""UCF101 in its two public forms, read into one `Clip` type: the raw layout and TFDS's `ucf101` builder.

Raw layout (as distributed by UCF, www.crcv.ucf.edu/data/UCF101.php):

  ROOT/UCF-101/<ClassName>/v_<ClassName>_gXX_cYY.avi    one clip per file (group XX, clip YY of the group)
  ROOT/ucfTrainTestlist/classInd.txt                    "1 ApplyEyeMakeup" (1-based class index, name)
  ROOT/ucfTrainTestlist/trainlist0N.txt                 "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
  ROOT/ucfTrainTestlist/testlist0N.txt                  "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

The three official splits hold out whole groups (the same actors and scene): test groups 1-7 for split
1, 8-14 for split 2, 15-21 for split 3. Labels here are 0-based (classInd index - 1), as in TFDS.

TFDS (`tensorflow_datasets`, builder `ucf101/ucf101_N`, features `video` uint8 [T, H, W, 3] and `label`,
a 0-based ClassLabel of the 101 names) needs TensorFlow to build the dataset: it is imported only inside
`tfds_clips` (`pip install -e ".[tf]"`), so the rest of the project stays TensorFlow-free.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterator

import cv2
import numpy as np

from input_pipeline.formats.tfrecord import RecordError

VIDEO_DIR = 'UCF-101'
LIST_DIR = 'ucfTrainTestlist'
CLASS_INDEX = 'classInd.txt'
SPLIT_NUMBERS = (1, 2, 3)
SUBSETS = ('train', 'test')
FPS = 25.0  # UCF101's frame rate (timestamps of the stored frames)
TEST_GROUPS = {1: range(1, 8), 2: range(8, 15), 3: range(15, 22)}  # the official held-out groups
_CLIP_NAME = re.compile(r'^v_(?P<cls>[A-Za-z0-9]+)_g(?P<group>\d+)_c(?P<clip>\d+)\.avi$')


@dataclasses.dataclass(frozen=True)
class ClipRef:
  """One line of a split list: the clip's file (relative to UCF-101/), its class and group."""
  path: str      # 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi'
  label: int     # 0-based class index
  group: int     # gXX (-1 when the name does not say)

  @property
  def video_id(self) -> str:
    return self.path[:-len('.avi')] if self.path.endswith('.avi') else self.path


@dataclasses.dataclass
class Clip:
  """A decoded clip: RGB uint8 frames [T, H, W, 3] with its id, 0-based label and group."""
  video_id: str
  label: int
  frames: np.ndarray
  group: int = -1


def clip_name(class_name: str, group: int, clip: int) -> str:
  """'<Class>/v_<Class>_gXX_cYY.avi', the path of a clip under UCF-101/."""
  return f'{class_name}/v_{class_name}_g{group:02d}_c{clip:02d}.avi'


def group_of(path: str) -> int:
  match = _CLIP_NAME.match(os.path.basename(path))
  return int(match['group']) if match else -1


def list_path(root: str, subset: str, split_number: int) -> str:
  if subset not in SUBSETS:
    raise ValueError(f'UCF101 subset {subset!r}: expected one of {SUBSETS}')
  if split_number not in SPLIT_NUMBERS:
    raise ValueError(f'UCF101 split {split_number!r}: expected one of {SPLIT_NUMBERS}')
  return os.path.join(root, LIST_DIR, f'{subset}list{split_number:02d}.txt')


def _lines(path: str) -> list[tuple[int, str]]:
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: UCF101 list file not found (expected the official ucfTrainTestlist/ '
                            'layout, see input_pipeline/formats/ucf101.py)')
  with open(path, encoding='utf-8') as f:
    return [(i + 1, line.strip()) for i, line in enumerate(f) if line.strip()]


def read_class_index(root: str) -> tuple[str, ...]:
  """Class names in label order, from classInd.txt (its indices must run 1..N)."""
  path = os.path.join(root, LIST_DIR, CLASS_INDEX)
  names = []
  for number, line in _lines(path):
    parts = line.split()
    if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(names) + 1:
      raise RecordError(f'{path} line {number}: expected "{len(names) + 1} <ClassName>", got {line!r}')
    names.append(parts[1])
  if not names:
    raise RecordError(f'{path}: no classes')
  return tuple(names)


def read_split_list(root: str, subset: str, split_number: int = 1,
                    classes: tuple[str, ...] | None = None) -> list[ClipRef]:
  """The clips of one official list; the label comes from the clip's class folder (checked against
  the train list's own 1-based label)."""
  classes = classes or read_class_index(root)
  label_of = {c.lower(): i for i, c in enumerate(classes)}
  path = list_path(root, subset, split_number)
  refs = []
  for number, line in _lines(path):
    parts = line.split()
    clip = parts[0]
    cls = clip.split('/')[0]
    if len(parts) > 2 or '/' not in clip or cls.lower() not in label_of:
      raise RecordError(f'{path} line {number}: expected "<ClassName>/v_<ClassName>_gXX_cYY.avi'
                        f'{" <label>" if subset == "train" else ""}" with a class of {CLASS_INDEX}, got {line!r}')
    label = label_of[cls.lower()]
    if len(parts) == 2 and parts[1] != str(label + 1):
      raise RecordError(f'{path} line {number}: label {parts[1]} but class {cls!r} is {label + 1} in '
                        f'{CLASS_INDEX}')
    refs.append(ClipRef(path=clip, label=label, group=group_of(clip)))
  return refs


def clip_file(root: str, ref: ClipRef) -> str:
  """The .avi of a list entry. UCF's lists and archives disagree on a few names' case (e.g.
  HandStandPushups / HandstandPushups), so a case-insensitive match is accepted."""
  path = os.path.join(root, VIDEO_DIR, ref.path)
  if os.path.exists(path):
    return path
  directory = os.path.dirname(path)
  if not os.path.isdir(directory):  # the class folder itself may differ in case
    parent = os.path.dirname(directory)
    match = [d for d in (os.listdir(parent) if os.path.isdir(parent) else [])
             if d.lower() == os.path.basename(directory).lower()]
    directory = os.path.join(parent, match[0]) if match else directory
  if os.path.isdir(directory):
    match = [f for f in os.listdir(directory) if f.lower() == os.path.basename(path).lower()]
    if match:
      return os.path.join(directory, match[0])
  raise FileNotFoundError(f'{path}: clip listed in the split lists of {os.path.join(root, LIST_DIR)} '
                          'does not exist')


def read_video(path: str) -> np.ndarray:
  """Every frame of a video file as RGB uint8 [T, H, W, 3] (OpenCV's decoder)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: video file not found')
  cap = cv2.VideoCapture(path)
  frames = []
  try:
    while cap.isOpened():
      ok, frame = cap.read()
      if not ok:
        break
      frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
  finally:
    cap.release()
  if not frames:
    raise RecordError(f'{path}: no frame decodes (corrupt or not a video)', 'bad_image')
  if len({f.shape for f in frames}) != 1:
    raise RecordError(f'{path}: frames change size mid-video', 'bad_image')
  return np.stack(frames)


def raw_clips(root: str, subset: str, split_number: int = 1) -> Iterator[Clip]:
  """The decoded clips of one official list, in list order."""
  classes = read_class_index(root)
  for ref in read_split_list(root, subset, split_number, classes):
    yield Clip(video_id=ref.video_id, label=ref.label, frames=read_video(clip_file(root, ref)),
               group=ref.group)


def write_split_lists(root: str, classes: tuple[str, ...], clips: list[tuple[str, int]]) -> None:
  """classInd.txt and the three official train/test lists for `clips` ((path under UCF-101/, label)),
  each clip's side decided by its group as in UCF101."""
  directory = os.path.join(root, LIST_DIR)
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, CLASS_INDEX), 'w') as f:
    f.writelines(f'{i + 1} {c}\n' for i, c in enumerate(classes))
  for n in SPLIT_NUMBERS:
    test = [(p, l) for p, l in clips if group_of(p) in TEST_GROUPS[n]]
    train = [(p, l) for p, l in clips if group_of(p) not in TEST_GROUPS[n]]
    with open(list_path(root, 'train', n), 'w') as f:
      f.writelines(f'{p} {l + 1}\n' for p, l in train)
    with open(list_path(root, 'test', n), 'w') as f:
      f.writelines(f'{p}\n' for p, _ in test)


# ----------------------------------------------------------------------------------------- TFDS
def tfds_classes(split_number: int = 1, data_dir: str | None = None) -> tuple[str, ...]:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (TensorFlow: the `tf` extra)
  builder = tfds.builder(f'ucf101/ucf101_{split_number}', data_dir=data_dir)
  return tuple(builder.info.features['label'].names)


def tfds_clips(subset: str, split_number: int = 1, data_dir: str | None = None) -> Iterator[Clip]:
  """The clips of TFDS's `ucf101/ucf101_N` split `subset`, in the prepared dataset's order.

  TFDS keeps no file name, so the video id is `<ClassName>/<tfds_id>` and the group is unknown (-1).
  The dataset must have been prepared (`tfds.builder('ucf101/ucf101_1').download_and_prepare()`).
  """
  if subset not in SUBSETS or split_number not in SPLIT_NUMBERS:
    raise ValueError(f'UCF101 subset {subset!r} / split {split_number!r}: expected {SUBSETS} / {SPLIT_NUMBERS}')
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise ImportError('data.ucf101.source=tfds needs TensorFlow: pip install -e ".[tf]"') from e
  classes = tfds_classes(split_number, data_dir)
  ds = tfds.load(f'ucf101/ucf101_{split_number}', split=subset, data_dir=data_dir, shuffle_files=False,
                 read_config=tfds.ReadConfig(add_tfds_id=True))
  for ex in tfds.as_numpy(ds):
    label = int(ex['label'])
    tfds_id = ex['tfds_id'].decode() if isinstance(ex['tfds_id'], bytes) else str(ex['tfds_id'])
    frames = np.asarray(ex['video'], np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
      raise RecordError(f'TFDS ucf101 example {tfds_id}: video of shape {frames.shape}, expected [T, H, W, 3]')
    yield Clip(video_id=f'{classes[label]}/{tfds_id}', label=label, frames=frames)


# ----------------------------------------------------------------------------------------- frames
def centre_crop(frame: np.ndarray, size: int) -> np.ndarray:
  """The central square of a frame (side = its shorter side), resized to size x size."""
  h, w = frame.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = frame[top:top + side, left:left + side]
  if side == size:
    return np.ascontiguousarray(square)
  return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
