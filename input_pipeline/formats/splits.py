"""Which split a video belongs to: Objectron's official train/test (its index files), and an optional
validation split carved out of the training videos by a seeded hash of the video id — stable across runs,
readers and machines, so the synthetic generator's manifest and the ingest agree on it.

The carve never takes every training video of a class (the one with the largest hash stays in training):
otherwise a small dataset could leave a class with no gallery frame at all, and every per-class
baseline of the evaluation would have nothing to pick from.
"""
from __future__ import annotations

import collections
import hashlib

SPLITS = ('train', 'val', 'test')


def _hash(video_id: str, seed: int) -> float:
  return int.from_bytes(hashlib.sha256(f'{seed}:{video_id}'.encode()).digest()[:8], 'little') / 2**64


def category_of(video_id: str) -> str:
  """Objectron ids are `class/batch-i/j`."""
  return video_id.split('/', 1)[0]


def assign_all(official: dict[str, str], val_fraction: float = 0.0, seed: int = 0) -> dict[str, str]:
  """video id -> 'train' | 'val' | 'test' for every video of `official` (id -> 'train' | 'test').

  A training video goes to 'val' when its hash falls below `val_fraction`, except that each class keeps
  at least one training video.
  """
  if not 0 <= val_fraction < 1:
    raise ValueError(f'validation fraction must be in [0, 1), got {val_fraction}')
  bad = {s for s in official.values() if s not in ('train', 'test')}
  if bad:
    raise ValueError(f'official splits must be train or test, got {sorted(bad)}')
  out = dict(official)
  train_by_class = collections.defaultdict(list)
  for vid, split in official.items():
    if split == 'train':
      train_by_class[category_of(vid)].append(vid)
  for vids in train_by_class.values():
    carved = [v for v in vids if _hash(v, seed) < val_fraction]
    if len(carved) == len(vids):
      carved.remove(max(carved, key=lambda v: _hash(v, seed)))
    out.update({v: 'val' for v in carved})
  return out
