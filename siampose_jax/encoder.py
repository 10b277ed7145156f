"""Load a trained encoder from a workdir, for use from your own Flax/JAX code.

    from siampose_jax import encoder
    enc = encoder.load_encoder('runs/distant_cpu')
    embeddings = enc(uint8_images)          # [N, H, W, 3] uint8 -> [N, D] unit vectors
    enc.model, enc.variables                # the SimSiam module and its variables, to apply yourself

The workdir's `config.json` (written at the start of training) rebuilds the exact model.
"""
from __future__ import annotations

import dataclasses
import json
import os

import ml_collections
import numpy as np

from siampose_jax import checkpointing, embedding, sharding
from siampose_jax import step as step_lib

CONFIG_FILE = 'config.json'


def save_config(config: ml_collections.ConfigDict, workdir: str) -> str:
  path = os.path.join(workdir, CONFIG_FILE)
  with open(path, 'w') as f:
    f.write(config.to_json_best_effort(indent=1, sort_keys=True))
  return path


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(os.path.expanduser(workdir), CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: is {workdir} a siampose_jax training workdir?')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


@dataclasses.dataclass
class Encoder:
  model: object
  variables: dict
  config: ml_collections.ConfigDict
  step: int
  mesh: object

  def __post_init__(self):
    self._embed_fn = embedding.make_embed_fn(self.model, self.mesh)  # compiled once per image shape

  def __call__(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return embedding.embed_images(self._embed_fn, self.variables, np.asarray(images, np.uint8), self.mesh,
                                  batch_size)


def load_encoder(workdir: str, step: int | None = None) -> Encoder:
  """The backbone (+ heads) of the latest (or given) checkpoint of a training workdir."""
  config = load_config(workdir)
  mesh = sharding.make_mesh(config.num_devices or None)
  model = step_lib.make_model(config)
  state = step_lib.template_state(config, model, mesh)
  path = os.path.join(workdir, 'checkpoints', str(step)) if step is not None else workdir
  state, step = checkpointing.restore_params(path, state)
  return Encoder(model, {'params': state.params, 'batch_stats': state.batch_stats}, config, step, mesh)
