"""Frame stores on Cloud Storage (or any non-local epath URI).

ArrayRecord's reader and writer (C++) open local files only. So a store whose path is a URI is ingested
into a local staging folder and uploaded when complete (index.json last, as locally it is written last),
and is read from a local mirror of its shards, each downloaded once and checked by size. The local side
lives under `$SIAMPOSE_LOCAL_CACHE` (default ~/.cache/siampose_jax/remote): plan disk for one store there.
"""
from __future__ import annotations

import hashlib
import os

from etils import epath

from input_pipeline.formats import paths


def local_root() -> str:
  return os.path.expanduser(os.environ.get('SIAMPOSE_LOCAL_CACHE', '~/.cache/siampose_jax/remote'))


def _key(uri: str) -> str:
  return hashlib.sha256(uri.rstrip('/').encode()).hexdigest()[:16]


def mirror_dir(uri: str) -> str:
  """Where the shards of the store at `uri` are mirrored locally."""
  return os.path.join(local_root(), 'mirror', _key(uri))


def staging_dir(uri: str) -> str:
  """Where a store bound for `uri` is ingested (and resumed) before it is uploaded."""
  return os.path.join(local_root(), 'staging', _key(uri))


def download(uri: str, local: str) -> str:
  """`uri` copied to `local` unless a copy of the same size is there; returns `local`."""
  src = epath.Path(uri)
  size = src.stat().length
  if os.path.exists(local) and os.path.getsize(local) == size:
    return local
  os.makedirs(os.path.dirname(local), exist_ok=True)
  src.copy(local + '.part', overwrite=True)
  if os.path.getsize(local + '.part') != size:
    raise OSError(f'{uri}: downloaded {os.path.getsize(local + ".part")} of {size} bytes to {local}')
  os.replace(local + '.part', local)
  return local


def upload_tree(local_dir: str, uri: str, last: str) -> None:
  """Copies every file under `local_dir` to the same place under `uri`, the file named `last` at the end."""
  files = sorted(os.path.relpath(os.path.join(d, f), local_dir) for d, _, fs in os.walk(local_dir) for f in fs)
  files.sort(key=lambda f: f == last)
  dst_root = paths.resolve(uri)
  for rel in files:
    dst = dst_root / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    epath.Path(os.path.join(local_dir, rel)).copy(dst, overwrite=True)
