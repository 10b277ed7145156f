"""Which frames go together: pure index functions over a split's videos (the views are built in
`input_pipeline.loader.datasets.PairTransform`).

Positions are counted in *kept* frames of a video (after the store's subsampling), in frame order.
  same_frame: the partner is the anchor itself (plain SimSiam: two augmentations of one frame).
  nearby:     the frame `offset` kept frames later; past the video end it is reflected to `offset`
              frames earlier, then clamped into the video (so a 1-frame video pairs with itself).
  distant:    uniform over all kept frames of the anchor's video (the anchor included).
  mixed:      nearby or distant, each with probability 1/2 (one model sees both kinds of pairs).
  nearby_distant: two partners, a nearby one and a distant one (two heads, one per pair kind).
  tcn:        positive uniform within +-`positive_range` kept frames (anchor excluded), negative
              uniform among frames at least `negative_min` kept frames away, same video.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from input_pipeline.store import frame_store as frame_store_lib

PAIR_MODES = ('same_frame', 'nearby', 'distant', 'mixed', 'nearby_distant', 'tcn')
PARTNER_MODES = ('same_frame', 'nearby', 'distant', 'mixed')


@dataclasses.dataclass(frozen=True)
class VideoIndex:
  """Record -> (video, position) and video -> records in frame order, for one split."""
  video_records: tuple[np.ndarray, ...]  # per video: record indices in frame order
  record_video: np.ndarray               # [N] video index of each record
  record_position: np.ndarray            # [N] position of each record within its video

  @classmethod
  def from_videos(cls, videos: list[dict[str, Any]]) -> VideoIndex:
    video_records = tuple(np.asarray(v['records'], np.int64) for v in videos)
    n = sum(len(r) for r in video_records)
    record_video = np.full(n, -1, np.int32)
    record_position = np.full(n, -1, np.int32)
    for vi, recs in enumerate(video_records):
      record_video[recs] = vi
      record_position[recs] = np.arange(len(recs))
    if (record_video < 0).any():
      raise ValueError(f'video index does not cover records {np.flatnonzero(record_video < 0)[:10]}')
    return cls(video_records, record_video, record_position)

  @classmethod
  def from_store(cls, store: frame_store_lib.FrameStore, split: str) -> VideoIndex:
    return cls.from_videos(store.videos(split))

  def __len__(self) -> int:
    return len(self.record_video)

  def locate(self, record: int) -> tuple[np.ndarray, int]:
    return self.video_records[self.record_video[record]], int(self.record_position[record])


def nearby_position(position: int, length: int, offset: int = 1) -> int:
  p = position + offset
  if p >= length or p < 0:
    p = position - offset
  return int(np.clip(p, 0, length - 1))


def partner_index(index: VideoIndex, anchor: int, mode: str, rng: np.random.Generator,
                  offset: int = 1) -> int:
  """Record index of the anchor's partner under `mode` (one of PARTNER_MODES)."""
  records, pos = index.locate(anchor)
  if mode == 'mixed':
    mode = 'nearby' if rng.random() < 0.5 else 'distant'
  if mode == 'same_frame':
    return int(anchor)
  if mode == 'nearby':
    return int(records[nearby_position(pos, len(records), offset)])
  if mode == 'distant':
    return int(records[rng.integers(len(records))])
  raise ValueError(f'unknown pair mode {mode!r}; expected one of {PARTNER_MODES}')


def has_tcn_negative(index: VideoIndex, anchor: int, negative_min: int = 3) -> bool:
  records, pos = index.locate(anchor)
  return pos >= negative_min or len(records) - 1 - pos >= negative_min


def tcn_triplet(index: VideoIndex, anchor: int, rng: np.random.Generator, positive_range: int = 1,
                negative_min: int = 3) -> tuple[int, int, int]:
  """(anchor, positive, negative) record indices; ValueError if the video has no valid negative."""
  records, pos = index.locate(anchor)
  n = len(records)
  near = [q for q in range(pos - positive_range, pos + positive_range + 1) if 0 <= q < n and q != pos]
  far = np.concatenate([np.arange(0, max(0, pos - negative_min + 1)),
                        np.arange(pos + negative_min, n)])
  if not far.size:
    raise ValueError(f'record {anchor}: its video has {n} kept frames, none {negative_min} or more '
                     f'away from position {pos} (no TCN negative)')
  positive = records[near[rng.integers(len(near))]] if near else records[pos]
  return int(anchor), int(positive), int(records[far[rng.integers(far.size)]])
