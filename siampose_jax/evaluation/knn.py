"""Exact cosine k-nearest-neighbour search as jitted JAX kernels.

Every evaluation protocol (box fitting, category accuracy, re-identification, UCF101 retrieval) ranks a
gallery by cosine similarity to each query. The gallery can be far larger than one device's memory, so:

  * the gallery is split into contiguous row ranges, one per device of a `Mesh` axis ('data'), and each
    device walks its range in fixed-size chunks, keeping a running top-k that is merged after every chunk
    (`lax.top_k` per chunk, then a merge of the two candidate lists);
  * a gallery given as a numpy array is never put on the devices whole: it is streamed from the host one
    "super-chunk" (one chunk per device) at a time, with at most two super-chunks in flight;
  * a gallery given as a `jax.Array` stays on the devices and is scanned by one compiled program;
  * queries are processed in fixed-size blocks (`lax.map`) so the score tile is [query_block, chunk_size].

Every shape is padded to a multiple of the block/chunk sizes, so a search compiles once per
(query count, gallery size, options) and never per chunk; offsets and the number of valid rows are traced
arguments. Padded rows score -inf and are never returned unless fewer than k rows are allowed, in which
case the missing slots hold score -inf and index -1.

Tie rule: candidates are ordered by (score descending, global gallery index ascending), so among exactly
equal scores the lower gallery index wins. `lax.top_k` is documented to prefer the lower position on ties
(positions within a chunk follow gallery order), and every merge sorts the candidates by the two keys
(score, index) explicitly, so the rule does not depend on the order in which chunks or devices are merged.
"""
from __future__ import annotations

import collections
import functools
import math

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from siampose_jax import sharding
from siampose_jax.normalize import l2_normalize

# How often each kernel body was traced; tests use it to check that a search compiles once per shape.
TRACE_COUNTS = collections.Counter()

COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def _select(scores, indices, k):
  """The k best candidates of [b, n] lists, ordered by (score desc, index asc)."""
  neg, idx = lax.sort((-scores, indices), dimension=-1, num_keys=2)
  return -neg[..., :k], idx[..., :k]


def _chunk_topk(q, qg, g, gg, base, n_valid, k, exclude):
  """Top-k of a query block [b, D] against a gallery chunk [C, D] whose first row is global row `base`."""
  # HIGHEST keeps float32 exact on GPUs/TPUs (their default may round operands to tf32/bf16).
  precision = lax.Precision.HIGHEST if q.dtype == jnp.float32 else lax.Precision.DEFAULT
  s = lax.dot_general(q, g, (((1,), (1,)), ((), ())), precision=precision,
                      preferred_element_type=jnp.float32)
  idx = base + jnp.arange(g.shape[0], dtype=jnp.int32)
  keep = (idx < n_valid)[None, :]
  if exclude:
    keep = keep & (qg[:, None] != gg[None, :])
  s = jnp.where(keep, s, -jnp.inf)
  top, pos = lax.top_k(s, k)
  return top, idx[pos]


def _gather_devices(s, i, axis_name, k):
  """Merges the per-device top-k lists [Qp, k] into one replicated list."""
  s = lax.all_gather(s, axis_name, axis=1, tiled=True)
  i = lax.all_gather(i, axis_name, axis=1, tiled=True)
  return _select(s, i, k)


@functools.lru_cache(maxsize=None)
def _prepare_fn(sharding, rows, normalize, dtype):
  """Pads to `rows`, optionally normalises, casts to the compute dtype and lays out with `sharding`."""
  def prep(x):
    TRACE_COUNTS['prepare'] += 1
    x = jnp.pad(x, ((0, rows - x.shape[0]), (0, 0)))
    x = l2_normalize(x.astype(jnp.float32)) if normalize else x
    return x.astype(dtype)
  return jax.jit(prep, out_shardings=sharding)


@functools.lru_cache(maxsize=None)
def _resident_fn(mesh, axis_name, k, chunk, qblock, exclude):
  """Whole search over a device-resident gallery: scan over each device's chunks, then merge devices."""
  def local(q, qg, g, gg, n_valid):
    TRACE_COUNTS['resident'] += 1
    n_chunks, d = g.shape[0] // chunk, q.shape[1]
    start = lax.axis_index(axis_name) * g.shape[0]
    qb, qgb = q.reshape(-1, qblock, d), qg.reshape(-1, qblock)
    init = (jnp.full(qgb.shape + (k,), -jnp.inf, jnp.float32),
            jnp.full(qgb.shape + (k,), -1, jnp.int32))

    def body(carry, xs):
      gc, ggc, j = xs
      base = start + j * chunk

      def block(args):
        qi, qgi, cs, ci = args
        s, i = _chunk_topk(qi, qgi, gc, ggc, base, n_valid, k, exclude)
        return _select(jnp.concatenate([cs, s], -1), jnp.concatenate([ci, i], -1), k)
      return lax.map(block, (qb, qgb) + carry), None

    xs = (g.reshape(n_chunks, chunk, d), gg.reshape(n_chunks, chunk), jnp.arange(n_chunks, dtype=jnp.int32))
    (s, i), _ = lax.scan(body, init, xs)
    return _gather_devices(s.reshape(-1, k), i.reshape(-1, k), axis_name, k)

  fn = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P(axis_name), P(axis_name), P()),
                     out_specs=(P(), P()), check_vma=False)
  return jax.jit(fn)


@functools.lru_cache(maxsize=None)
def _stream_fn(mesh, axis_name, k, qblock, exclude, normalize, dtype):
  """One streamed step: a super-chunk (one chunk per device) merged into the running top-k."""
  def local(state_s, state_i, q, qg, g, gg, offset, n_valid):
    TRACE_COUNTS['stream'] += 1
    chunk, d = g.shape[0], q.shape[1]
    g = (l2_normalize(g.astype(jnp.float32)) if normalize else g).astype(dtype)
    base = offset + lax.axis_index(axis_name) * chunk

    def block(args):
      qi, qgi = args
      return _chunk_topk(qi, qgi, g, gg, base, n_valid, k, exclude)
    s, i = lax.map(block, (q.reshape(-1, qblock, d), qg.reshape(-1, qblock)))
    s, i = _gather_devices(s.reshape(-1, k), i.reshape(-1, k), axis_name, k)
    return _select(jnp.concatenate([state_s, s], -1), jnp.concatenate([state_i, i], -1), k)

  fn = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P(), P(), P(axis_name), P(axis_name), P(), P()),
                     out_specs=(P(), P()), check_vma=False)
  return jax.jit(fn)


def _group_codes(query_groups, gallery_groups, num_queries, num_gallery):
  """Dense int32 codes for arbitrary (e.g. string) group ids shared by queries and gallery."""
  if query_groups is None or gallery_groups is None:
    raise ValueError('exclude_same_group=True needs both query_groups and gallery_groups')
  qg, gg = np.asarray(query_groups), np.asarray(gallery_groups)
  if qg.shape != (num_queries,) or gg.shape != (num_gallery,):
    raise ValueError(f'query_groups {qg.shape} / gallery_groups {gg.shape} must have shapes '
                     f'({num_queries},) / ({num_gallery},)')
  _, codes = np.unique(np.concatenate([qg, gg]), return_inverse=True)
  codes = codes.astype(np.int32)
  return codes[:num_queries], codes[num_queries:]


def knn(queries, gallery, k, *, mesh=None, axis_name=sharding.DATA_AXIS, chunk_size=8192, query_block=1024,
        compute_dtype='float32', query_groups=None, gallery_groups=None, exclude_same_group=False,
        normalize=True):
  """Exact cosine top-k of each query among the gallery rows.

  Args:
    queries: [Q, D] array (numpy or jax).
    gallery: [G, D]; a numpy array is streamed from the host chunk by chunk, a `jax.Array` is kept on
      the devices (sharded over `axis_name`).
    k: neighbours per query (1 <= k <= G).
    mesh: mesh whose `axis_name` axis shards the gallery; default: `sharding.make_mesh()` (all devices).
    chunk_size: gallery rows per device per step (clamped to the per-device share, at least k).
    query_block: queries per score tile (clamped to Q).
    compute_dtype: 'float32' or 'bfloat16' (bf16 operands, float32 accumulation).
    query_groups, gallery_groups: per-row group ids (any type numpy can sort, e.g. video id strings).
    exclude_same_group: drop gallery rows whose group equals the query's ("other videos only"); pass
      `np.arange(N)` as both group arrays to exclude only the item itself in an all-vs-all search.
    normalize: L2-normalise both sides first; pass False if they are already unit vectors.

  Returns:
    (scores [Q, k] float32, indices [Q, k] int32 global gallery rows) as numpy, best first, ties to the
    lower index; slots beyond the number of allowed rows hold (-inf, -1).
  """
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f'compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got {compute_dtype!r}')
  dtype = COMPUTE_DTYPES[compute_dtype]
  queries = queries if isinstance(queries, jax.Array) else np.asarray(queries)
  gallery = gallery if isinstance(gallery, jax.Array) else np.asarray(gallery)
  if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
    raise ValueError(f'queries {queries.shape} and gallery {gallery.shape} must be [Q, D] and [G, D]')
  num_q, num_g = queries.shape[0], gallery.shape[0]
  if num_q == 0:
    raise ValueError('knn needs at least one query')
  if not 1 <= k <= num_g:
    raise ValueError(f'k={k} must be between 1 and the gallery size {num_g}')
  if chunk_size < 1 or query_block < 1:
    raise ValueError(f'chunk_size={chunk_size} and query_block={query_block} must be positive')
  mesh = sharding.make_mesh() if mesh is None else mesh
  n_dev = mesh.shape[axis_name]

  if exclude_same_group:
    qg, gg = _group_codes(query_groups, gallery_groups, num_q, num_g)
  else:
    qg, gg = np.zeros(num_q, np.int32), np.zeros(num_g, np.int32)

  qblock = min(query_block, num_q)
  q_rows = math.ceil(num_q / qblock) * qblock
  replicated = NamedSharding(mesh, P())
  q = _prepare_fn(replicated, q_rows, normalize, dtype)(queries)
  qg = jax.device_put(np.pad(qg, (0, q_rows - num_q)), replicated)
  n_valid = np.int32(num_g)

  per_device = math.ceil(num_g / n_dev)
  chunk = max(min(chunk_size, per_device), k)
  sharded = NamedSharding(mesh, P(axis_name))
  if isinstance(gallery, jax.Array):
    n_chunks = math.ceil(per_device / chunk)
    g_rows = n_dev * n_chunks * chunk
    g = _prepare_fn(sharded, g_rows, normalize, dtype)(gallery)
    gg = jax.device_put(np.pad(gg, (0, g_rows - num_g)), sharded)
    s, i = _resident_fn(mesh, axis_name, k, chunk, qblock, exclude_same_group)(q, qg, g, gg, n_valid)
  else:
    step = _stream_fn(mesh, axis_name, k, qblock, exclude_same_group, normalize, dtype)
    s = jax.device_put(np.full((q_rows, k), -np.inf, np.float32), replicated)
    i = jax.device_put(np.full((q_rows, k), -1, np.int32), replicated)
    width, previous = n_dev * chunk, None
    for offset in range(0, num_g, width):
      rows, groups = gallery[offset:offset + width].astype(np.float32, copy=False), gg[offset:offset + width]
      if rows.shape[0] < width:  # the last super-chunk keeps the shape; its padding is masked
        rows = np.concatenate([rows, np.zeros((width - rows.shape[0], rows.shape[1]), rows.dtype)])
        groups = np.pad(groups, (0, width - groups.shape[0]))
      s, i = step(s, i, q, qg, jax.device_put(rows, sharded), jax.device_put(groups, sharded),
                  np.int32(offset), n_valid)
      if previous is not None:  # bound host->device traffic in flight to two super-chunks
        previous.block_until_ready()
      previous = s
  scores, indices = np.asarray(s)[:num_q], np.asarray(i)[:num_q]
  indices = np.where(np.isneginf(scores), -1, indices).astype(np.int32)
  return scores.astype(np.float32), indices
