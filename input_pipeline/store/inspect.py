"""Look inside a frame store or an Objectron root: one JSON line per frame, or counts per split/class.

  python -m input_pipeline.store.inspect DIR [--json] [--limit N] [--format store|records|sequences|raw]

DIR is a frame store (holds index.json) or an Objectron-layout root; the layout is detected (records,
then sequences, then raw, when a root holds several) unless --format names it. Each JSON line describes
the frame's first object instance, which is what a frame store keeps, with `instance_num` saying how
many the frame has (1 in a store; with 0 the instance keys are null); `split` comes from the store or
the root's index files (null for a video in none).
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import sys
from typing import Any, Iterator

import numpy as np

from input_pipeline.formats import objectron_layout
from input_pipeline.formats import paths
from input_pipeline.formats.frame_record import CATEGORIES
from input_pipeline.store import frame_store
from input_pipeline.store import ingest

LAYOUTS = ('store',) + objectron_layout.FORMATS


def detect_layout(directory: str) -> str:
  """'store' for a frame store, else the first format (records, sequences, raw) the Objectron root holds."""
  if paths.resolve(directory).joinpath(frame_store.INDEX_FILE).exists():
    return 'store'
  try:
    formats = objectron_layout.Layout.find(directory).formats()
  except FileNotFoundError as e:
    raise FileNotFoundError(f'{directory}: not a frame store (no {frame_store.INDEX_FILE}), and {e}') from e
  if not formats:
    raise FileNotFoundError(f'{directory}: an Objectron root with index files but no data (no '
                            'v1/records_shuffled, v1/sequences or annotations/)')
  return formats[0]


_INSTANCE_KEYS = ('point_2d', 'point_3d', 'rotation', 'translation', 'scale', 'visibility')
_FRAME_KEYS = ('intrinsics', 'projection', 'view', 'extrinsics', 'plane_center', 'plane_normal')


def _row(split, video_id, frame_id, category, instance_id, instance_num, fields) -> dict[str, Any]:
  """One output line; with instance_num 0 the instance keys are null."""
  out = {'split': split, 'video_id': video_id, 'frame_id': int(frame_id), 'category': category,
         'instance_id': int(instance_id) if instance_num else None, 'instance_num': int(instance_num),
         'timestamp_us': int(fields['timestamp_us']), 'image_height': int(fields['image_height']),
         'image_width': int(fields['image_width'])}
  for key in _FRAME_KEYS + _INSTANCE_KEYS:
    out[key] = np.asarray(fields[key], np.float64).tolist() if key in fields else None
  if out['point_2d'] is not None:  # (u, v) normalised, depth apart
    out['depth'] = [p[2] for p in out['point_2d']]
    out['point_2d'] = [p[:2] for p in out['point_2d']]
  else:
    out['depth'] = None
  return out


def _store_rows(directory: str) -> Iterator[dict[str, Any]]:
  store = frame_store.open_store(directory)
  for split in store.splits:
    for i in range(store.num_frames(split)):
      rec = frame_store.decode(store.raw(split, i), decode_image=False)
      yield _row(split, rec['video_id'], rec['frame_id'], CATEGORIES[rec['category']], rec['instance_id'],
                 1, rec)


def _root_rows(directory: str, fmt: str) -> Iterator[dict[str, Any]]:
  layout = objectron_layout.Layout.find(directory)
  split_of = layout.split_of()
  for rec in ingest.read_frames(layout, fmt):
    fields = {k: getattr(rec, k) for k in ('timestamp_us', 'image_height', 'image_width') + _FRAME_KEYS}
    if rec.instance_num:
      fields.update({k: getattr(rec, k)[0] for k in _INSTANCE_KEYS})
    instance_id = tuple(rec.instance_ids)[0] if rec.instance_ids else 0
    yield _row(split_of.get(rec.video_id), rec.video_id, rec.frame_id, rec.category, instance_id,
               rec.instance_num, fields)


def iter_rows(directory: str, layout: str | None = None) -> Iterator[dict[str, Any]]:
  """The JSON-ready description of every frame under `directory` (see the module docstring)."""
  layout = layout or detect_layout(directory)
  if layout not in LAYOUTS:
    raise ValueError(f'unknown layout {layout!r}; expected one of {LAYOUTS}')
  return _store_rows(directory) if layout == 'store' else _root_rows(directory, layout)


def summary(rows) -> str:
  """Frames and videos per split and class, as a small table."""
  frames, videos = collections.Counter(), collections.defaultdict(set)
  for row in rows:
    key = (str(row['split']), row['category'])
    frames[key] += 1
    videos[key].add(row['video_id'])
  lines = [f'{"split":<8} {"category":<12} {"videos":>7} {"frames":>8}']
  for key in sorted(frames):
    lines.append(f'{key[0]:<8} {key[1]:<12} {len(videos[key]):>7} {frames[key]:>8}')
  total_videos = len(set().union(*videos.values())) if videos else 0
  lines.append(f'{"total":<8} {"":<12} {total_videos:>7} {sum(frames.values()):>8}')
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('directory', help='frame store or Objectron root')
  parser.add_argument('--json', action='store_true', help='one JSON object per frame instead of counts')
  parser.add_argument('--limit', type=int, default=None, help='stop after this many frames')
  parser.add_argument('--format', choices=LAYOUTS, default=None, help='layout (default: detected)')
  args = parser.parse_args(argv)
  if args.limit is not None and args.limit < 0:
    parser.error('--limit must be >= 0')
  layout = args.format or detect_layout(args.directory)
  rows = itertools.islice(iter_rows(args.directory, layout), args.limit)
  if args.json:
    for row in rows:
      print(json.dumps(row))
  else:
    print(f'{args.directory} ({layout})')
    print(summary(rows))
  return 0


if __name__ == '__main__':
  sys.exit(main())
