"""python -m input_pipeline.synthetic --output=DIR [--videos_per_category=6 ...] [--preview=a.png]"""
from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from input_pipeline.formats import geometry
from input_pipeline.formats.frame_record import CATEGORIES
from input_pipeline.synthetic import dataset
from input_pipeline.synthetic.videos import frame_record, make_video, render_frame


def draw_box(image: np.ndarray, point_2d: np.ndarray, colour=(0, 255, 0)) -> np.ndarray:
  """Draws the 12 edges and centre of a projected box (`point_2d` [9, 3]) on a BGR image copy."""
  out = image.copy()
  h, w = out.shape[:2]
  px = [(int(round(u * w - 0.5)), int(round(v * h - 0.5))) for u, v, _ in point_2d]
  for a, b in geometry.EDGES:
    cv2.line(out, px[a], px[b], colour, 1, cv2.LINE_AA)
  cv2.circle(out, px[0], 3, (0, 0, 255), -1)
  return out


def contact_sheet(seed: int = 0, frames=(0, 12, 23), num_frames: int = 24, scale: float = 0.4,
                  search: int = 12):
  """One row per class, boxes drawn; BGR uint8.

  Columns: `frames` of video 0, the first frame of videos 1-3 (other instances, other rooms); then the
  most occluded frame of the first video with distractors, and the first and last frames of the first
  with drifting light (among the first `search` videos; black if none).
  """
  def tile(video, i):
    image = draw_box(render_frame(video, i), frame_record(video, i, b'').point_2d[0])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)

  def video(c, k):
    return make_video(c, k, k, num_frames=num_frames, seed=seed)

  def first(c, has):
    return next((v for v in (video(c, k) for k in range(search)) if has(v)), None)

  blank = np.zeros((round(geometry.IMAGE_HEIGHT * scale), round(geometry.IMAGE_WIDTH * scale), 3),
                   np.uint8)
  rows = []
  for c in CATEGORIES:
    tiles = [tile(video(c, 0), i) for i in frames] + [tile(video(c, k), 0) for k in (1, 2, 3)]
    occluded = first(c, lambda v: v.occluders)
    tiles.append(tile(occluded, occluded.occluders[0].occluded_frame) if occluded else blank)
    drifting = first(c, lambda v: v.lighting_drift)
    tiles += [tile(drifting, i) for i in (0, num_frames - 1)] if drifting else [blank, blank]
    rows.append(np.concatenate(tiles, axis=1))
  return np.concatenate(rows, axis=0)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--output', help='dataset root to write')
  parser.add_argument('--videos_per_category', type=int, default=40)
  parser.add_argument('--frames_per_video', type=int, default=24)
  parser.add_argument('--instances_per_category', type=int, default=0,
                      help='0: every video its own instance; N: video v shows instance v %% N')
  parser.add_argument('--test_fraction', type=float, default=0.25)
  parser.add_argument('--val_fraction', type=float, default=0.0)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--num_shards', type=int, default=2)
  parser.add_argument('--num_workers', type=int, default=1)
  parser.add_argument('--formats', default='records', help='comma-separated: records,sequences,raw')
  parser.add_argument('--preview', help='write a PNG contact sheet of a few frames with boxes')
  args = parser.parse_args(argv)
  if not args.output and not args.preview:
    parser.error('give --output and/or --preview')
  if args.preview:
    cv2.imwrite(args.preview, contact_sheet(args.seed))
    print(f'preview: {args.preview}')
  if args.output:
    summary = dataset.generate(
        args.output, videos_per_category=args.videos_per_category,
        frames_per_video=args.frames_per_video, instances_per_category=args.instances_per_category,
        test_fraction=args.test_fraction, val_fraction=args.val_fraction, seed=args.seed,
        num_shards=args.num_shards, num_workers=args.num_workers,
        formats=tuple(args.formats.split(',')), progress=print)
    for c, splits in summary['categories'].items():
      for split, info in splits.items():
        print(f'{c} {split}: {info["videos"]} videos, {info["frames"]} frames -> '
              f'{", ".join(info["records"] + info["sequences"] + info["raw"])}; index {info["index"]}')
    print(f'{summary["num_frames"]} frames in {summary["seconds"]:.1f}s; manifest '
          f'{summary["manifest"]}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
