"""Grain training pipeline over the frame store: deterministic, sharded per process, checkpointable.

Order of operations (all MapDataset, so every element is a pure function of (seed, global index)):
  anchors -> seed(seed) -> shuffle -> repeat (each epoch reshuffled) -> random_map(PairTransform)
  -> [process_index::process_count] -> batch(global_batch // process_count)
Pairs are sampled and augmented with the RNG of the element's *global* position, and the processes
take interleaved disjoint elements, so the union of the processes' i-th batches is the same global
batch whatever the process count; worker processes only change where batches are computed.
The iterator state (grain `get_state()`) is per process: resume with the same process count.
"""
from __future__ import annotations

from typing import Any

import grain

from input_pipeline import frame_store as frame_store_lib
from input_pipeline import pairs


def train_dataset(store_path: str, *, pair_mode: str, image_size: int, global_batch_size: int,
                  seed: int, process_index: int = 0, process_count: int = 1,
                  nearby_offset: int = 1, aug: dict[str, Any] | None = None, margin: float = 0.0,
                  per_frame_window: bool = False, split: str = 'train',
                  num_epochs: int | None = None) -> grain.MapDataset:
  """Batches of {'view1', 'view2', 'category', 'video', 'frame_id', 'partner_frame_id'} (+ tcn's view3).

  Anchors are all kept frames of `split` (for tcn, those with a valid negative). Infinite by
  default (num_epochs=None); the last partial batch of a finite run is dropped.
  """
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(f'global batch size {global_batch_size} is not a positive multiple of the '
                     f'process count {process_count}')
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')
  store = frame_store_lib.FrameStore(store_path)
  transform = pairs.PairTransform(store, split, pair_mode, image_size, offset=nearby_offset,
                                  aug=aug, margin=margin, per_frame_window=per_frame_window)
  anchors = list(range(store.num_frames(split)))
  if pair_mode == 'tcn':
    anchors = [a for a in anchors if pairs.has_tcn_negative(transform.index, a)]
  if not anchors:
    raise ValueError(f'{store_path}: no anchor frames in split {split!r} for mode {pair_mode!r}')
  ds = grain.MapDataset.source(anchors).seed(seed).shuffle().repeat(num_epochs)
  ds = ds.random_map(transform)
  ds = ds[process_index::process_count]
  return ds.batch(global_batch_size // process_count, drop_remainder=True)


def train_iterator(dataset: grain.MapDataset, *, worker_count: int = 0, read_threads: int = 2,
                   prefetch: int = 4, worker_buffer_size: int = 1) -> grain.DatasetIterator:
  """Iterator over `dataset` with thread prefetch (and worker processes when worker_count > 0).

  Its `get_state()`/`set_state()` round trip resumes at the exact next batch. With workers, absl
  flags must be parsed in the parent (run under absl.app.run, or FLAGS.mark_as_parsed()).
  """
  ds = dataset.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                                 prefetch_buffer_size=prefetch))
  if worker_count > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count,
                                                     per_worker_buffer_size=worker_buffer_size))
  return iter(ds)
