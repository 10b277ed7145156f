"""`mock_gcs(folder)`: etils.epath's gs:// calls routed to a local folder (gs://b/x <-> folder/b/x), counted,
so code that goes through epath can be run against "Cloud Storage" without a network."""
from __future__ import annotations

import collections
import contextlib
import os

from unittest import mock

from etils.epath import gpath, testing


@contextlib.contextmanager
def mock_gcs(folder: str):
  folder = os.path.abspath(folder)
  calls = collections.Counter()

  def local(p):
    s = os.fspath(p)
    if s.startswith('gs://'):
      calls['gs'] += 1
      return os.path.join(folder, s[len('gs://'):])
    return s

  def back(p):
    s = os.fspath(p)
    return 'gs://' + s[len(folder) + 1:] if s.startswith(folder + os.sep) else s

  def one(fn, p, *args, **kwargs):
    return fn(local(p), *args, **kwargs)

  def two(fn, p, dst, *args, **kwargs):
    return fn(local(p), local(dst), *args, **kwargs)

  def glob(fn, p):  # results named as asked: gs:// for a gs:// pattern
    remote = os.fspath(p).startswith('gs://')
    return [back(m) if remote else m for m in fn(local(p))]

  def walk(fn, top, **kwargs):
    remote = os.fspath(top).startswith('gs://')
    for d, dirs, files in fn(local(top), **kwargs):
      yield back(d) if remote else d, dirs, files

  # With TensorFlow installed, epath sends gs:// to its tf.io.gfile backend, past the mocked table.
  with mock.patch.object(gpath, '_is_tf_installed', lambda: False), testing.mock_epath(
      open=one, exists=one, isdir=one, listdir=one, makedirs=one, mkdir=one, remove=one, rmtree=one,
      stat=one, glob=glob, walk=walk, copy=two, rename=two, replace=two):
    yield calls
