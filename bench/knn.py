"""Times the jitted k-NN kernel against numpy and faiss-cpu on the same random data, in one run.

Prints one JSON object: seconds per method, ratios (numpy/jax, faiss/jax; > 1 means jax is faster),
compile seconds (measured from JAX's compile events during the warm-up call, excluded from the timings)
and agreement of indices and scores between the three methods.

  python -m bench.knn --queries 2000 --gallery 200000 --dim 512 --k 5 --dtype float32
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from siampose_jax.evaluation import knn as knn_lib

try:
  import faiss
except ImportError:  # accelerator images may lack faiss-cpu; the faiss columns are then null
  faiss = None

_COMPILE_EVENTS = ('/jax/core/compile/jaxpr_trace_duration', '/jax/core/compile/backend_compile_duration')


def numpy_knn(queries, gallery, k, chunk):
  """The plain baseline: chunked matmul, argpartition per chunk, argpartition + sort of the candidates."""
  cand_s, cand_i = [], []
  for start in range(0, gallery.shape[0], chunk):
    s = queries @ gallery[start:start + chunk].T
    kk = min(k, s.shape[1])
    part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    cand_s.append(np.take_along_axis(s, part, 1))
    cand_i.append(part + start)
  s, i = np.concatenate(cand_s, 1), np.concatenate(cand_i, 1)
  part = np.argpartition(-s, k - 1, axis=1)[:, :k]
  s, i = np.take_along_axis(s, part, 1), np.take_along_axis(i, part, 1)
  order = np.argsort(-s, axis=1, kind='stable')
  return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


def timed(fn):
  start = time.perf_counter()
  out = fn()
  return time.perf_counter() - start, out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--queries', type=int, default=2000)
  parser.add_argument('--gallery', type=int, default=200_000)
  parser.add_argument('--dim', type=int, default=512)
  parser.add_argument('--k', type=int, default=5)
  parser.add_argument('--dtype', choices=sorted(knn_lib.COMPUTE_DTYPES), default='float32')
  parser.add_argument('--chunk-size', type=int, default=8192)
  parser.add_argument('--query-block', type=int, default=1024)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()

  rng = np.random.default_rng(args.seed)
  def unit(n):
    x = rng.standard_normal((n, args.dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
  queries, gallery = unit(args.queries), unit(args.gallery)
  opts = dict(k=args.k, chunk_size=args.chunk_size, query_block=args.query_block,
              compute_dtype=args.dtype, normalize=False)

  compile_s = {'stream': 0.0, 'resident': 0.0}
  current = [None]
  def on_event(event, duration, **_):
    if event in _COMPILE_EVENTS and current[0]:
      compile_s[current[0]] += duration
  jax.monitoring.register_event_duration_secs_listener(on_event)

  jnp.zeros(1).block_until_ready()  # start the backend so that the timed put is only the transfer
  put_s, gallery_dev = timed(lambda: jnp.asarray(gallery).block_until_ready())
  for mode, g in (('stream', gallery), ('resident', gallery_dev)):  # warm-up: trace and compile
    current[0] = mode
    knn_lib.knn(queries, g, **opts)
  current[0] = None
  stream_s, (js, ji) = timed(lambda: knn_lib.knn(queries, gallery, **opts))
  resident_s, (rs, ri) = timed(lambda: knn_lib.knn(queries, gallery_dev, **opts))
  numpy_s, (ns, ni) = timed(lambda: numpy_knn(queries, gallery, args.k, args.chunk_size))

  def run_faiss():
    index = faiss.IndexFlatIP(args.dim)
    index.add(gallery)
    return index.search(queries, args.k)
  faiss_s, (fs, fi) = timed(run_faiss) if faiss else (None, (None, None))

  def agree(a_s, a_i, b_s, b_i):  # None where faiss is missing
    if b_s is None:
      return None
    return {'index_agreement': float(np.mean(a_i == b_i)), 'max_score_diff': float(np.max(np.abs(a_s - b_s)))}

  def ratio(a, b):
    return None if a is None else a / b

  print(json.dumps({
      'config': vars(args),
      'devices': [str(d) for d in jax.devices()],
      'seconds': {'jax_stream': stream_s, 'jax_resident': resident_s, 'jax_gallery_put': put_s,
                  'numpy': numpy_s, 'faiss': faiss_s},
      'compile_seconds': compile_s,
      'ratios': {'numpy/jax_stream': numpy_s / stream_s, 'faiss/jax_stream': ratio(faiss_s, stream_s),
                 'numpy/jax_resident': numpy_s / resident_s, 'faiss/jax_resident': ratio(faiss_s, resident_s)},
      'agreement': {'jax_stream_vs_numpy': agree(js, ji, ns, ni), 'jax_stream_vs_faiss': agree(js, ji, fs, fi),
                    'jax_resident_vs_stream': agree(rs, ri, js, ji), 'numpy_vs_faiss': agree(ns, ni, fs, fi)},
  }))


if __name__ == '__main__':
  main()
