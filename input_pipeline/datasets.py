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

import functools
import os
from typing import Any

import cv2
import grain

from input_pipeline import frame_store as frame_store_lib
from input_pipeline import pairs


def train_dataset(store_path: str, *, pair_mode: str, image_size: int, global_batch_size: int,
                  seed: int, process_index: int = 0, process_count: int = 1,
                  nearby_offset: int = 1, aug: dict[str, Any] | None = None, margin: float = 0.0,
                  per_frame_window: bool = False, decode_reduced: bool = False,
                  split: str = 'train', num_epochs: int | None = None) -> grain.MapDataset:
  """Batches of {'view1', 'view2', 'category', 'video', 'frame_id', 'partner_frame_id'} (+ tcn's view3).

  Anchors are all kept frames of `split` (for tcn, those with a valid negative). Infinite by
  default (num_epochs=None); the last partial batch of a finite run is dropped. decode_reduced: see
  `pairs.PairTransform` (faster, slightly different pixels).
  """
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(f'global batch size {global_batch_size} is not a positive multiple of the '
                     f'process count {process_count}')
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')
  store = frame_store_lib.FrameStore(store_path)
  transform = pairs.PairTransform(store, split, pair_mode, image_size, offset=nearby_offset,
                                  aug=aug, margin=margin, per_frame_window=per_frame_window,
                                  decode_reduced=decode_reduced)
  anchors = list(range(store.num_frames(split)))
  if pair_mode == 'tcn':
    anchors = [a for a in anchors if pairs.has_tcn_negative(transform.index, a)]
  if not anchors:
    raise ValueError(f'{store_path}: no anchor frames in split {split!r} for mode {pair_mode!r}')
  ds = grain.MapDataset.source(anchors).seed(seed).shuffle().repeat(num_epochs)
  ds = ds.random_map(transform)
  ds = ds[process_index::process_count]
  return ds.batch(global_batch_size // process_count, drop_remainder=True)


def _init_worker(worker_index: int, worker_count: int, nice: int = 0) -> None:
  """In each worker process: OpenCV single-threaded (64 px images gain nothing from its pool, which
  only oversubscribes the cores the worker processes share), and optionally a lower priority so that
  the train step's threads win the cores and the worker fills their idle time."""
  del worker_index, worker_count
  cv2.setNumThreads(1)
  if nice:
    os.nice(nice)


def train_iterator(dataset: grain.MapDataset, *, worker_count: int = 0, read_threads: int = 2,
                   prefetch: int = 4, worker_buffer_size: int = 1,
                   worker_nice: int = 0) -> grain.DatasetIterator:
  """Iterator over `dataset` with thread prefetch (and worker processes when worker_count > 0).

  Each read thread builds whole batches (the dataset is batched before it is iterated). Worker
  processes keep the pair building off the training process's GIL; `worker_nice` lowers their
  priority. Its `get_state()`/`set_state()` round trip resumes at the exact next batch. With
  workers, absl flags must be parsed in the parent (run under absl.app.run, or FLAGS.mark_as_parsed()).
  """
  if worker_count < 0 or read_threads < 0 or prefetch < 0 or not 0 <= worker_nice <= 19:
    raise ValueError(f'bad loader options: worker_count={worker_count}, read_threads={read_threads}, '
                     f'prefetch={prefetch}, worker_nice={worker_nice} (0..19)')
  ds = dataset.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                                 prefetch_buffer_size=prefetch))
  if worker_count > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count,
                                                     per_worker_buffer_size=worker_buffer_size),
                        worker_init_fn=functools.partial(_init_worker, nice=worker_nice))
  return iter(ds)


def config_dataset(config, store_path: str, *, process_index: int = 0,
                   process_count: int = 1) -> grain.MapDataset:
  """train_dataset from an experiment config and the store of `ingest.prepare_store(config.data)`
  (training and bench/loader.py build the loader through here, so they measure the same thing)."""
  d = config.data
  return train_dataset(store_path, pair_mode=d.pair_mode, image_size=d.image_size,
                       global_batch_size=config.batch_size, seed=config.seed,
                       process_index=process_index, process_count=process_count,
                       nearby_offset=d.nearby_offset, aug=d.aug.to_dict(), margin=d.crop_margin,
                       per_frame_window=d.per_frame_window, decode_reduced=d.decode_reduced)


def config_eval_arrays(store: frame_store_lib.FrameStore, split: str, data_config) -> dict:
  """`frame_store.eval_arrays` of one split at config.data's image size and crop margin (the online
  monitor and the evaluation embed the same crops)."""
  return frame_store_lib.eval_arrays(store, split, data_config.image_size,
                                     margin=data_config.crop_margin)


def config_iterator(dataset: grain.MapDataset, data_config) -> grain.DatasetIterator:
  """train_iterator with config.data's worker_count, read_threads, prefetch and worker_nice."""
  return train_iterator(dataset, worker_count=data_config.worker_count,
                        read_threads=data_config.read_threads, prefetch=data_config.prefetch,
                        worker_nice=data_config.worker_nice)
