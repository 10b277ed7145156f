"""Which split a video belongs to: Objectron's official train/test (its index files), and an optional
validation split carved out of the training videos by a seeded hash of the video id — stable across runs,
readers and machines, so the synthetic generator's manifest and the ingest agree on it."""
from __future__ import annotations

import hashlib

SPLITS = ('train', 'val', 'test')


def is_validation(video_id: str, fraction: float, seed: int = 0) -> bool:
  """True for the ~`fraction` of training videos carved out as the validation split."""
  if not 0 <= fraction < 1:
    raise ValueError(f'validation fraction must be in [0, 1), got {fraction}')
  h = int.from_bytes(hashlib.sha256(f'{seed}:{video_id}'.encode()).digest()[:8], 'little')
  return h / 2**64 < fraction


def assign(official: str, video_id: str, val_fraction: float = 0.0, seed: int = 0) -> str:
  """The split of a video whose official split is `official` ('train' or 'test')."""
  if official == 'train' and val_fraction > 0 and is_validation(video_id, val_fraction, seed):
    return 'val'
  return official
