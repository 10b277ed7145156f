"""Orbax checkpoints of the train state together with the Grain iterator: a resume is exact."""
from __future__ import annotations

import errno
import json
import os
import re

import jax
import numpy as np
import pytest
from etils import epath

from input_pipeline.loader import datasets
from input_pipeline.store import writer as store_writer
from siampose_jax import checkpointing, optim, sharding
from siampose_jax import step as step_lib
from tests import _frame_store_testdata as testdata
from tests import runs
from tests.test_step import tiny_config

IMAGE = 16


@pytest.fixture(scope='module')
def store_path(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('ckpt') / 'store')
  store_writer.ingest(testdata.all_records(), path, split_fn=testdata.split_fn, subsample=1)
  return path


@pytest.fixture(scope='module')
def compiled():
  """Model, optimiser, initial host state and one jitted step per mesh size, shared by the tests."""
  config = tiny_config()
  model = step_lib.make_model(config)
  tx, _ = optim.make_optimizer(config, 8, 50)
  meshes = {n: sharding.make_mesh(n) for n in (1, 2)}
  host_state = jax.device_get(step_lib.init_state(model, tx, jax.random.key(0), IMAGE, meshes[1]))
  steps = {n: step_lib.jit_train_step(model, tx, m) for n, m in meshes.items()}
  return host_state, steps, meshes


def _setup(store_path, compiled, n_devices):
  """A fresh start, as a new process would make it: replicated initial state and a new data iterator."""
  host_state, steps, meshes = compiled
  state = sharding.replicate(host_state, meshes[n_devices])
  ds = datasets.train_dataset(store_path, pair_mode='nearby', image_size=IMAGE, global_batch_size=8, seed=3)
  return state, datasets.train_iterator(ds), steps[n_devices], meshes[n_devices]


def _run(state, it, step_fn, mesh, n):
  losses, batches = [], []
  for _ in range(n):
    b = next(it)
    batches.append(b['view1'])
    state, m = step_fn(state, sharding.shard_batch({'view1': b['view1'], 'view2': b['view2']}, mesh))
    losses.append(float(m['loss']))
  return state, losses, batches


def test_save_restore_gives_identical_next_steps_and_batches(store_path, compiled, tmp_path):
  # Uninterrupted: 5 steps.
  state, it, step_fn, mesh = _setup(store_path, compiled, 2)
  state, ref_losses, ref_batches = _run(state, it, step_fn, mesh, 5)
  ref_params = jax.device_get(state.params)
  # Interrupted after 3 steps, saved, then a fresh process-like setup restores and runs 2 more.
  state, it, step_fn, mesh = _setup(store_path, compiled, 2)
  state, losses_a, _ = _run(state, it, step_fn, mesh, 3)
  manager = checkpointing.make_manager(str(tmp_path))
  checkpointing.save(manager, 3, state, it, force=True)
  manager.wait_until_finished()
  fresh_state, fresh_it, step_fn, mesh = _setup(store_path, compiled, 2)
  manager = checkpointing.make_manager(str(tmp_path))
  restored, step = checkpointing.restore(manager, fresh_state, fresh_it)
  assert step == 3 and int(restored.step) == 3
  restored, losses_b, batches_b = _run(restored, fresh_it, step_fn, mesh, 2)
  np.testing.assert_array_equal(batches_b[0], ref_batches[3])
  np.testing.assert_array_equal(batches_b[1], ref_batches[4])
  assert losses_a + losses_b == pytest.approx(ref_losses, rel=1e-6, abs=1e-7)
  for a, b in zip(jax.tree.leaves(ref_params), jax.tree.leaves(jax.device_get(restored.params))):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # The optimiser state came back as the same pytree (not plain lists) with the same values.
  assert jax.tree.structure(restored.opt_state) == jax.tree.structure(fresh_state.opt_state)


def test_restore_without_checkpoint_returns_input(tmp_path, store_path, compiled):
  state, it, _, _ = _setup(store_path, compiled, 1)
  same, step = checkpointing.restore(checkpointing.make_manager(str(tmp_path)), state, it)
  assert step is None and same is state


def test_resume_with_other_process_count_positions_the_iterator_at_the_step(tmp_path, store_path, compiled,
                                                                            caplog):
  state, it, step_fn, mesh = _setup(store_path, compiled, 1)
  state, _, batches = _run(state, it, step_fn, mesh, 3)
  manager = checkpointing.make_manager(str(tmp_path))
  checkpointing.save(manager, 2, state, it, force=True)  # saved after 3 batches, under the name of step 2
  manager.wait_until_finished()
  data_dir = os.path.join(str(manager.directory), '2', 'data')
  (f,) = [n for n in os.listdir(data_dir) if n.startswith('process_')]
  assert f == 'process_0-of-1.json' and json.load(open(os.path.join(data_dir, f)))
  os.rename(os.path.join(data_dir, f), os.path.join(data_dir, 'process_0-of-2.json'))
  fresh_state, fresh_it, _, _ = _setup(store_path, compiled, 1)
  with caplog.at_level('WARNING'):
    _, step = checkpointing.restore(checkpointing.make_manager(str(tmp_path)), fresh_state, fresh_it)
  assert step == 2 and 'saved by another process count' in caplog.text
  # Batch index 2 next (the step says so), not 3 (what the renamed Grain state held).
  np.testing.assert_array_equal(next(fresh_it)['view1'], batches[2])


def test_resume_with_other_worker_count_continues_at_the_next_batch(tmp_path, store_path, caplog):
  """data.worker_count=-1 follows the machine's cores: a run saved with 2 worker processes resumes with
  0, 1, 2 or 3 at the exact next batch (its own state where the layout matches, the step otherwise)."""
  from absl import flags
  flags.FLAGS.mark_as_parsed()  # Grain workers need parsed flags in the parent
  ds = lambda: datasets.train_dataset(store_path, pair_mode='nearby', image_size=IMAGE, global_batch_size=4,
                                      seed=3)
  reference = [b['view1'] for b, _ in zip(datasets.train_iterator(ds()), range(8))]
  it = datasets.train_iterator(ds(), worker_count=2)
  for _ in range(5):
    next(it)
  manager = checkpointing.make_manager(str(tmp_path))
  checkpointing.save(manager, 5, sharding.replicate({'w': np.zeros(2)}, sharding.make_mesh(1)), it, force=True)
  manager.wait_until_finished()
  it.close()
  for workers in (0, 1, 2, 3):
    fresh = datasets.train_iterator(ds(), worker_count=workers)
    with caplog.at_level('WARNING'):
      caplog.clear()
      _, step = checkpointing.restore(checkpointing.make_manager(str(tmp_path)),
                                      sharding.replicate({'w': np.ones(2)}, sharding.make_mesh(1)), fresh)
    assert step == 5
    assert ('another worker count' in caplog.text) == (workers != 2), workers
    for i in range(5, 8):
      np.testing.assert_array_equal(next(fresh)['view1'], reference[i], err_msg=f'{workers} workers, batch {i}')
    if workers:
      fresh.close()


def test_auto_worker_count_follows_the_usable_cores(monkeypatch):
  monkeypatch.setattr(datasets.os, 'sched_getaffinity', lambda pid: {0, 1, 2})
  assert datasets.resolve_worker_count(datasets.AUTO_WORKERS) == 3
  monkeypatch.setattr(datasets.os, 'sched_getaffinity', lambda pid: {5})
  assert datasets.resolve_worker_count(-1) == 0 and datasets.resolve_worker_count(4) == 4
  with pytest.raises(ValueError, match='worker_count=-2'):
    datasets.resolve_worker_count(-2)


_RESTORE_ON_ONE_DEVICE = """
import sys, jax, numpy as np
from tests import runs
from siampose_jax import checkpointing, encoder, sharding, step as step_lib
src, dst, out = sys.argv[1:]
assert jax.device_count() == 1
state, step = runs.checkpoint(src)  # model, statistics and optimiser, restored on this one device
np.savez(out, *jax.tree.leaves(state))
manager = checkpointing.make_manager(dst)
checkpointing.save(manager, step, sharding.replicate(state, sharding.make_mesh(1)), None, force=True)
manager.wait_until_finished()
"""


def test_eight_device_checkpoint_restores_on_one_device_and_back(reference_run, tmp_path):
  """A subprocess with one device restores the reference run's 8-device checkpoint and saves it again;
  this 8-device process restores that one: the same bits all along."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from siampose_jax import encoder  # pylint: disable=g-import-not-at-top
  ref_dir, ref = reference_run
  assert ref['mesh'].devices.size == 8
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  out = subprocess.run([sys.executable, '-c', _RESTORE_ON_ONE_DEVICE, ref_dir, str(tmp_path / 'one'),
                        str(tmp_path / 'leaves.npz')], cwd=runs.REPO, env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  want = jax.tree.leaves(jax.device_get(ref['state']))
  with np.load(tmp_path / 'leaves.npz') as f:
    got = [f[f'arr_{i}'] for i in range(len(f.files))]
  assert len(got) == len(want)
  for a, b in zip(want, got):
    np.testing.assert_array_equal(a, b)
  config = encoder.load_config(ref_dir)
  mesh = sharding.make_mesh(8)
  template = step_lib.template_state(config, step_lib.make_model(config), mesh)
  back, step = checkpointing.restore_params(str(tmp_path / 'one'), template)
  assert step == config.total_steps
  for a, b in zip(want, jax.tree.leaves(back)):
    assert b.sharding.mesh.devices.size == 8
    np.testing.assert_array_equal(a, np.asarray(b))


def test_restore_params_from_step_dir_and_workdir(tmp_path, store_path, compiled):
  state, it, _, _ = _setup(store_path, compiled, 1)
  manager = checkpointing.make_manager(str(tmp_path))
  checkpointing.save(manager, 7, state, it, force=True)
  manager.wait_until_finished()
  for path in (str(tmp_path), os.path.join(str(tmp_path), 'checkpoints', '7')):
    restored, step = checkpointing.restore_params(path, state)
    assert step == 7
  with pytest.raises(FileNotFoundError, match='no checkpoint'):
    checkpointing.restore_params(str(tmp_path / 'nothing'), state)


# --- Faults (docs/reliability.md): a damaged latest checkpoint, a checkpoint that cannot be written.

def _files(root):
  return sorted((os.path.relpath(os.path.join(d, f), root), os.path.getsize(os.path.join(d, f)))
                for d, _, fs in os.walk(root) for f in fs)


def _saved_steps(store_path, workdir, steps):
  """Checkpoints of {'w': step} with the data iterator after `step` batches; the loader's first batches."""
  ds = datasets.train_dataset(store_path, pair_mode='nearby', image_size=IMAGE, global_batch_size=4, seed=3)
  it, batches = datasets.train_iterator(ds), []
  manager = checkpointing.make_manager(workdir, keep=10)
  for step in range(1, max(steps) + 1):
    batches.append(next(it)['view1'])
    if step in steps:
      checkpointing.save(manager, step, _w(step), it, force=True)
  checkpointing.wait(manager)
  return batches, lambda: datasets.train_iterator(ds)


def _w(seed):
  """A state whose array data (incompressible) is the largest file of its checkpoint."""
  return sharding.replicate({'w': np.random.default_rng(seed).random(4096, np.float32)}, sharding.make_mesh(1))


def _is_w(state, seed):
  return np.array_equal(np.asarray(state['w']), np.asarray(_w(seed)['w']))


@pytest.mark.parametrize('damage', [runs.truncated_array_file, runs.deleted_file, runs.empty_step_dir])
def test_resume_falls_back_from_a_damaged_latest_checkpoint_and_moves_it_aside(damage, tmp_path, store_path,
                                                                               caplog):
  workdir = str(tmp_path)
  batches, fresh_iterator = _saved_steps(store_path, workdir, (1, 2))
  damage(os.path.join(workdir, 'checkpoints', '2'))
  damaged_files = _files(os.path.join(workdir, 'checkpoints', '2'))
  manager = checkpointing.make_manager(workdir)
  it = fresh_iterator()
  with caplog.at_level('WARNING'):
    state, step = checkpointing.resume(manager, _w(0), it)
  assert step == 1 and _is_w(state, 1)
  np.testing.assert_array_equal(next(it)['view1'], batches[1])  # the data iterator of step 1 too
  assert 'checkpoint step 2 in ' in caplog.text and 'does not restore' in caplog.text
  (moved,) = os.listdir(checkpointing.damaged_dir(manager))  # moved aside whole, not deleted
  assert moved.startswith('2-') and f'checkpoint step 2 is damaged: moved to {moved}' in caplog.text.replace(
      str(checkpointing.damaged_dir(manager)) + '/', '')
  assert _files(checkpointing.damaged_dir(manager) / moved) == damaged_files
  # The run goes on past it: step 2 is saved again (Orbax refuses a step that exists) and restores.
  assert manager.all_steps() == [1]
  checkpointing.save(manager, 2, _w(2), it, force=True)
  checkpointing.wait(manager)
  state, step = checkpointing.resume(checkpointing.make_manager(workdir), _w(0), fresh_iterator())
  assert step == 2 and _is_w(state, 2)


def test_resume_with_no_restorable_checkpoint_stops_listing_each_step_tried(tmp_path, store_path):
  workdir = str(tmp_path)
  _saved_steps(store_path, workdir, (1, 2))
  runs.truncated_array_file(os.path.join(workdir, 'checkpoints', '2'))
  runs.empty_step_dir(os.path.join(workdir, 'checkpoints', '1'))
  before = _files(workdir)
  manager = checkpointing.make_manager(workdir)
  with pytest.raises(checkpointing.CheckpointError, match='no checkpoint in .* restores') as e:
    checkpointing.resume(manager, _w(0), None)
  assert re.search(r'tried step 2: \w+Error: .+; step 1: KeyError: .+', str(e.value)), str(e.value)
  assert _files(workdir) == before  # nothing moved or deleted


@pytest.mark.parametrize('item', ['state', 'data'])
# Orbax's threads, after the failed write, post to an event loop that is closed by then: noise, not a fault.
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_a_full_disk_during_a_save_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    item, tmp_path, store_path, monkeypatch):
  """The write error is raised where Orbax really writes, as the OS raises it when the disk is full: in the
  state's array metadata (in Orbax's background thread: the next `wait` reports it) or in Grain's iterator
  state (`save` itself reports it)."""
  workdir = str(tmp_path)
  _, fresh_iterator = _saved_steps(store_path, workdir, (1,))
  good = _files(os.path.join(workdir, 'checkpoints', '1'))
  real_write = epath.gpath.PosixGPath.write_text

  def full_disk(path, *args, **kwargs):
    if f'/checkpoints/2.orbax-checkpoint-tmp/{item}.orbax-checkpoint-tmp/' in os.fspath(path):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
    return real_write(path, *args, **kwargs)

  monkeypatch.setattr(epath.gpath.PosixGPath, 'write_text', full_disk)
  manager = checkpointing.make_manager(workdir)
  if item == 'state':
    assert checkpointing.save(manager, 2, _w(2), fresh_iterator(), force=True)
  with pytest.raises(checkpointing.CheckpointError) as e:
    if item == 'data':
      checkpointing.save(manager, 2, _w(2), fresh_iterator(), force=True)
    checkpointing.wait(manager)
  monkeypatch.undo()
  assert str(e.value).startswith(f'could not save the checkpoint of step 2 in {manager.directory}: the disk '
                                 'is full (OSError: [Errno 28] No space left on device')
  assert 'the last good checkpoint, step 1, is left as it was' in str(e.value)
  assert _files(os.path.join(workdir, 'checkpoints', '1')) == good
  # A rerun resumes from step 1 and saves step 2 over what the failed save left behind.
  manager = checkpointing.make_manager(workdir)
  state, step = checkpointing.restore(manager, _w(0), fresh_iterator())
  assert step == 1 and _is_w(state, 1)
  checkpointing.save(manager, 2, _w(2), fresh_iterator(), force=True)
  checkpointing.wait(manager)
  assert sorted(os.listdir(manager.directory)) == ['1', '2']
