"""A sweep's results in the repository, so that they outlive the machine: each finished run's small files
under results/<preset>/<method>/seed<k>/, from which a sweep continues later on another machine and its
tables and claims are rebuilt alone (`paper_tables --from_results`).

Per run: eval_per_query.csv (what the claims need), table1.csv, table2.csv, config.json (copied from the
run's workdir) and run.json: the runner's command and the run's, preset, method, seed, --override values,
wall seconds, commit (git rev-parse HEAD, '-dirty' when the tree has changes outside results/), package
versions and the machine. No checkpoints, no embeddings. A run is done when its folder holds all five.

Machine kind: '<CPU model> (<family>, <model>, <widest vector instruction set>), <usable cores> cores, <JAX
backend>: <device count> x <device kind>', e.g. 'AMD EPYC (family 25, model 1, avx2), 2 cores, cpu: 1 x cpu'.
Two machines of one kind compile and split the same programs the same way (XLA targets the CPU's
instruction set and the accelerator; its thread pools split work by core count), so a run gives the same
numbers on either; memory, operating system and host name do not enter. A sweep is made on one kind:
continuing it on another is refused unless --allow_other_machine, and then its tables say which runs came
from which kind.
"""
from __future__ import annotations

import functools
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata

from flax import traverse_util

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_ROOT = str(REPO / 'results')
RUN_FILES = ('eval_per_query.csv', 'table1.csv', 'table2.csv', 'config.json')
RUN_JSON = 'run.json'
# --override keys that say where data is cached, not what a run computes: they may differ between machines.
PATH_OVERRIDES = ('data.cache_dir',)
PACKAGES = {'jax': 'jax', 'jaxlib': 'jaxlib', 'flax': 'flax', 'optax': 'optax', 'orbax': 'orbax-checkpoint',
            'grain': 'grain', 'numpy': 'numpy'}


class SweepMismatch(ValueError):
  """Continuing a sweep whose finished runs were made on another kind of machine, with other overrides or
  at another version of the preset."""


def run_dir(root: str, preset: str, method: str, seed: int) -> str:
  return os.path.join(root, preset, method, f'seed{seed}')


def is_complete(path: str) -> bool:
  return all(os.path.exists(os.path.join(path, f)) for f in RUN_FILES + (RUN_JSON,))


def read_run(path: str) -> dict:
  with open(os.path.join(path, RUN_JSON)) as f:
    return json.load(f)


def completed(preset_dir: str, methods: list[str]) -> dict[str, list[int]]:
  """{method: its seeds whose results are complete}, for the `methods` (in that order) that have any."""
  out = {}
  for m in methods:
    folder = os.path.join(preset_dir, m)
    names = os.listdir(folder) if os.path.isdir(folder) else []
    seeds = sorted(int(n[4:]) for n in names
                   if re.fullmatch(r'seed\d+', n) and is_complete(os.path.join(folder, n)))
    if seeds:
      out[m] = seeds
  return out


VECTOR_ISAS = ('avx512f', 'avx2', 'avx', 'sse4_2', 'sve', 'asimd')  # the widest first


def _cpu_model() -> str:
  """The CPU as /proc/cpuinfo names it, with its family and model numbers and widest vector instruction set
  (what XLA compiles for): e.g. 'AMD EPYC (family 25, model 1, avx2)'."""
  info = {}
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if not line.strip():
          break  # the first processor's block
        key, _, value = line.partition(':')
        info[key.strip().lower()] = value.strip()
  except OSError:
    pass
  name = info.get('model name') or info.get('hardware') or platform.processor() or platform.machine()
  flags = set((info.get('flags') or info.get('features') or '').split())
  extra = [f'{label} {info[key]}' for label, key in (('family', 'cpu family'), ('model', 'model'))
           if info.get(key)]
  extra += [isa for isa in VECTOR_ISAS if isa in flags][:1]
  return f'{name} ({", ".join(extra)})' if extra else name


def _cores() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def _memory_gb() -> float:
  try:
    with open('/proc/meminfo') as f:
      kb = next(int(line.split()[1]) for line in f if line.startswith('MemTotal:'))
    return round(kb / 2 ** 20, 1)
  except (OSError, StopIteration):
    return 0.0


_DEVICE_PROBE = ('import json, jax; d = jax.devices(); print(json.dumps({"backend": jax.default_backend(), '
                 '"device_kind": d[0].device_kind, "device_count": len(d)}))')


@functools.cache
def _devices() -> dict:
  """JAX's backend and devices as the runs see them, probed in a child process: initialising an accelerator
  here would hold its memory while the runs train."""
  proc = subprocess.run([sys.executable, '-c', _DEVICE_PROBE], capture_output=True, text=True, check=False)
  if proc.returncode:
    raise RuntimeError(f'probing the JAX devices failed:\n{proc.stderr[-2000:]}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict:
  """This machine: its kind (see the module docstring) and the details that do not enter it."""
  dev, cpu, cores = _devices(), _cpu_model(), _cores()
  return {'kind': f'{cpu}, {cores} cores, {dev["backend"]}: {dev["device_count"]} x {dev["device_kind"]}',
          'platform': platform.platform(), 'cpu_model': cpu, 'cores': cores, 'memory_gb': _memory_gb(),
          'jax_backend': dev['backend'], 'device_kind': dev['device_kind'], 'device_count': dev['device_count']}


def versions() -> dict:
  out = {'python': platform.python_version()}
  for name, dist in PACKAGES.items():
    try:
      out[name] = metadata.version(dist)
    except metadata.PackageNotFoundError:
      out[name] = 'not installed'
  return out


def commit(results_root: str) -> str:
  """HEAD of the code's repository, '-dirty' when it has changes (results under `results_root` aside)."""
  def git(*args):
    return subprocess.run(['git', '-C', str(REPO), *args], capture_output=True, text=True, check=False)
  head = git('rev-parse', 'HEAD')
  if head.returncode:
    return 'unknown (not a git checkout)'
  rel = os.path.relpath(os.path.abspath(results_root), REPO)
  outside = rel.startswith('..') or os.path.isabs(rel)
  status = git('status', '--porcelain', '--', '.', *([] if outside else [f':(exclude){rel}']))
  return head.stdout.strip() + ('-dirty' if status.stdout.strip() else '')


def save_run(workdir: str, dest: str, info: dict) -> str:
  """Copies a finished run's small files from its `workdir` into `dest` and writes run.json (`info`) last,
  so that a folder holding run.json is complete."""
  missing = [f for f in RUN_FILES if not os.path.exists(os.path.join(workdir, f))]
  if missing:
    raise FileNotFoundError(f'{workdir}: the finished run has no {missing}')
  os.makedirs(dest, exist_ok=True)
  for name in RUN_FILES:
    shutil.copyfile(os.path.join(workdir, name), os.path.join(dest, name))
  tmp = os.path.join(dest, RUN_JSON + '.tmp')
  with open(tmp, 'w') as f:
    json.dump(info, f, indent=1, sort_keys=True)
    f.write('\n')
  os.replace(tmp, os.path.join(dest, RUN_JSON))
  return dest


def _compared(overrides: dict) -> dict:
  return {k: v for k, v in overrides.items() if k not in PATH_OVERRIDES}


def check_sweep(preset_dir: str, runs: dict[str, dict], kind: str, overrides: dict,
                allow_other_machine: bool) -> None:
  """Refuses to add runs to a sweep whose finished runs (`runs`: name -> run.json) were made on another kind
  of machine (unless `allow_other_machine`) or with other --override values."""
  other = sorted({r['machine']['kind'] for r in runs.values()} - {kind})
  if other and not allow_other_machine:
    names = sorted(n for n, r in runs.items() if r['machine']['kind'] != kind)
    raise SweepMismatch(
        f'{preset_dir}: its runs {names} were made on a machine of kind {other}, this one is of kind '
        f'{kind!r}. A sweep is made on one kind of machine; continue it on that kind, write to another '
        '--results_dir, or pass --allow_other_machine (the tables then flag the mixed kinds)')
  differ = sorted(n for n, r in runs.items() if _compared(r.get('overrides', {})) != _compared(overrides))
  if differ:
    theirs = _compared(runs[differ[0]].get('overrides', {}))
    raise SweepMismatch(f'{preset_dir}: its runs {differ} were made with --override {theirs}, this call has '
                        f'{_compared(overrides)}; a sweep\'s runs share their settings')


def config_drift(stored: dict, current: dict, skip: set[str]) -> list[tuple[str, object, object]]:
  """(key, stored value, current value) for each config key, outside `skip`, on which a finished run's
  config.json and the config the same command would build now disagree: the preset changed under a sweep.
  Both sides are compared as JSON (tuples become lists); `skip` holds the keys the run's command set."""
  a, b = (traverse_util.flatten_dict(json.loads(json.dumps(c)), sep='.') for c in (stored, current))
  return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
          if k not in skip and a.get(k) != b.get(k)]


def provenance_notes(runs: dict[str, dict]) -> list[str]:
  """A line flagging runs from more than one kind of machine, each kind with its methods and their seeds
  (none when the sweep is on one kind)."""
  kinds = {}
  for r in runs.values():
    kinds.setdefault(r['machine']['kind'], {}).setdefault(r['method'], []).append(r['seed'])
  if len(kinds) < 2:
    return []

  def methods(of):
    return ', '.join(f'{m} (seed{"s" * (len(s) > 1)} {", ".join(map(str, sorted(s)))})'
                     for m, s in sorted(of.items()))
  return ['Runs from more than one kind of machine (continued with --allow_other_machine): '
          + '; '.join(f'{k}: {methods(of)}' for k, of in sorted(kinds.items()))
          + '. Their differences may not all come from the seeds.']
