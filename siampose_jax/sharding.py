"""Device mesh and data placement: one `data` axis, batch sharded along it, parameters replicated.

The same code runs on 1 CPU, 8 faked CPU devices, a GPU and a multi-host TPU slice: each process feeds its
own slice of the global batch and `make_array_from_process_local_data` assembles the global array.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'


def make_mesh(num_devices: int | None = None) -> Mesh:
  devices = jax.devices()
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(f'mesh asks for {num_devices} devices but only {len(devices)} are visible')
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh, name: str = 'batch_size') -> None:
  n = mesh.devices.size
  if global_batch % n:
    raise ValueError(f'config.{name}={global_batch} is not divisible by the {n} devices of the mesh')
  if global_batch % jax.process_count():
    raise ValueError(f'config.{name}={global_batch} is not divisible by the {jax.process_count()} processes')


def shard_batch(batch: dict, mesh: Mesh) -> dict:
  """Process-local numpy batch -> global jax arrays sharded over the data axis."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))
