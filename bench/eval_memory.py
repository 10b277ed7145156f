"""Peak host memory (RSS) of `--config.mode=eval` on the default frame store and on one N times larger.

Prints one JSON object: for each store its frame counts and the peak RSS of a fresh
`python -m siampose_jax.main --config.mode=eval` process evaluating it (os.wait4's ru_maxrss), and the
ratio large/default. The evaluation streams its crops (decoded in chunks, in threads, embedded chunk by
chunk), so the ratio stays near 1 while the store grows; what does grow are the per-frame labels and
embeddings (a few hundred bytes and D floats per frame).

  python -m bench.eval_memory --config=configs/distant.py:cpu --scale=20

The default store is the one training uses (`ingest.prepare_store`; the synthetic set is generated into the
cache on first use). The large one repeats its shards `--scale` times under new video ids (the index lists
each copy as its own videos), so its frames are real records of the same size. Embeddings come from a
random-init model (`eval.checkpoint=random`): the model's weights do not change the memory.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from input_pipeline.store import frame_store, ingest

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/distant.py:cpu', 'Experiment config file[:preset].')
_SCALE = flags.DEFINE_integer('scale', 20, 'The large store holds this many copies of the default one.')
_OUT = flags.DEFINE_string('out', None, 'Keep the stores and workdirs here (default: a temporary folder).')


def replicate_store(src: str, dst: str, copies: int) -> str:
  """A store holding `copies` copies of every split of `src` (shards copied, videos renamed `<id>~k`)."""
  with open(os.path.join(src, frame_store.INDEX_FILE)) as f:
    index = json.load(f)
  for split, info in index['splits'].items():
    os.makedirs(os.path.join(dst, split), exist_ok=True)
    shards, videos, n = [], [], info['num_frames']
    for k in range(copies):
      for name in info['shards']:
        shards.append(f'copy{k:03d}-{name}')
        shutil.copyfile(os.path.join(src, split, name), os.path.join(dst, split, shards[-1]))
      videos += [dict(v, video_id=f'{v["video_id"]}~{k}', records=[r + k * n for r in v['records']])
                 for v in info['videos']]
    info.update(shards=shards, videos=sorted(videos, key=lambda v: v['video_id']), num_frames=n * copies)
  index.update(num_seen=index['num_seen'] * copies, num_kept=index['num_kept'] * copies)
  with open(os.path.join(dst, frame_store.INDEX_FILE), 'w') as f:
    json.dump(index, f)
  return dst


def main(argv):
  del argv
  config = _CONFIG.value
  config_arg = next((a.split('=', 1)[1] for a in sys.argv if a.startswith('--config=')), 'configs/distant.py:cpu')
  out = _OUT.value or tempfile.mkdtemp(prefix='eval_memory_')
  default = ingest.prepare_store(config.data)
  large = replicate_store(default, os.path.join(out, f'store_x{_SCALE.value}'), _SCALE.value)
  result = {'config': config_arg, 'scale': _SCALE.value}
  for name, store in (('default', default), ('large', large)):
    s = frame_store.open_store(store)
    rss, seconds = _measure(config_arg, store, os.path.join(out, f'eval_{name}'))
    result[name] = {'store': store, 'frames': {k: s.num_frames(k) for k in s.splits},
                    'peak_rss_mib': round(rss / 1024, 1), 'seconds': round(seconds, 1)}
  result['rss_ratio'] = round(result['large']['peak_rss_mib'] / result['default']['peak_rss_mib'], 3)
  result.update(machine=f'{platform.machine()}, {os.cpu_count()} cores', python=platform.python_version(),
                jax=jax.__version__, date=time.strftime('%Y-%m-%d'))
  print(json.dumps(result))


def _measure(config_arg: str, store: str, workdir: str) -> tuple[int, float]:
  """(peak RSS in KiB, seconds) of one eval process, from the kernel's accounting of that child alone."""
  cmd = [sys.executable, '-m', 'siampose_jax.main', f'--config={config_arg}', '--config.mode=eval',
         '--config.eval.checkpoint=random', f'--config.data.store_dir={store}', f'--workdir={workdir}']
  t = time.perf_counter()
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  err = proc.stderr.read()
  _, status, usage = os.wait4(proc.pid, 0)
  proc.returncode = os.waitstatus_to_exitcode(status)
  if proc.returncode:
    raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}):\n{err.decode()[-3000:]}')
  return usage.ru_maxrss, time.perf_counter() - t


if __name__ == '__main__':
  app.run(main)
