"""Paths that may be local or on Cloud Storage (`gs://bucket/...`): every file the project reads or writes
goes through `etils.epath`, and `resolve` is the one place that turns a user's string into such a path."""
from __future__ import annotations

import os

from etils import epath


def is_local(path) -> bool:
  return '://' not in os.fspath(path)


def resolve(path) -> epath.Path:
  """`~` expanded and made absolute when local; URIs (gs://, s3://, ...) as they are."""
  if isinstance(path, epath.Path) and not is_local(path):
    return path
  path = os.fspath(path)
  if not is_local(path):
    return epath.Path(path)
  return epath.Path(os.path.abspath(os.path.expanduser(path)))
