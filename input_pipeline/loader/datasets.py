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
import multiprocessing
import os
import threading
from typing import Any

import cv2
import grain
import numpy as np

from input_pipeline.loader import augment, pairs
from input_pipeline.store import clips
from input_pipeline.store import crops
from input_pipeline.store import frame_store as frame_store_lib
from input_pipeline.store import ingest

DATASETS = ('objectron', 'ucf101')


def jpeg_reduction(window: tuple[int, int, int, int], image_size: int) -> int:
  """Largest libjpeg scale-down (1, 2, 4, 8) that keeps the crop window's longest side >= image_size,
  so decoding smaller still leaves `crop_and_resize` a downscale."""
  x0, y0, x1, y1 = window
  longest = max(x1 - x0, y1 - y0)
  return max(f for f in frame_store_lib.JPEG_REDUCTIONS if f == 1 or longest >= f * image_size)


class PairTransform(grain.transforms.RandomMap):
  """Anchor record index -> augmented views of the anchor and its partner(s) (a Grain random map).

  Both frames are cropped with the window of the anchor's keypoint box (so camera motion shows), or
  each with its own with per_frame_window=True (frames without a box, UCF101's, are used whole); each
  view is augmented independently except for the horizontal flip, decided once per pair. In tcn mode
  the outputs add view3 (the negative).

  The window comes from the record's keypoints and stored image size, so it is known before the JPEG
  is decoded, and a frame that appears twice (same_frame) is decoded and cropped once. With
  decode_reduced=True the JPEG is decoded at 1/2, 1/4 or 1/8 scale (`jpeg_reduction` of the window)
  and the window recomputed on that image: about 2x cheaper decoding, slightly different pixels (DCT
  scaling, then INTER_AREA, instead of INTER_AREA alone).

  With augment_on_device=True a view is its random resized crop only (uint8, no colour, no flip): the
  train step applies colour jitter, grayscale and the pair's flip (siampose_jax/device_augment.py).
  """

  def __init__(self, store: frame_store_lib.FrameStore | str, split: str, mode: str,
               image_size: int, *, offset: int = 1, aug: dict[str, Any] | None = None,
               margin: float = 0.0, per_frame_window: bool = False, decode_reduced: bool = False,
               augment_on_device: bool = False):
    if mode not in pairs.PAIR_MODES:
      raise ValueError(f'unknown pair mode {mode!r}; expected one of {pairs.PAIR_MODES}')
    self.store = store if isinstance(store, frame_store_lib.FrameStore) else (
        frame_store_lib.FrameStore(store))
    self.split, self.mode, self.image_size = split, mode, int(image_size)
    self.offset, self.margin, self.per_frame_window = int(offset), float(margin), per_frame_window
    self.decode_reduced = bool(decode_reduced)
    self.augment_on_device = bool(augment_on_device)
    self.aug = augment.aug_config(aug)
    self.index = pairs.VideoIndex.from_store(self.store, split)

  def sample(self, anchor: int, rng: np.random.Generator) -> list[int]:
    if self.mode == 'tcn':
      return list(pairs.tcn_triplet(self.index, anchor, rng))
    if self.mode == 'nearby_distant':
      return [int(anchor)] + [pairs.partner_index(self.index, anchor, m, rng, self.offset)
                              for m in ('nearby', 'distant')]
    return [int(anchor), pairs.partner_index(self.index, anchor, self.mode, rng, self.offset)]

  def _window(self, frame: dict[str, Any]) -> tuple[tuple[int, int, int, int], int]:
    """(crop window in the decoded image, JPEG reduction) from the record alone."""
    hw = (int(frame['image_height']), int(frame['image_width']))
    window = crops.frame_window(frame.get('point_2d'), hw, self.margin)
    if not self.decode_reduced:
      return window, 1
    reduce = jpeg_reduction(window, self.image_size)
    if reduce == 1:
      return window, 1
    return crops.frame_window(frame.get('point_2d'), frame_store_lib.reduced_shape(hw, reduce),
                              self.margin), reduce

  def _crop(self, record: int, frame: dict[str, Any], window, reduce: int) -> np.ndarray:
    where = f'{self.store.path} split {self.split!r} record {record}'
    image = frame_store_lib.decode_jpeg(frame['image'], where, reduce)
    want = frame_store_lib.reduced_shape((frame['image_height'], frame['image_width']), reduce)
    if image.shape[:2] != want:
      raise frame_store_lib.BadFrameError(
          f'{where}: JPEG decodes to {image.shape[1]}x{image.shape[0]} at 1/{reduce} scale, the record '
          f'says {frame["image_width"]}x{frame["image_height"]} (expected {want[1]}x{want[0]})')
    return crops.crop_and_resize(image, window, self.image_size)

  def random_map(self, element, rng: np.random.Generator) -> dict[str, np.ndarray]:
    anchor = int(element)
    records = self.sample(anchor, rng)
    frames = [frame_store_lib.decode(self.store.raw(self.split, r), decode_image=False)
              for r in records]
    window = reduce = None
    flip = not self.augment_on_device and bool(rng.random() < self.aug['flip_p'])
    crops: dict[tuple, np.ndarray] = {}  # the crop is a pure function of (record, window, reduce)
    out = {}
    for i, (record, frame) in enumerate(zip(records, frames)):
      if window is None or self.per_frame_window:
        window, reduce = self._window(frame)
      key = (record, window, reduce)
      if key not in crops:
        crops[key] = self._crop(record, frame, window, reduce)
      if self.augment_on_device:
        out[f'view{i + 1}'] = augment.random_resized_crop(crops[key], rng, self.image_size,
                                                          self.aug['crop_scale'], self.aug['crop_ratio'])
      else:
        out[f'view{i + 1}'] = augment.augment_view(crops[key], rng, self.image_size, flip, self.aug)
    out.update(category=np.int32(frames[0]['category']),
               video=np.int32(self.index.record_video[anchor]),
               frame_id=np.int32(frames[0]['frame_id']),
               partner_frame_id=np.int32(frames[1]['frame_id']))
    if len(frames) == 3:  # tcn's negative, or the distant partner of nearby_distant
      out['third_frame_id'] = np.int32(frames[2]['frame_id'])
    return out


def train_dataset(store_path: str, *, pair_mode: str, image_size: int, global_batch_size: int,
                  seed: int, process_index: int = 0, process_count: int = 1,
                  nearby_offset: int = 1, aug: dict[str, Any] | None = None, margin: float = 0.0,
                  per_frame_window: bool = False, decode_reduced: bool = False,
                  augment_on_device: bool = False, split: str = 'train',
                  num_epochs: int | None = None) -> grain.MapDataset:
  """Batches of {'view1', 'view2', 'category', 'video', 'frame_id', 'partner_frame_id'} (+ tcn's view3).

  Anchors are all kept frames of `split` (for tcn, those with a valid negative). Infinite by
  default (num_epochs=None); the last partial batch of a finite run is dropped. decode_reduced: see
  `PairTransform` (faster, slightly different pixels); augment_on_device: see `PairTransform` (crops only).
  """
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(f'global batch size {global_batch_size} is not a positive multiple of the '
                     f'process count {process_count}')
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')
  store = frame_store_lib.FrameStore(store_path)
  transform = PairTransform(store, split, pair_mode, image_size, offset=nearby_offset,
                                  aug=aug, margin=margin, per_frame_window=per_frame_window,
                                  decode_reduced=decode_reduced, augment_on_device=augment_on_device)
  anchors = list(range(store.num_frames(split)))
  if pair_mode == 'tcn':
    anchors = [a for a in anchors if pairs.has_tcn_negative(transform.index, a)]
  if not anchors:
    raise ValueError(f'{store_path}: no anchor frames in split {split!r} for mode {pair_mode!r}')
  ds = grain.MapDataset.source(anchors).seed(seed).shuffle().repeat(num_epochs)
  ds = ds.random_map(transform)
  ds = ds[process_index::process_count]
  return ds.batch(global_batch_size // process_count, drop_remainder=True)


def _exit_with_parent() -> None:
  """Ends this worker process as soon as its parent (the trainer) is gone, however it ended, SIGKILL
  included: a worker blocked on its full output queue would otherwise live on, re-parented to init.

  A daemon thread waits on the parent's sentinel: the pipe that multiprocessing's spawn start method keeps
  open in the parent, which the kernel closes when the parent dies (already closed if it died before this
  runs). Not prctl(PR_SET_PDEATHSIG): that fires when the *thread* that started the worker ends, and Grain
  starts its workers from prefetch threads that end while training goes on (a set_state restarts them)."""
  parent = multiprocessing.parent_process()
  if parent is None:  # not a spawned worker process
    return

  def watch():
    parent.join()
    os._exit(1)  # pylint: disable=protected-access  (no clean-up to run: the consumer is gone)

  threading.Thread(target=watch, name='exit-with-parent', daemon=True).start()


def _init_worker(worker_index: int, worker_count: int, nice: int = 0) -> None:
  """In each worker process: exit with the trainer (`_exit_with_parent`), OpenCV single-threaded (64 px
  images gain nothing from its pool, which only oversubscribes the cores the worker processes share), and
  optionally a lower priority so that the train step's threads win the cores and the worker fills their
  idle time."""
  del worker_index, worker_count
  _exit_with_parent()
  cv2.setNumThreads(1)
  if nice:
    os.nice(nice)


AUTO_WORKERS = -1


def usable_cores() -> int:
  """Cores this process may run on (its CPU affinity: taskset, cgroups' cpusets), not the machine's."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def resolve_worker_count(worker_count: int) -> int:
  """worker_count, with AUTO_WORKERS (-1) = one worker process per usable core where there is more than
  one, none (in-process threads) on a single core (bench/loader.py measures both)."""
  if worker_count == AUTO_WORKERS:
    cores = usable_cores()
    return cores if cores > 1 else 0
  if worker_count < 0:
    raise ValueError(f'worker_count={worker_count}: expected >= 0, or {AUTO_WORKERS} (one per usable core)')
  return worker_count


def train_iterator(dataset: grain.MapDataset, *, worker_count: int = 0, read_threads: int = 2,
                   prefetch: int = 4, worker_buffer_size: int = 1,
                   worker_nice: int = 0) -> grain.DatasetIterator:
  """Iterator over `dataset` with thread prefetch (and worker processes when worker_count > 0).

  Each read thread builds whole batches (the dataset is batched before it is iterated). Worker
  processes keep the pair building off the training process's GIL (worker_count=-1: one per usable
  core, `resolve_worker_count`); `worker_nice` lowers their priority. Its `get_state()`/`set_state()`
  round trip resumes at the exact next batch (with the same worker count). With workers, absl flags
  must be parsed in the parent (run under absl.app.run, or FLAGS.mark_as_parsed()).
  """
  worker_count = resolve_worker_count(worker_count)
  if read_threads < 0 or prefetch < 0 or not 0 <= worker_nice <= 19:
    raise ValueError(f'bad loader options: worker_count={worker_count}, read_threads={read_threads}, '
                     f'prefetch={prefetch}, worker_nice={worker_nice} (0..19)')
  ds = dataset.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                                 prefetch_buffer_size=prefetch))
  if worker_count > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count,
                                                     per_worker_buffer_size=worker_buffer_size),
                        worker_init_fn=functools.partial(_init_worker, nice=worker_nice))
  return iter(ds)


def config_store(data_config) -> str:
  """The frame store of config.data, prepared once: Objectron frames (real, or the synthetic default) or
  UCF101 clip frames (data.dataset='ucf101')."""
  if data_config.dataset not in DATASETS:
    raise ValueError(f'config.data.dataset={data_config.dataset!r}: expected one of {DATASETS}')
  if data_config.dataset == 'ucf101':
    return clips.prepare_store(data_config)
  return ingest.prepare_store(data_config)


def config_dataset(config, store_path: str, *, process_index: int = 0,
                   process_count: int = 1) -> grain.MapDataset:
  """train_dataset from an experiment config and the store of `ingest.prepare_store(config.data)`
  (training and bench/loader.py build the loader through here, so they measure the same thing)."""
  d = config.data
  return train_dataset(store_path, pair_mode=d.pair_mode, image_size=d.image_size,
                       global_batch_size=config.batch_size, seed=config.seed,
                       process_index=process_index, process_count=process_count,
                       nearby_offset=d.nearby_offset, aug=d.aug.to_dict(), margin=d.crop_margin,
                       per_frame_window=d.per_frame_window, decode_reduced=d.decode_reduced,
                       augment_on_device=d.get('augment_on_device', False))


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
