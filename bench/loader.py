"""Pairs/s of the Grain pair loader next to pairs/s consumed by the jitted train step, same config.

Prints one JSON object: the loader's rate (after warm-up, over --batches batches, nothing else running),
the step's rate (on pre-made batches, compile excluded, `jax.block_until_ready` at the end), their ratio
(> 1: the loader alone outpaces the step alone), and the `train` rate of both together as in the training
loop (next batch, then the step), with the share of wall time spent waiting for data. On a machine with
few cores the loader and the step compete for them, so `train` is the number that predicts the log.

  python -m bench.loader --config=configs/distant.py:cpu --batches 30 --worker_count 0 --read_threads 2

`--preset=paper` (or `cpu`) is shorthand for `--config=configs/nearby.py[:cpu]`; at the paper preset the
frames are stored as Objectron's `records_shuffled` hold them (640x480 JPEG) and the crops are 224 px.
With `--cores`, the loader is measured again confined to 1 core and to every usable core (this process's
CPU affinity, which its worker processes inherit; worker_count=-1 picks in-process threads on 1 core and
one worker per core otherwise), giving pairs/s per core and the scaling from 1 to all cores. The paper
preset's step (ResNet-50, 224 px) is slow on CPU: `--step_batches` bounds its timing.

The frame store is built as training builds it (`ingest.prepare_store`: the synthetic set is generated
into the cache on first use; `--videos_per_category` keeps the paper preset's set small for this bench).
"""
from __future__ import annotations

import json
import os
import sys
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from input_pipeline.loader import datasets
from input_pipeline.store import ingest
from siampose_jax import device_augment, optim, sharding
from siampose_jax import step as step_lib

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/distant.py:cpu',
                                          'Experiment config file[:preset].')
_BATCHES = flags.DEFINE_integer('batches', 30, 'Timed batches (and train steps) per measurement.')
_WARMUP = flags.DEFINE_integer('warmup', 5, 'Untimed batches first (worker start-up, compilation).')
_WORKERS = flags.DEFINE_integer('worker_count', None, 'Overrides config.data.worker_count.')
_THREADS = flags.DEFINE_integer('read_threads', None, 'Overrides config.data.read_threads.')
_PREFETCH = flags.DEFINE_integer('prefetch', None, 'Overrides config.data.prefetch.')
_NICE = flags.DEFINE_integer('worker_nice', None, 'Overrides config.data.worker_nice.')
_SKIP_TRAIN = flags.DEFINE_bool('skip_train', False, 'Skip the combined loader+step measurement.')
_PRESET = flags.DEFINE_enum('preset', None, ['paper', 'cpu'],
                            'Shorthand for --config=configs/nearby.py[:cpu] (overrides --config).')
_CORES = flags.DEFINE_bool('cores', None, 'Also measure the loader on 1 and on all usable cores '
                           '(default: on with --preset=paper).')
_STEP_BATCHES = flags.DEFINE_integer('step_batches', None, 'Timed train steps (default: --batches; 3 '
                                     'at the paper preset on CPU).')
_VIDEOS = flags.DEFINE_integer('videos_per_category', None, 'Synthetic videos per class (default: the '
                               "config's; 6 with --preset=paper).")


def _iterator(config):
  dataset = datasets.config_dataset(config, config.data.store_dir)
  return datasets.config_iterator(dataset, config.data)


def time_loader(config, warmup: int, batches: int) -> float:
  it = _iterator(config)
  try:
    for _ in range(warmup):
      next(it)
    start = time.perf_counter()
    for _ in range(batches):
      next(it)
    return batches * config.batch_size / (time.perf_counter() - start)
  finally:
    if hasattr(it, 'close'):
      it.close()


def make_step(config):
  mesh = sharding.make_mesh(config.num_devices or None)
  model = step_lib.make_model(config)
  tx, _ = optim.make_optimizer(config, config.batch_size, total_steps=max(config.total_steps, 1000))
  state = step_lib.init_state(model, tx, jax.random.key(config.seed), config.data.image_size, mesh)
  # With data.augment_on_device the step does the colour/flip work the loader no longer does, as in training.
  return mesh, state, step_lib.jit_train_step(model, tx, mesh, augment=device_augment.from_config(config))


def time_step(config, warmup: int, batches: int) -> float:
  mesh, state, train_step = make_step(config)
  it = _iterator(config)
  try:
    host = [next(it) for _ in range(min(batches, 8))]
  finally:
    if hasattr(it, 'close'):
      it.close()
  premade = [sharding.shard_batch({'view1': b['view1'], 'view2': b['view2']}, mesh) for b in host]
  for i in range(max(warmup, 1)):
    state, metrics = train_step(state, premade[i % len(premade)])
  jax.block_until_ready((state, metrics))
  start = time.perf_counter()
  for i in range(batches):
    state, metrics = train_step(state, premade[i % len(premade)])
  jax.block_until_ready((state, metrics))
  return batches * config.batch_size / (time.perf_counter() - start)


def time_train(config, warmup: int, batches: int) -> tuple[float, float]:
  """The training loop's pattern: (pairs/s, data-wait share); the loss is fetched only at the end."""
  mesh, state, train_step = make_step(config)
  it = _iterator(config)
  try:
    for _ in range(max(warmup, 1)):
      b = next(it)
      state, metrics = train_step(state, sharding.shard_batch({'view1': b['view1'], 'view2': b['view2']}, mesh))
    jax.block_until_ready((state, metrics))
    wait, start = 0.0, time.perf_counter()
    for _ in range(batches):
      t = time.perf_counter()
      b = next(it)
      wait += time.perf_counter() - t
      state, metrics = train_step(state, sharding.shard_batch({'view1': b['view1'], 'view2': b['view2']}, mesh))
    jax.block_until_ready((state, metrics))
    elapsed = time.perf_counter() - start
  finally:
    if hasattr(it, 'close'):
      it.close()
  return batches * config.batch_size / elapsed, wait / elapsed


def time_loader_on_cores(config, cores: set[int], warmup: int, batches: int) -> tuple[float, int]:
  """(pairs/s, worker processes) of the loader with this process confined to `cores` (worker_count=-1
  resolved there: workers started below inherit the affinity)."""
  previous = os.sched_getaffinity(0)
  os.sched_setaffinity(0, cores)
  try:
    workers = datasets.resolve_worker_count(config.data.worker_count)
    return time_loader(config, warmup, batches), workers
  finally:
    os.sched_setaffinity(0, previous)


def _config():
  if _PRESET.value is None:
    return _CONFIG.value, config_flags.get_config_filename(flags.FLAGS['config'])
  given = [a for a in sys.argv[1:] if a.split('=')[0].startswith('--config')]
  if given:  # never ignore a setting silently
    raise app.UsageError(f'--preset replaces --config and its overrides, got {given}: use --config='
                         'configs/nearby.py[:cpu] with overrides instead')
  from siampose_jax.configs import nearby  # pylint: disable=g-import-not-at-top
  config = nearby.get_config(None if _PRESET.value == 'paper' else _PRESET.value)
  if _PRESET.value == 'paper':
    config.data.synthetic.videos_per_category = 6
  return config, f'configs/nearby.py{"" if _PRESET.value == "paper" else ":" + _PRESET.value}'


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config, config_name = _config()
  if _VIDEOS.value is not None:
    config.data.synthetic.videos_per_category = _VIDEOS.value
  cpu_paper = config.preset == 'paper' and jax.devices()[0].platform == 'cpu'
  for key, flag in (('worker_count', _WORKERS), ('read_threads', _THREADS), ('prefetch', _PREFETCH),
                    ('worker_nice', _NICE)):
    if flag.value is not None:
      config.data[key] = flag.value
  config.data.store_dir = ingest.prepare_store(config.data)
  warmup, batches = _WARMUP.value, _BATCHES.value
  step_batches = _STEP_BATCHES.value or (3 if cpu_paper else batches)
  loader = time_loader(config, warmup, batches)
  step = time_step(config, min(warmup, 1) if cpu_paper else warmup, step_batches)
  result = {
      'config': config_name,
      'preset': config.preset, 'pair_mode': config.data.pair_mode, 'batch_size': config.batch_size,
      'image_size': config.data.image_size, 'worker_count': config.data.worker_count,
      'read_threads': config.data.read_threads, 'prefetch': config.data.prefetch,
      'worker_nice': config.data.worker_nice,
      'decode_reduced': config.data.decode_reduced,
      'augment_on_device': bool(config.data.get('augment_on_device', False)),
      'videos_per_category': config.data.synthetic.videos_per_category, 'batches': batches,
      'step_batches': step_batches, 'cpu_count': os.cpu_count(),
      'usable_cores': datasets.usable_cores(), 'device': jax.devices()[0].platform,
      'jax': jax.__version__, 'date': time.strftime('%Y-%m-%d'),
      'loader_pairs_per_s': round(loader, 1), 'step_pairs_per_s': round(step, 1),
      'loader_over_step': round(loader / step, 3),
  }
  if _CORES.value or (_CORES.value is None and config.preset == 'paper'):
    cores = sorted(os.sched_getaffinity(0))
    one, w1 = time_loader_on_cores(config, {cores[0]}, warmup, batches)
    every, wn = time_loader_on_cores(config, set(cores), warmup, batches)
    result.update(loader_1core_pairs_per_s=round(one, 1), loader_1core_workers=w1,
                  loader_allcores_pairs_per_s=round(every, 1), loader_allcores_workers=wn,
                  loader_pairs_per_s_per_core=round(every / len(cores), 1),
                  scaling_1_to_all=round(every / one, 2), scaling_ideal=len(cores))
  if not (_SKIP_TRAIN.value or cpu_paper):  # the paper step on CPU: minutes per batch, nothing to learn
    train, wait = time_train(config, warmup, batches)
    result.update(train_pairs_per_s=round(train, 1), train_data_wait_frac=round(wait, 3))
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
