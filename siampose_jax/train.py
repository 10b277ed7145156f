"""SimSiam training on video frame pairs (or the NT-Xent / TCN baselines): one loop, read top to bottom.

Sections: mesh -> data -> model and optimiser -> checkpoint/resume -> step and monitor -> loop -> reports.
"""
from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging

from input_pipeline.formats import paths
from input_pipeline.loader import datasets
from input_pipeline.store import frame_store
from siampose_jax import checkpointing, device_augment, encoder, optim, progress, reports, sharding
from siampose_jax import step as step_lib
from siampose_jax.evaluation import monitor

MONITOR_MAX_GALLERY = 3000
MONITOR_MAX_QUERIES = 1000


def total_steps_for(config: ml_collections.ConfigDict, num_train_frames: int) -> int:
  if config.total_steps > 0:
    return int(config.total_steps)
  steps_per_epoch = num_train_frames // config.batch_size
  if steps_per_epoch == 0:
    raise ValueError(f'config.batch_size={config.batch_size} exceeds the {num_train_frames} training frames')
  return int(config.num_epochs * steps_per_epoch)


ON_NONFINITE = ('stop', 'skip')


def guard_nonfinite(train_step, policy: str):
  """The step, also counting on device (no host sync) the updates whose loss or gradient norm is not
  finite: `faults` = [count, first such step]. With policy 'skip' those updates are dropped (the state
  keeps its previous parameters, statistics and optimiser slots; only its step counter moves on)."""
  if policy not in ON_NONFINITE:
    raise ValueError(f'config.train.on_nonfinite={policy!r}: expected one of {ON_NONFINITE}')

  def guarded(state, batch, faults):
    new, metrics = train_step(state, batch)
    bad = ~(jnp.isfinite(metrics['loss']) & jnp.isfinite(metrics['grad_norm']))
    if policy == 'skip':
      kept = jax.tree.map(lambda n, o: jnp.where(bad, o, n), (new.params, new.batch_stats, new.opt_state),
                          (state.params, state.batch_stats, state.opt_state))
      new = new.replace(params=kept[0], batch_stats=kept[1], opt_state=kept[2])
    first = jnp.where((faults[0] == 0) & bad, new.step, faults[1])
    return new, metrics, jnp.stack([faults[0] + bad, first]).astype(jnp.int32)

  return jax.jit(guarded, donate_argnums=(0,))


def check_nonfinite(faults, policy: str, manager) -> int:
  """The count of non-finite updates so far; with policy 'stop' any is an error naming the first step
  (called before each checkpoint, so none holds parameters from after a fault)."""
  count, first = (int(v) for v in jax.device_get(faults))
  if count and policy == 'stop':
    checkpointing.wait(manager)
    raise FloatingPointError(
        f'non-finite loss or gradient norm at step {first} ({count} such steps up to now); stopped '
        f'without saving. The last good checkpoint is step {manager.latest_step()} in {manager.directory} '
        '(config.train.on_nonfinite=skip drops such updates instead)')
  return count


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming from `workdir` if it holds checkpoints) and returns the final metrics."""
  workdir = str(paths.resolve(workdir))  # local or gs://: every file below goes through etils.epath
  paths.resolve(workdir).mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    encoder.save_config(config, workdir)

  # --- Mesh: one `data` axis over every device; the global batch must split evenly.
  mesh = sharding.make_mesh(config.num_devices or None)
  sharding.check_batch_size(config.batch_size, mesh)
  logging.info('mesh: %d devices (%s), %d processes', mesh.devices.size, jax.devices()[0].platform,
               jax.process_count())

  # --- Data: frame store (ingested once), Grain pair loader, fixed monitor crops.
  store_path = datasets.config_store(config.data)
  store = frame_store.open_store(store_path)
  num_train = store.num_frames('train')
  total_steps = total_steps_for(config, num_train)
  dataset = datasets.config_dataset(config, store_path, process_index=jax.process_index(),
                                    process_count=jax.process_count())
  data_iter = datasets.config_iterator(dataset, config.data)
  logging.info('train frames: %d in %d videos; %d steps of %d pairs (%.1f epochs)', num_train,
               len(store.videos('train')), total_steps, config.batch_size,
               total_steps * config.batch_size / max(num_train, 1))

  # --- Model, optimiser and replicated train state.
  model, objective = step_lib.make_model(config), step_lib.make_objective(config)
  tx, lr_schedule = optim.make_optimizer(config, config.batch_size, total_steps)
  state = step_lib.init_state(model, tx, jax.random.key(config.seed), config.data.image_size, mesh)

  # --- Checkpoints: resume model, optimiser and data iterator together, from the newest checkpoint that
  # restores (a damaged one is moved aside); a checkpoint that cannot be saved stops the run (CheckpointError).
  manager = checkpointing.make_manager(workdir, keep=config.keep_checkpoints)
  state, restored_step = checkpointing.resume(manager, state, data_iter)
  start_step = restored_step or 0
  if restored_step is not None:
    logging.info('resumed from %s at step %d', manager.directory, restored_step)

  # --- Step and online monitor.
  policy = config.train.on_nonfinite
  # config.data.augment_on_device: the loader only crops; colour, grayscale and flip run in the step.
  augment = device_augment.from_config(config)
  train_step = guard_nonfinite(step_lib.jit_train_step(model, tx, mesh, objective=objective, augment=augment),
                               policy)
  faults = jax.jit(lambda: jnp.zeros(2, jnp.int32), out_shardings=sharding.replicated(mesh))()  # [count, first]
  online_knn = None  # on the validation videos only: the test split is for the final evaluation
  if store.has_frames('val'):
    crops = functools.partial(datasets.config_eval_arrays, store, data_config=config.data)
    online_knn = monitor.OnlineKNN(
        model, mesh,
        gallery=monitor.subsample(crops('train'), MONITOR_MAX_GALLERY, config.seed),
        queries=monitor.subsample(crops('val'), MONITOR_MAX_QUERIES, config.seed),
        batch_size=config.eval.batch_size)
  else:
    logging.warning('the store has no validation videos (data.val_fraction=%s): no online monitor',
                    config.data.val_fraction)

  writer = progress.ScalarWriter(os.path.join(workdir, 'tensorboard'), enabled=jax.process_index() == 0)
  metrics_log = (progress.JsonlLog(os.path.join(workdir, 'metrics.jsonl'), restored_step)
                 if jax.process_index() == 0 else None)
  timer = progress.StepTimer(start_step, total_steps, config.batch_size)
  last = {}

  def report(step, scalars):
    """Console line, TensorBoard scalars and metrics.jsonl row for one step."""
    progress.log_line(step, total_steps, scalars)
    writer.write_scalars(step, scalars)
    writer.flush()  # a log dir on gs:// gets the event file now
    if metrics_log is not None:
      metrics_log.write(step, scalars)

  if start_step == 0 and online_knn:  # the monitor before any update: the random-init reference
    last.update(online_knn(state))
    report(0, dict(last))

  # --- Loop. A preemption notice (SIGTERM) checkpoints the step in hand and stops; rerunning resumes.
  preemption = checkpointing.PreemptionNotice()
  step_metrics, preempted_at = None, None
  for step in range(start_step + 1, total_steps + 1):
    if config.measure_data_wait and step_metrics is not None:
      jax.block_until_ready(step_metrics)  # so the wait below is time the device sat idle for data
    t = time.perf_counter()
    batch = next(data_iter)
    timer.add_data_wait(time.perf_counter() - t)
    views = {k: batch[k] for k in objective.views}  # view1, view2 (+ the TCN negative, view3)
    state, step_metrics, faults = train_step(state, sharding.shard_batch(views, mesh), faults)

    is_last = step == total_steps
    preempted = preemption.reached(step)
    scalars = {}
    if step % config.log_every_steps == 0 or is_last:
      scalars = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
      scalars['skipped_updates'] = check_nonfinite(faults, policy, manager)
      scalars['lr'] = float(lr_schedule(step - 1))
      scalars.update(timer.interval(step))
    if online_knn and (step % config.monitor_every_steps == 0 or is_last):  # its own schedule
      scalars.update(online_knn(state))
    if scalars:
      last.update(scalars)
      report(step, scalars)
    if step % config.checkpoint_every_steps == 0 or is_last or preempted:
      check_nonfinite(faults, policy, manager)
      checkpointing.save(manager, step, state, data_iter, force=is_last or preempted)
    if preempted:
      preempted_at = step
      break

  checkpointing.wait(manager)
  preemption.close()
  writer.close()
  if preempted_at is not None:
    logging.warning('preempted: saved the checkpoint of step %d in %s and stopped; rerun the same command '
                    'to resume', preempted_at, manager.directory)

  # --- Reports: metrics table and curves in the workdir.
  outputs = {}
  if jax.process_index() == 0:
    outputs = reports.training_reports(workdir)
  last.update(final_step=preempted_at or total_steps, store=store_path, **outputs)
  if preempted_at is not None:
    last['preempted_at_step'] = preempted_at
  return {'state': state, 'model': model, 'mesh': mesh, 'store': store, 'metrics': last}
