"""Console progress for long loops: rate, data-wait share and ETA, computed from wall-clock intervals
(never by blocking on the device), plus a JSON-lines metrics log that survives restarts."""
from __future__ import annotations

import json
import logging as py_logging
import os
import tempfile
import time

from absl import logging
from etils import epath
from tensorboardX import SummaryWriter

from input_pipeline.formats import paths


_CHATTY = ('/orbax/', '/grain/', '/jax/_src/xla_bridge', '/matplotlib/')


class _QuietLibraries(py_logging.Filter):
  def filter(self, record):
    return record.levelno >= py_logging.WARNING or not any(p in record.pathname for p in _CHATTY)


def quiet_library_logs() -> None:
  """Keeps library INFO chatter (Orbax logs a dozen lines per save) out of the console; warnings stay."""
  logging.get_absl_handler().addFilter(_QuietLibraries())


class StepTimer:
  """Accumulates host time spent waiting for data and the wall time of each logging interval."""

  def __init__(self, start_step: int, total_steps: int, items_per_step: int):
    self.total_steps, self.items_per_step = total_steps, items_per_step
    self.t0 = self.t_last = time.perf_counter()
    self.step0 = self.step_last = start_step
    self.data_wait = 0.0

  def add_data_wait(self, seconds: float) -> None:
    self.data_wait += seconds

  def interval(self, step: int) -> dict[str, float]:
    """Stats since the previous call; the step must have been synchronised (metrics fetched) first."""
    now = time.perf_counter()
    dt, n = max(now - self.t_last, 1e-9), max(step - self.step_last, 1)
    stats = {
        'steps_per_sec': n / dt,
        'pairs_per_sec': n * self.items_per_step / dt,
        'data_wait_frac': min(self.data_wait / dt, 1.0),
        'step_time_s': (dt - self.data_wait) / n,
        'data_time_s': self.data_wait / n,
    }
    rate = (step - self.step0) / max(now - self.t0, 1e-9)
    stats['eta_s'] = (self.total_steps - step) / rate if rate > 0 else float('inf')
    self.t_last, self.step_last, self.data_wait = now, step, 0.0
    return stats


def format_eta(seconds: float) -> str:
  if seconds == float('inf'):
    return '?'
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f'{h}:{m:02d}:{s:02d}' if h else f'{m}:{s:02d}'


_LOG_FIELDS = (('loss', 'loss {:.4f}'), ('knn_category_acc', 'knn-acc {:.3f}'),
               ('embedding_rank', 'rank {:.1f}'), ('lr', 'lr {:.2e}'),
               ('pairs_per_sec', '{:.1f} pairs/s'), ('step_time_s', 'step {:.3f}s'),
               ('data_time_s', 'data {:.3f}s'), ('data_wait_frac', 'data-wait {:.0%}'))


def log_line(step: int, total: int, metrics: dict[str, float]) -> None:
  parts = [f'step {step}/{total}']
  parts += [fmt.format(metrics[key]) for key, fmt in _LOG_FIELDS if key in metrics]
  if 'eta_s' in metrics:
    parts.append(f'ETA {format_eta(metrics["eta_s"])}')
  logging.info(' | '.join(parts))


class JsonlLog:
  """One JSON object per logged step; on resume, rows past the restored step are dropped.

  Local files are appended to; a file on Cloud Storage (no appends there) is rewritten whole from the
  rows kept in memory, so it is complete after every write.
  """

  def __init__(self, path, resume_step: int | None):
    self.path = paths.resolve(path)
    self.rows: list[str] = []
    if resume_step is not None and self.path.exists():
      rows = [json.loads(l) for l in self.path.read_text().splitlines() if l.strip()]
      self.rows = [json.dumps(r) for r in rows if r.get('step', 0) <= resume_step]
    self.path.write_text(''.join(r + '\n' for r in self.rows))

  def write(self, step: int, metrics: dict[str, float]) -> None:
    row = json.dumps({'step': step, **{k: float(v) for k, v in metrics.items()}})
    if paths.is_local(self.path):
      self.rows = []  # appended: nothing to keep
      with self.path.open('a') as f:
        f.write(row + '\n')
    else:
      self.rows.append(row)
      self.path.write_text(''.join(r + '\n' for r in self.rows))


class ScalarWriter:
  """TensorBoard scalars and images (tensorboardX writes event files without TensorFlow); only process 0 writes.

  tensorboardX writes local files: for a log dir on Cloud Storage the events go to a local folder and
  each `flush()` copies the event file up (scalars, and a few figures at the end of a run).
  """

  def __init__(self, logdir, enabled: bool = True):
    self.logdir = paths.resolve(logdir)
    self._local = str(self.logdir) if paths.is_local(self.logdir) else tempfile.mkdtemp(prefix='tb_')
    self._writer = SummaryWriter(self._local) if enabled else None

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if self._writer is not None:
      for k, v in scalars.items():
        self._writer.add_scalar(k, v, step)

  def write_images(self, step: int, images: dict) -> None:
    """RGB uint8 [H, W, 3] images (figures) under their tags."""
    if self._writer is not None:
      for k, v in images.items():
        self._writer.add_image(k, v, step, dataformats='HWC')

  def flush(self) -> None:
    if self._writer is None:
      return
    self._writer.flush()
    self._upload()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()  # drains tensorboardX's event queue (its flush() writes what has reached the file)
      self._writer = None
      self._upload()

  def _upload(self) -> None:
    if not paths.is_local(self.logdir):
      self.logdir.mkdir(parents=True, exist_ok=True)
      for name in os.listdir(self._local):
        epath.Path(os.path.join(self._local, name)).copy(self.logdir / name, overwrite=True)
