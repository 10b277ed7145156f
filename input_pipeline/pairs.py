"""Which frames go together (pure index functions) and the Grain transform that builds the views.

Positions are counted in *kept* frames of a video (after the store's subsampling), in frame order.
  same_frame: the partner is the anchor itself (plain SimSiam: two augmentations of one frame).
  nearby:     the frame `offset` kept frames later; past the video end it is reflected to `offset`
              frames earlier, then clamped into the video (so a 1-frame video pairs with itself).
  distant:    uniform over all kept frames of the anchor's video (the anchor included).
  tcn:        positive uniform within +-`positive_range` kept frames (anchor excluded), negative
              uniform among frames at least `negative_min` kept frames away, same video.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import grain
import numpy as np

from input_pipeline import augment
from input_pipeline import frame_store as frame_store_lib

PAIR_MODES = ('same_frame', 'nearby', 'distant', 'tcn')


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
  """Record index of the anchor's partner under `mode` (same_frame / nearby / distant)."""
  records, pos = index.locate(anchor)
  if mode == 'same_frame':
    return int(anchor)
  if mode == 'nearby':
    return int(records[nearby_position(pos, len(records), offset)])
  if mode == 'distant':
    return int(records[rng.integers(len(records))])
  raise ValueError(f'unknown pair mode {mode!r}; expected one of {PAIR_MODES[:3]}')


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


def jpeg_reduction(window: tuple[int, int, int, int], image_size: int) -> int:
  """Largest libjpeg scale-down (1, 2, 4, 8) that keeps the crop window's longest side >= image_size,
  so decoding smaller still leaves `crop_and_resize` a downscale."""
  x0, y0, x1, y1 = window
  longest = max(x1 - x0, y1 - y0)
  return max(f for f in frame_store_lib.JPEG_REDUCTIONS if f == 1 or longest >= f * image_size)


class PairTransform(grain.transforms.RandomMap):
  """Anchor record index -> augmented views of the anchor and its partner(s) (a Grain random map).

  Both frames are cropped with the window of the anchor's keypoint box (so camera motion shows), or
  each with its own with per_frame_window=True; each view is augmented independently except for
  the horizontal flip, decided once per pair. In tcn mode the outputs add view3 (the negative).

  The window comes from the record's keypoints and stored image size, so it is known before the JPEG
  is decoded, and a frame that appears twice (same_frame) is decoded and cropped once. With
  decode_reduced=True the JPEG is decoded at 1/2, 1/4 or 1/8 scale (`jpeg_reduction` of the window)
  and the window recomputed on that image: about 2x cheaper decoding, slightly different pixels (DCT
  scaling, then INTER_AREA, instead of INTER_AREA alone).
  """

  def __init__(self, store: frame_store_lib.FrameStore | str, split: str, mode: str,
               image_size: int, *, offset: int = 1, aug: dict[str, Any] | None = None,
               margin: float = 0.0, per_frame_window: bool = False, decode_reduced: bool = False):
    if mode not in PAIR_MODES:
      raise ValueError(f'unknown pair mode {mode!r}; expected one of {PAIR_MODES}')
    self.store = store if isinstance(store, frame_store_lib.FrameStore) else (
        frame_store_lib.FrameStore(store))
    self.split, self.mode, self.image_size = split, mode, int(image_size)
    self.offset, self.margin, self.per_frame_window = int(offset), float(margin), per_frame_window
    self.decode_reduced = bool(decode_reduced)
    self.aug = augment.aug_config(aug)
    self.index = VideoIndex.from_store(self.store, split)

  def sample(self, anchor: int, rng: np.random.Generator) -> list[int]:
    if self.mode == 'tcn':
      return list(tcn_triplet(self.index, anchor, rng))
    return [int(anchor), partner_index(self.index, anchor, self.mode, rng, self.offset)]

  def _window(self, frame: dict[str, Any]) -> tuple[tuple[int, int, int, int], int]:
    """(crop window in the decoded image, JPEG reduction) from the record alone."""
    hw = (int(frame['image_height']), int(frame['image_width']))
    window = augment.crop_window(frame['point_2d'], hw, self.margin)
    if not self.decode_reduced:
      return window, 1
    reduce = jpeg_reduction(window, self.image_size)
    if reduce == 1:
      return window, 1
    return augment.crop_window(frame['point_2d'], frame_store_lib.reduced_shape(hw, reduce),
                               self.margin), reduce

  def _crop(self, record: int, frame: dict[str, Any], window, reduce: int) -> np.ndarray:
    where = f'{self.store.path} split {self.split!r} record {record}'
    image = frame_store_lib.decode_jpeg(frame['image'], where, reduce)
    want = frame_store_lib.reduced_shape((frame['image_height'], frame['image_width']), reduce)
    if image.shape[:2] != want:
      raise frame_store_lib.BadFrameError(
          f'{where}: JPEG decodes to {image.shape[1]}x{image.shape[0]} at 1/{reduce} scale, the record '
          f'says {frame["image_width"]}x{frame["image_height"]} (expected {want[1]}x{want[0]})')
    return augment.crop_and_resize(image, window, self.image_size)

  def random_map(self, element, rng: np.random.Generator) -> dict[str, np.ndarray]:
    anchor = int(element)
    records = self.sample(anchor, rng)
    frames = [frame_store_lib.decode(self.store.raw(self.split, r), decode_image=False)
              for r in records]
    window = reduce = None
    flip = bool(rng.random() < self.aug['flip_p'])
    crops: dict[tuple, np.ndarray] = {}  # the crop is a pure function of (record, window, reduce)
    out = {}
    for i, (record, frame) in enumerate(zip(records, frames)):
      if window is None or self.per_frame_window:
        window, reduce = self._window(frame)
      key = (record, window, reduce)
      if key not in crops:
        crops[key] = self._crop(record, frame, window, reduce)
      out[f'view{i + 1}'] = augment.augment_view(crops[key], rng, self.image_size, flip, self.aug)
    out.update(category=np.int32(frames[0]['category']),
               video=np.int32(self.index.record_video[anchor]),
               frame_id=np.int32(frames[0]['frame_id']),
               partner_frame_id=np.int32(frames[1]['frame_id']))
    if self.mode == 'tcn':
      out['negative_frame_id'] = np.int32(frames[2]['frame_id'])
    return out
