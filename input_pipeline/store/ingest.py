"""Objectron (or the synthetic default) -> ArrayRecord frame store, once; and the ingest CLI.

  python -m input_pipeline.store.ingest --format=records --input=DIR --output=DIR [--subsample=5]
      [--on_bad_record=skip] [--instances=all] [--min_visibility=0.1]

It shows progress per source file, and an interrupted run resumes when rerun with the same flags.

The official train/test split comes from the index files (`[v1/]index/<class>_annotations_{train,test}`,
resolved by objectron_layout.Layout); an optional validation
split is carved from the training videos by a seeded hash of the video id (stable across runs and readers).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from typing import Callable, Iterator

import tqdm
from absl import logging

from input_pipeline.formats import objectron_layout
from input_pipeline.formats import objectron_raw
from input_pipeline.formats import objectron_records
from input_pipeline.formats import paths
from input_pipeline.formats import splits
from input_pipeline.formats.frame_record import CATEGORIES, FrameRecord
from input_pipeline.formats.tfrecord import RecordError
from input_pipeline.store import frame_store
from input_pipeline.store import journal as ingest_journal
from input_pipeline.store import remote as store_remote
from input_pipeline.store import writer as store_writer

FORMATS = objectron_layout.FORMATS
_SHARD_NAME = re.compile(r'^(?P<prefix>.*)-(?P<i>\d{5})-of-(?P<n>\d{5})$')


def read_frames(root, fmt: str, categories=CATEGORIES) -> Iterator[FrameRecord]:
  """Every annotated frame under an Objectron root (any `objectron_layout` layout), in one format."""
  layout = root if isinstance(root, objectron_layout.Layout) else objectron_layout.Layout.find(root)
  for (_, _), sources in _source_groups(layout, fmt, categories).items():
    for source in sources:
      for _, rec in _read_source(layout, fmt, source, None):
        yield rec


def split_function(layout: objectron_layout.Layout, val_fraction: float = 0.0, seed: int = 0,
                   categories=CATEGORIES) -> Callable[[str], str]:
  """video id -> 'train' | 'val' | 'test', from the index files (+ a hashed validation carve-out)."""
  split_of = layout.split_of(categories)
  if not split_of:
    raise FileNotFoundError(f'no index files for {list(categories)} in {layout.index_dir}')
  split_of = splits.assign_all(split_of, val_fraction, seed)

  def split_fn(video_id: str) -> str:
    if video_id not in split_of:
      raise KeyError(f'video {video_id!r} is in the records but in no {layout.index_dir}/<class>_annotations_* '
                     'file')
    return split_of[video_id]

  return split_fn


def _source_groups(layout: objectron_layout.Layout, fmt: str, categories) -> dict[tuple[str, str], list[str]]:
  """(class, split) -> its sources: shard paths (records, sequences) or indexed video ids (raw)."""
  if fmt not in FORMATS:
    raise ValueError(f'data.format={fmt!r}: expected one of {FORMATS}')
  groups = {}
  for category in categories:
    for split in objectron_layout.SPLITS:
      groups[category, split] = (layout.videos(category, split) if fmt == 'raw'
                                 else layout.shards(fmt, category, split))
  groups = {k: v for k, v in groups.items() if v}
  if not groups:
    where = (f'videos in the index files of {layout.index_dir}' if fmt == 'raw' else
             f'shards {layout.format_dir(fmt)}/<class>/<class>_<split>-*')
    raise FileNotFoundError(f'no {fmt} data for {list(categories)} under {layout.root}: no {where} '
                            f'(this root holds: {", ".join(layout.formats()) or "none of records, sequences, raw"})')
  return groups


def _missing_shards(paths: list[str]) -> list[str]:
  """Shards absent from the `<prefix>-<i>-of-<n>` sets that `paths` belong to."""
  expected = set()
  for path in paths:
    match = _SHARD_NAME.match(path)
    if match:
      expected.update(objectron_records.shard_paths(match['prefix'], int(match['n'])))
  return sorted(expected - set(paths))


def _read_source(layout: objectron_layout.Layout, fmt: str, source: str,
                 on_error) -> Iterator[tuple[str, FrameRecord]]:
  """(where, frame) for one source; damaged records go to `on_error` (see tfrecord.read_records)."""
  if fmt == 'records':
    yield from objectron_records.iter_examples(source, on_error=on_error)
  elif fmt == 'sequences':
    for where, frames in objectron_records.iter_sequences(source, on_error=on_error):
      for i, rec in enumerate(frames):
        yield f'{where} frame {i}', rec
  else:  # raw: one video; its checks raise, so a bad video ends (the rest of) that source
    frames = objectron_raw.read_raw_video(layout.root, source)
    while True:
      try:
        rec = next(frames)
      except StopIteration:
        return
      except (FileNotFoundError, RecordError) as e:
        if on_error is None:
          raise
        on_error(RecordError(f'video {source!r}: {e}', 'missing_file' if isinstance(e, FileNotFoundError)
                             else e.reason))
        return
      yield layout.raw_paths(source)[0], rec


def _report(info: frame_store.StoreInfo) -> None:
  logging.info('frame store %s: %d frames seen, %d kept; per split %s', info.path, info.num_seen,
               info.num_kept, {k: v['num_frames'] for k, v in info.splits.items()})
  if info.dropped:
    logging.info('dropped on purpose: %s', info.dropped)
  if info.num_skipped:
    logging.warning('skipped %d bad items (data.on_bad_record=skip): %s; details in %s; first: %s',
                    info.num_skipped, info.skip_counts, os.path.join(info.path, frame_store.SKIP_FILE),
                    [s.message for s in info.skipped[:5]])


def ingest_dataset(root, output: str, *, fmt: str = 'records', subsample: int = 5,
                   image_scale: float = 1.0, val_fraction: float = 0.0, seed: int = 0,
                   on_bad_record: str = 'raise', instances: str = 'first', min_visibility: float = 0.0,
                   records_per_shard: int = 2000, categories=CATEGORIES,
                   progress: bool = True) -> frame_store.StoreInfo:
  """Builds the store in `output`, via `<output>.partial` renamed only once complete.

  Resumable: rerunning after an interruption (same options) continues after the last fully ingested
  source file (shard for records/sequences, video for raw). Bad data raises naming file and record
  (and video/frame when known), or with on_bad_record='skip' is counted per reason (StoreInfo,
  index.json, skipped.jsonl, the log): damaged or undecodable records, truncated files (the rest of
  the file), missing shards of an `-of-N` set, index videos with no records (checked for each
  class/split that has shards at all, so a download of some classes only is fine), missing raw files.
  `on_bad_record` may change between an interrupted run and its resumption; the other options not.
  """
  layout = objectron_layout.Layout.find(root)
  output = str(paths.resolve(output))
  if (paths.resolve(output) / frame_store.INDEX_FILE).exists():
    raise FileExistsError(f'{output} already holds a frame store')
  final = output
  if not paths.is_local(output):  # ArrayRecord writes local files: stage there, upload when complete
    output = store_remote.staging_dir(final)
    logging.info('ingesting into the local staging folder %s, then uploading to %s', output, final)
  partial = output + '.partial'
  if not os.path.exists(os.path.join(partial, frame_store.INDEX_FILE)):
    groups = _source_groups(layout, fmt, categories)
    writer = store_writer.StoreWriter(
        partial, split_fn=split_function(layout, val_fraction, seed, categories), subsample=subsample,
        image_scale=image_scale, records_per_shard=records_per_shard, on_bad_record=on_bad_record,
        instances=instances, min_visibility=min_visibility,
        resume_key={'root': str(layout.root), 'format': fmt, 'val_fraction': val_fraction,
                    'seed': seed, 'categories': list(categories)})
    if writer.done_sources:
      logging.info('resuming the ingest in %s: %d source files already done', partial,
                   len(writer.done_sources))
    try:
      _ingest_sources(layout, fmt, groups, writer, progress)
    except BaseException:
      writer.abort()
      raise
  os.makedirs(os.path.dirname(output), exist_ok=True)
  shutil.rmtree(output, ignore_errors=True)
  os.replace(partial, output)
  if final != output:
    store_remote.upload_tree(output, final, last=frame_store.INDEX_FILE)
    shutil.rmtree(output)
  info = frame_store.StoreInfo.read(final)
  _report(info)
  return info


def _ingest_sources(layout: objectron_layout.Layout, fmt: str, groups: dict[tuple[str, str], list[str]],
                    writer: store_writer.StoreWriter, progress: bool) -> frame_store.StoreInfo:
  """The source loop of ingest_dataset: checks, reads and commits each source not done yet."""
  missing = [p for paths in groups.values() for p in _missing_shards(paths)] if fmt != 'raw' else []
  extra = []
  for path in missing:
    extra.append(frame_store.Skip('missing_file', f'{path}: shard of an -of-N set does not exist'))
    if writer.on_bad_record == 'raise':
      raise FileNotFoundError(f'{path}: shard of an -of-N set does not exist ({len(missing)} such '
                              'shards); use on_bad_record=skip to ingest the rest')
  sources = [s for paths in groups.values() for s in paths]
  prefix = str(layout.root) + '/'
  name = (lambda s: s.removeprefix(prefix)) if fmt != 'raw' else (lambda s: s)
  done = set(writer.done_sources)
  with tqdm.tqdm(total=len(sources), initial=sum(name(s) in done for s in sources), unit='file',
                 desc='ingest', disable=not progress) as bar:
    for source in sources:
      if name(source) in done:
        continue
      for where, rec in _read_source(layout, fmt, source, writer.on_error):
        writer.add(rec, where)
      writer.commit(name(source))
      bar.update()
      bar.set_postfix(frames=writer.num_seen, kept=writer.num_kept, skipped=len(writer.skipped))
  if fmt != 'raw':  # raw sources are the indexed videos themselves
    for (category, split) in groups:
      path = layout.index_path(category, split)
      where = os.path.dirname(groups[category, split][0])
      absent = [f'{path} names video {v!r} that has no frames in the {fmt} shards in {where}'
                for v in layout.videos(category, split) if v not in writer.videos_seen]
      if absent and writer.on_bad_record == 'raise':
        raise FileNotFoundError(f'{absent[0]} ({len(absent)} such videos); use on_bad_record=skip '
                                'to ingest the rest')
      extra += [frame_store.Skip('missing_video', message) for message in absent]
  return writer.finish(extra)


def _store_key(root: str, data) -> str:
  key = dict(root=str(paths.resolve(root)), format=data.format, subsample=data.subsample,
             image_scale=data.image_scale, val_fraction=data.val_fraction, on_bad=data.on_bad_record,
             instances=data.instances, min_visibility=data.min_visibility, store_version=1)
  return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def prepare_store(data) -> str:
  """config.data -> path of a ready frame store: generates the synthetic set and ingests as needed."""
  return prepare_once(_prepare_store, data, 'siampose_jax.prepare_store')


def prepare_once(prepare: Callable[..., str], data, barrier: str) -> str:
  """`prepare(data)`, run first by process 0 alone while the others wait at `barrier`; they then find the
  finished store at the same (deterministic) path. The cache must be on storage they all see."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() == 1:
    return prepare(data)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  path = prepare(data) if jax.process_index() == 0 else None
  multihost_utils.sync_global_devices(barrier)
  return path or prepare(data)


def _prepare_store(data) -> str:
  if data.on_bad_record not in store_writer.ON_BAD_RECORD:
    raise ValueError(f'data.on_bad_record={data.on_bad_record!r}: expected raise or skip')
  cache = os.path.abspath(os.path.expanduser(data.cache_dir))
  root = data.root
  if not root:
    from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
    logging.info('data.root unset: generating (or reusing) the synthetic Objectron-format set')
    # The generator's manifest names each video's split, so it carves validation videos as this ingest will.
    root = synthetic.ensure_synthetic(os.path.join(cache, 'synthetic'), progress=logging.info,
                                      val_fraction=data.val_fraction, **data.synthetic.to_dict())
    logging.info('data.root unset: using the synthetic Objectron-format set at %s', root)
  store = str(paths.resolve(data.store_dir or os.path.join(cache, 'stores', _store_key(root, data))))
  if (paths.resolve(store) / frame_store.INDEX_FILE).exists():
    logging.info('frame store: %s (reused)', store)
    return store
  logging.info('ingesting %s (%s) into the frame store %s', root, data.format, store)
  ingest_dataset(root, store, fmt=data.format, subsample=data.subsample, image_scale=data.image_scale,
                 val_fraction=data.val_fraction, on_bad_record=data.on_bad_record,
                 instances=data.instances, min_visibility=data.min_visibility)
  return store


def main(argv):
  del argv
  try:
    info = ingest_dataset(FLAGS.input, FLAGS.output, fmt=FLAGS.format, subsample=FLAGS.subsample,
                          image_scale=FLAGS.image_scale, val_fraction=FLAGS.val_fraction,
                          seed=FLAGS.seed, on_bad_record=FLAGS.on_bad_record,
                          instances=FLAGS.instances, min_visibility=FLAGS.min_visibility,
                          records_per_shard=FLAGS.records_per_shard)
  except KeyboardInterrupt:
    sys.exit(f'interrupted: finished source files are kept in {FLAGS.output}.partial; rerun the same '
             'command to resume')
  except (RecordError, FileNotFoundError, FileExistsError, ingest_journal.JournalMismatchError) as e:
    sys.exit(f'error: {e}\n(finished source files are kept in {FLAGS.output}.partial: rerun, e.g. '
             'with --on_bad_record=skip, to resume)')
  print(json.dumps({'store': info.path, 'splits': info.splits, 'seen': info.num_seen,
                    'kept': info.num_kept, 'skipped': info.skip_counts, 'dropped': info.dropped},
                   indent=1))


if __name__ == '__main__':
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  FLAGS = flags.FLAGS
  flags.DEFINE_enum('format', 'records', list(FORMATS), 'Objectron layout to read.')
  flags.DEFINE_string('input', None, 'Objectron root, local or gs:// (e.g. gs://objectron itself, or a '
                      'mirror of it): holds v1/index/ or index/, and the data.', required=True)
  flags.DEFINE_string('output', None, 'Frame store directory to create.', required=True)
  flags.DEFINE_integer('subsample', 5, 'Keep 1 frame in this many.')
  flags.DEFINE_float('image_scale', 1.0, 'Downscale frames by this factor at ingest.')
  flags.DEFINE_float('val_fraction', 0.0, 'Training videos carved out as a validation split.')
  flags.DEFINE_integer('seed', 0, 'Seed of the validation carve-out.')
  flags.DEFINE_enum('on_bad_record', 'raise', list(store_writer.ON_BAD_RECORD),
                    'Raise on bad data, or count, skip and report it.')
  flags.DEFINE_enum('instances', 'first', list(store_writer.INSTANCE_MODES),
                    'first: the first object of each frame (reference); all: one track per instance.')
  flags.DEFINE_float('min_visibility', 0.0, 'Drop (and count) instances less visible than this.')
  flags.DEFINE_integer('records_per_shard', 2000, 'Most frames per ArrayRecord shard.')
  app.run(main)
