"""A trained encoder, loaded from a workdir or a checkpoint directory, for use from your own Flax/JAX code.

    from siampose_jax import load_encoder
    enc = load_encoder('runs/distant_cpu')     # or runs/distant_cpu/checkpoints/1000
    embeddings = enc.embed(uint8_images)       # [N, H, W, 3] uint8 RGB, any H, W -> [N, D] unit vectors

`enc.model` and `enc.variables` are the SimSiam module and its variables, `enc.preprocess(images)` the
model's input, to apply it yourself: `enc.model.apply(enc.variables, enc.preprocess(images),
method=enc.model.embed)`. The workdir's `config.json` (written when training starts) rebuilds the exact
model, so the loading process needs no config file of its own.
"""
from __future__ import annotations

import dataclasses
import json

import ml_collections
import numpy as np
from etils import epath

from input_pipeline.formats import paths
from input_pipeline.store import crops
from siampose_jax import checkpointing, embedding, sharding
from siampose_jax import step as step_lib
from siampose_jax.models import simsiam

CONFIG_FILE = 'config.json'


def save_config(config: ml_collections.ConfigDict, workdir) -> epath.Path:
  path = paths.resolve(workdir) / CONFIG_FILE
  path.write_text(config.to_json_best_effort(indent=1, sort_keys=True))
  return path


def load_config(workdir) -> ml_collections.ConfigDict:
  path = paths.resolve(workdir) / CONFIG_FILE
  if not path.exists():
    raise FileNotFoundError(f'{path} not found: is {workdir} a siampose_jax training workdir?')
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def _workdir_and_step(path) -> tuple[epath.Path, int | None]:
  """A workdir, its checkpoints/ or one checkpoints/<step>/ -> (workdir, step or None for the latest)."""
  path = paths.resolve(path)
  if path.name.isdigit() and path.parent.name == 'checkpoints':
    return path.parent.parent, int(path.name)
  if path.name == 'checkpoints' and not (path / CONFIG_FILE).exists():
    return path.parent, None
  return path, None


def resize_images(images, size: int) -> np.ndarray:
  """uint8 RGB images of any size -> [N, size, size, 3]: longest side resized to `size`, zero-padded to a
  square, as the evaluation's object crops are (input_pipeline.store.crops)."""
  out = []
  for i, image in enumerate(images):
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
      raise ValueError(f'image {i}: expected uint8 RGB [H, W, 3], got {image.dtype} {image.shape}')
    out.append(crops.crop_and_resize(image, (0, 0, image.shape[1], image.shape[0]), size))
  return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)


@dataclasses.dataclass
class Encoder:
  model: simsiam.SimSiam
  variables: dict
  config: ml_collections.ConfigDict
  step: int
  mesh: object

  def __post_init__(self):
    self._embed_fn = embedding.make_embed_fn(self.model, self.mesh)  # compiled once per image size
    self.image_size = int(self.config.data.image_size)

  def preprocess(self, images):
    """uint8 RGB [N, H, W, 3] (or a list of differently sized images) -> the model's input
    [N, S, S, 3] (S = the training image size, standardised floats in the model's dtype)."""
    return simsiam.preprocess(resize_images(images, self.image_size), self.model.dtype)

  def embed(self, images, batch_size: int = 256) -> np.ndarray:
    """uint8 RGB [N, H, W, 3] (or a list of differently sized images) -> [N, D] float32, L2-normalised:
    the backbone's pooled feature, as the evaluation embeds its crops."""
    return embedding.embed_images(self._embed_fn, self.variables, resize_images(images, self.image_size),
                                  self.mesh, batch_size)

  __call__ = embed


def load_encoder(path, step: int | None = None) -> Encoder:
  """The model of a training workdir's latest checkpoint (or `step`), or of one checkpoint directory."""
  workdir, dir_step = _workdir_and_step(path)
  step = dir_step if step is None else step
  config = load_config(workdir)
  mesh = sharding.make_mesh()  # every visible device, whatever the training run had
  model = step_lib.make_model(config)
  state = step_lib.template_state(config, model, mesh)
  target = checkpointing.checkpoint_dir(workdir) / str(step) if step is not None else workdir
  state, step = checkpointing.restore_params(target, state)
  return Encoder(model, {'params': state.params, 'batch_stats': state.batch_stats}, config, step, mesh)
