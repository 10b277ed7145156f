"""Embeddings for evaluation: the backbone's pooled feature of un-augmented crops, L2-normalised.

Images stream from the host in fixed-size, device-sharded batches (the last one padded), so the embedding
function compiles once whatever the number of images.
"""
from __future__ import annotations

import concurrent.futures

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from jax.sharding import Mesh

from siampose_jax import sharding
from siampose_jax.models import simsiam
from siampose_jax.normalize import l2_normalize


def make_embed_fn(model: simsiam.SimSiam, mesh: Mesh):
  def embed(variables, images):
    x = simsiam.preprocess(images, model.dtype)
    f = model.apply(variables, x, method=simsiam.SimSiam.embed).astype(jnp.float32)
    return l2_normalize(f)

  return jax.jit(embed, in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
                 out_shardings=sharding.replicated(mesh))


def embed_images(embed_fn, variables, images, mesh: Mesh, batch_size: int = 256,
                 desc: str | None = None) -> np.ndarray:
  """[N, H, W, 3] uint8 -> [N, D] float32 unit vectors.

  `images` is an array or anything that slices like one (`frame_store.CropSource` decodes crops when
  sliced): it is read one batch at a time, the next batch being read in a thread while the device embeds
  the current one, so at most two batches of pixels are in host memory. Every process passes the same
  images; each feeds its own slice of every batch to its local devices.
  """
  n_dev = mesh.devices.size
  batch_size = max(n_dev, batch_size // n_dev * n_dev)
  per_process = batch_size // jax.process_count()
  lo = jax.process_index() * per_process
  out = []
  starts = list(range(0, len(images), batch_size))
  read = lambda start: np.asarray(images[start:start + batch_size])
  with concurrent.futures.ThreadPoolExecutor(1) as reader:
    pending = reader.submit(read, starts[0]) if starts else None
    for i in tqdm.trange(len(starts), desc=desc, disable=desc is None or jax.process_index() > 0, leave=False):
      chunk = pending.result()
      if i + 1 < len(starts):
        pending = reader.submit(read, starts[i + 1])
      pad = batch_size - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
      x = jax.make_array_from_process_local_data(
          sharding.batch_sharding(mesh), chunk[lo:lo + per_process], chunk.shape)
      out.append(np.asarray(embed_fn(variables, x))[:batch_size - pad])
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
