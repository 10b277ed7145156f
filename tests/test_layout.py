"""Objectron roots as users have them: a mirror of the public bucket as downloaded (index files under
v1/index/), the repository's layout (index/), the bucket itself read in place (gs://, here mocked), and an
unknown layout, which gets an error listing the paths looked for."""
from __future__ import annotations

import os
import shutil

import pytest

from input_pipeline import synthetic
from input_pipeline.formats import objectron_layout
from input_pipeline.store import frame_store, ingest
from input_pipeline.store import inspect as inspect_cli
from tests import _gcs, runs


@pytest.fixture(scope='module')
def repo_layout_root(cache_dir):
  """The `test` preset's synthetic set (records, index/), as the writers lay it out."""
  return synthetic.ensure_synthetic(os.path.join(cache_dir, 'synthetic'),
                                    **runs.short_config(cache_dir).data.synthetic.to_dict())


@pytest.fixture(scope='module')
def bucket_mirror(repo_layout_root, tmp_path_factory):
  """The same files where `gsutil -m cp -r gs://objectron/v1/...` puts them: ROOT/v1/index/, no ROOT/index/."""
  mirror = tmp_path_factory.mktemp('mirror') / 'objectron'
  shutil.copytree(os.path.join(repo_layout_root, 'v1'), mirror / 'v1')
  shutil.copytree(os.path.join(repo_layout_root, 'index'), mirror / 'v1' / 'index')
  return str(mirror)


def _frames(info):
  return {s: v['num_frames'] for s, v in info.splits.items()}


def test_bucket_mirror_ingests_like_the_repository_layout(repo_layout_root, bucket_mirror, tmp_path):
  layout = objectron_layout.Layout.find(bucket_mirror)
  assert str(layout.index_dir) == os.path.join(bucket_mirror, 'v1', 'index') and layout.formats() == ('records',)
  assert objectron_layout.Layout.find(repo_layout_root).index_dir.name == 'index'
  mirror = ingest.ingest_dataset(bucket_mirror, str(tmp_path / 'a'), fmt='records', subsample=2, progress=False)
  repo = ingest.ingest_dataset(repo_layout_root, str(tmp_path / 'b'), fmt='records', subsample=2, progress=False)
  assert _frames(mirror) == _frames(repo) and sum(_frames(mirror).values()) > 0
  a, b = frame_store.open_store(mirror.path), frame_store.open_store(repo.path)
  assert a.videos('test') == b.videos('test')
  assert a.raw('train', 3) == b.raw('train', 3)
  assert inspect_cli.detect_layout(bucket_mirror) == 'records'
  rows = list(inspect_cli.iter_rows(bucket_mirror))
  assert {r['split'] for r in rows} == {'train', 'test'}  # splits read from v1/index/


def test_gs_root_is_read_in_place(bucket_mirror, tmp_path):
  """`--input=gs://objectron`: the index files and shards are read through etils.epath (here routed to a
  local copy of the bucket), the store written locally."""
  fake_cloud = tmp_path / 'cloud'
  shutil.copytree(bucket_mirror, fake_cloud / 'objectron')
  with _gcs.mock_gcs(str(fake_cloud)) as calls:
    layout = objectron_layout.Layout.find('gs://objectron')
    assert str(layout.index_dir) == 'gs://objectron/v1/index'
    assert layout.shards('records', 'cup', 'train')[0].startswith('gs://objectron/v1/records_shuffled/cup/')
    info = ingest.ingest_dataset('gs://objectron', str(tmp_path / 'store'), fmt='records', subsample=2,
                                 progress=False)
  assert calls['gs'] > 0 and sum(_frames(info).values()) > 0
  assert not os.path.exists('gs:')


def test_unknown_layout_lists_the_paths_looked_for(tmp_path):
  (tmp_path / 'data' / 'cup').mkdir(parents=True)
  root = str(tmp_path)
  with pytest.raises(FileNotFoundError) as e:
    ingest.ingest_dataset(root, str(tmp_path / 'store'), fmt='records')
  assert f'{root}/v1/index' in str(e.value) and f'{root}/index' in str(e.value)
  assert 'not a copy of Objectron' in str(e.value)


def test_missing_format_says_what_the_root_holds(bucket_mirror, tmp_path):
  with pytest.raises(FileNotFoundError, match=r'no sequences data .*/v1/sequences/<class>/.*\(this root holds: '
                                              r'records'):
    ingest.ingest_dataset(bucket_mirror, str(tmp_path / 'store'), fmt='sequences')
