"""TFRecord framing, read and written without TensorFlow.

A record on disk is: uint64 length (little-endian), masked crc32c of those 8 bytes, the payload,
masked crc32c of the payload. Both checksums are verified on read so a damaged shard fails loudly at
the record that is damaged instead of yielding garbage protos. Readers that must survive damaged data
(ingest with data.on_bad_record=skip) pass `on_error`: a bad payload checksum skips that one record
(its length was verified, so the framing holds); a truncated file or a bad length checksum ends that
file, since nothing after it can be located.
"""
from __future__ import annotations

import glob as glob_lib
import os
import struct
from typing import Callable, Iterable, Iterator, Sequence

import google_crc32c
from etils import epath

_MASK_DELTA = 0xA282EAD8
_LEN = struct.Struct('<Q')
_CRC = struct.Struct('<I')
_HEADER_SIZE = _LEN.size + _CRC.size


class RecordError(ValueError):
  """A record (or the proto inside it) is damaged or inconsistent; the message says where.

  `reason` is a short stable code (e.g. 'checksum', 'truncated_file', 'nan_keypoints') under which
  ingest counts skipped records.
  """

  def __init__(self, message: str, reason: str = 'bad_record'):
    super().__init__(message)
    self.reason = reason

  def __reduce__(self):  # keeps `reason` across pickling (e.g. out of a worker process)
    return type(self), (str(self), self.reason)


# Called with each damaged record's error instead of raising it; reading then goes on where it can.
OnError = Callable[[RecordError], None]


def masked_crc32c(data: bytes) -> int:
  """TFRecord's checksum: crc32c rotated right by 15 bits plus a constant (mod 2^32)."""
  crc = google_crc32c.value(bytes(data))
  return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
  """The on-disk bytes of one record holding `data`."""
  length = _LEN.pack(len(data))
  return b''.join((length, _CRC.pack(masked_crc32c(length)), data, _CRC.pack(masked_crc32c(data))))


class TFRecordWriter:
  """Appends framed records to one file; use as a context manager."""

  def __init__(self, path: str):
    self.path = os.fspath(path)
    parent = os.path.dirname(self.path)
    if parent:
      os.makedirs(parent, exist_ok=True)
    self._f = open(self.path, 'wb')
    self.count = 0

  def write(self, data: bytes) -> None:
    self._f.write(frame_record(data))
    self.count += 1

  def close(self) -> None:
    self._f.close()

  def __enter__(self) -> 'TFRecordWriter':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def write_records(path: str, payloads: Iterable[bytes]) -> int:
  """Writes all payloads to one file; returns how many were written."""
  with TFRecordWriter(path) as w:
    for data in payloads:
      w.write(data)
    return w.count


def expand_paths(paths_or_glob: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
  """Shard paths from a path, a glob (e.g. `cup_train-*-of-*`) or a list of either, in sorted order."""
  items = [paths_or_glob] if isinstance(paths_or_glob, (str, os.PathLike)) else list(paths_or_glob)
  if not items:
    raise FileNotFoundError('no record paths given')
  out = []
  for item in items:
    item = os.fspath(item)
    if glob_lib.has_magic(item):
      path = epath.Path(item)
      matches = sorted(os.fspath(p) for p in path.parent.glob(path.name) if p.is_file())
      if not matches:
        raise FileNotFoundError(f'no record files match {item!r}')
      out.extend(matches)
    elif epath.Path(item).is_file():
      out.append(item)
    else:
      raise FileNotFoundError(f'record file {item!r} does not exist')
  return out


def _read_exact(f, n: int) -> bytes:
  buf = f.read(n)
  while len(buf) < n:
    more = f.read(n - len(buf))
    if not more:
      break
    buf += more
  return buf


def _iter_file(path: str, verify_data: bool = True,
               on_error: OnError | None = None) -> Iterator[tuple[int, bytes | None]]:
  """Yields (index, payload) for one file; payload is None when verify_data is False (counting)."""

  def fail(message: str, reason: str) -> None:
    err = RecordError(message, reason)
    if on_error is None:
      raise err
    on_error(err)

  size = None if verify_data else epath.Path(path).stat().length
  with epath.Path(path).open('rb') as f:  # local or gs://
    index, offset = 0, 0
    while True:
      where = f'{path!r} record {index} (byte offset {offset})'
      header = _read_exact(f, _HEADER_SIZE)
      if not header:
        return
      if len(header) < _HEADER_SIZE:
        fail(f'{where}: truncated header ({len(header)} of {_HEADER_SIZE} bytes); '
             'the file ends here', 'truncated_file')
        return
      length_bytes = header[:_LEN.size]
      (length,), (length_crc,) = _LEN.unpack(length_bytes), _CRC.unpack(header[_LEN.size:])
      if masked_crc32c(length_bytes) != length_crc:
        fail(f'{where}: length checksum mismatch (corrupt header); the rest of the file '
             'cannot be located', 'checksum')
        return
      if verify_data:
        body = _read_exact(f, length + _CRC.size)
        if len(body) < length + _CRC.size:
          fail(f'{where}: truncated record ({len(body)} of {length + _CRC.size} bytes); '
               'the file ends here', 'truncated_file')
          return
        data = body[:length]
        if masked_crc32c(data) == _CRC.unpack(body[length:])[0]:
          yield index, data
        else:
          fail(f'{where}: data checksum mismatch (corrupt payload)', 'checksum')
      else:
        end = offset + _HEADER_SIZE + length + _CRC.size
        if end > size:
          fail(f'{where}: truncated record (file ends before byte {end})', 'truncated_file')
          return
        f.seek(end)
        yield index, None
      offset += _HEADER_SIZE + length + _CRC.size
      index += 1


def read_records(paths_or_glob, *, on_error: OnError | None = None) -> Iterator[tuple[str, int, bytes]]:
  """Yields (path, index within that file, payload) for every record, verifying both checksums.

  Damaged records raise RecordError, or with `on_error` are passed to it and skipped (see above).
  """
  for path in expand_paths(paths_or_glob):
    for index, data in _iter_file(path, on_error=on_error):
      yield path, index, data


def count_records(paths_or_glob) -> int:
  """Number of records over all files; checks the framing (length checksums) but skips payloads."""
  return sum(1 for path in expand_paths(paths_or_glob) for _ in _iter_file(path, verify_data=False))
