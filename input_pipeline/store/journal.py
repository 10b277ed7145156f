"""Append-only progress log that makes a long ingest resumable.

One JSON object per line: first a header (the options the output depends on), then one entry per
committed unit of work (a finished source file). A line is appended with a single write and fsynced,
so a crash leaves either the whole line or a torn tail; the torn tail is dropped on reopen, and the
work it described is redone.
"""
from __future__ import annotations

import json
import os
from typing import Any


class JournalMismatchError(ValueError):
  """The journal on disk was written with different options than the ones resuming it."""


class Journal:
  """`Journal(path, header)`: opens (resuming) or creates the log; `entries` holds what was committed."""

  def __init__(self, path: str, header: dict[str, Any]):
    self.path = path
    header = json.loads(json.dumps(header))  # normalise (tuples -> lists) for the comparison
    self.entries: list[dict[str, Any]] = []
    if os.path.exists(path):
      lines, good_bytes = self._read_valid_lines()
      if lines:
        if lines[0].get('header') != header:
          diff = sorted(k for k in set(header) | set(lines[0].get('header', {}))
                        if header.get(k) != lines[0].get('header', {}).get(k))
          raise JournalMismatchError(
              f'{path}: an interrupted ingest with other options ({", ".join(diff)} differ) is in '
              f'{os.path.dirname(path)}; rerun with the same options to resume it, or delete that '
              'directory to start over')
        self.entries = lines[1:]
        with open(path, 'r+b') as f:
          f.truncate(good_bytes)
        return
    with open(path, 'wb') as f:
      self._write_line(f, {'header': header})

  def _read_valid_lines(self) -> tuple[list[dict[str, Any]], int]:
    """Complete, parseable lines from the start, and how many bytes they span."""
    lines, good_bytes = [], 0
    with open(self.path, 'rb') as f:
      for raw in f:
        if not raw.endswith(b'\n'):
          break  # torn tail of an append that did not finish
        try:
          lines.append(json.loads(raw))
        except ValueError:
          break
        good_bytes += len(raw)
    return lines, good_bytes

  @staticmethod
  def _write_line(f, obj: dict[str, Any]) -> None:
    f.write(json.dumps(obj, separators=(',', ':')).encode() + b'\n')
    f.flush()
    os.fsync(f.fileno())

  def append(self, entry: dict[str, Any]) -> None:
    with open(self.path, 'ab') as f:
      self._write_line(f, entry)
    self.entries.append(entry)

  def remove(self) -> None:
    if os.path.exists(self.path):
      os.remove(self.path)
