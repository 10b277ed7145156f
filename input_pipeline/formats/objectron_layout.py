"""Where a copy of Objectron keeps its files, resolved once per root: `Layout.find(root)`.

Accepted roots (local or gs://, e.g. `gs://objectron` itself, read in place):

  ROOT/v1/index/<class>_annotations_{train,test}   as the public bucket keeps them (a mirror as downloaded)
  ROOT/index/<class>_annotations_{train,test}      as the Objectron repository and this project's writers do
  ROOT/v1/records_shuffled/<class>/<class>_{train,test}-*   per-frame tf.Example shards     (records)
  ROOT/v1/sequences/<class>/<class>_{train,test}-*          per-video SequenceExample shards (sequences)
  ROOT/annotations/<class>/batch-i/j.pbdata                 raw Sequence protos              (raw)
  ROOT/videos/<class>/batch-i/j/{video.MOV,geometry.pbdata} raw videos and AR frames

The index files say which videos exist and their official split; a root without them is not a usable
copy, and `find` says which paths it looked for.
"""
from __future__ import annotations

import dataclasses
import re

from etils import epath

from input_pipeline.formats import paths
from input_pipeline.formats.frame_record import CATEGORIES

SPLITS = ('train', 'test')
FORMATS = ('records', 'sequences', 'raw')
INDEX_DIRS = ('v1/index', 'index')      # searched in this order
_FORMAT_DIRS = {'records': 'v1/records_shuffled', 'sequences': 'v1/sequences', 'raw': 'annotations'}
_VIDEO_ID_RE = r'^{}/batch-\d+/\d+$'


def _check(category: str, split: str) -> None:
  if category not in CATEGORIES:
    raise ValueError(f'unknown category {category!r}; expected one of {CATEGORIES}')
  if split not in SPLITS:
    raise ValueError(f'split must be one of {SPLITS}, got {split!r}')


def index_name(category: str, split: str) -> str:
  _check(category, split)
  return f'{category}_annotations_{split}'


def check_video_id(video_id: str, category: str, where: str) -> None:
  if not re.match(_VIDEO_ID_RE.format(re.escape(category)), video_id):
    raise ValueError(f'{where}: video id {video_id!r} is not {category}/batch-i/j')


def parse_index(path: epath.Path, category: str) -> list[str]:
  """Video ids of one index file, in file order, each checked to be `<category>/batch-i/j`."""
  out = []
  for lineno, line in enumerate(path.read_text().splitlines(), 1):
    vid = line.strip()
    if vid:
      check_video_id(vid, category, f'{path} line {lineno}')
      out.append(vid)
  return out


@dataclasses.dataclass(frozen=True)
class Layout:
  """An Objectron root and the folder that holds its index files."""
  root: epath.Path
  index_dir: epath.Path

  @classmethod
  def find(cls, root) -> 'Layout':
    root = paths.resolve(root)
    looked = [root / d for d in INDEX_DIRS]
    for d in looked:
      if d.is_dir() and any(d.glob('*_annotations_*')):
        return cls(root, d)
    raise FileNotFoundError(
        f'{root} is not a copy of Objectron: no <class>_annotations_{{train,test}} index files in '
        + ' or '.join(str(d) for d in looked) + ' (see the README, "Training on real Objectron data")')

  def index_path(self, category: str, split: str) -> epath.Path:
    return self.index_dir / index_name(category, split)

  def has_index(self, category: str, split: str) -> bool:
    return self.index_path(category, split).exists()

  def videos(self, category: str, split: str) -> list[str]:
    """The video ids of `index/<class>_annotations_<split>` ([] when the root has no such file)."""
    path = self.index_path(category, split)
    return parse_index(path, category) if path.exists() else []

  def split_of(self, categories=CATEGORIES) -> dict[str, str]:
    """video id -> official split, over every index file of `categories` present."""
    return {v: split for c in categories for split in SPLITS for v in self.videos(c, split)}

  def format_dir(self, fmt: str) -> epath.Path:
    if fmt not in FORMATS:
      raise ValueError(f'data.format={fmt!r}: expected one of {FORMATS}')
    return self.root / _FORMAT_DIRS[fmt]

  def formats(self) -> tuple[str, ...]:
    """The formats this root holds data for, in FORMATS order."""
    return tuple(f for f in FORMATS if self.format_dir(f).is_dir())

  def shards(self, fmt: str, category: str, split: str) -> list[str]:
    """Sorted shard paths `v1/<records_shuffled|sequences>/<class>/<class>_<split>-*` (records, sequences)."""
    if fmt == 'raw':
      raise ValueError('the raw format has no shards: its sources are the indexed videos')
    _check(category, split)
    folder = self.format_dir(fmt) / category
    return sorted(str(p) for p in folder.glob(f'{category}_{split}-*')) if folder.is_dir() else []

  def raw_paths(self, video_id: str) -> tuple[str, str, str]:
    """(annotation .pbdata, video.MOV, geometry.pbdata) of a video id `class/batch-i/j`."""
    return raw_paths(self.root, video_id)


def raw_paths(root, video_id: str) -> tuple[str, str, str]:
  """The raw files of a video id under `root` (the writer's side needs them without index files)."""
  parts = video_id.split('/')
  if len(parts) != 3 or not parts[1].startswith('batch-') or not all(parts):
    raise ValueError(f'video id {video_id!r} is not class/batch-i/j')
  root = paths.resolve(root)
  video_dir = root / 'videos' / parts[0] / parts[1] / parts[2]
  return (str(root / 'annotations' / parts[0] / parts[1] / f'{parts[2]}.pbdata'),
          str(video_dir / 'video.MOV'), str(video_dir / 'geometry.pbdata'))
