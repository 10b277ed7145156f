"""siampose-jax: SimSiam on video frame pairs (Self-Supervised Learning of Pose-Informed Latents), in JAX.

`load_encoder(workdir_or_checkpoint_dir)` loads a trained encoder (see siampose_jax/encoder.py); it is
imported on first use, so `import siampose_jax.<module>` stays as light as that module.
"""
from __future__ import annotations


def load_encoder(path, step: int | None = None):
  """A trained encoder: `.embed(uint8 images) -> [N, D]`, `.model`, `.variables`, `.preprocess`."""
  from siampose_jax import encoder  # pylint: disable=g-import-not-at-top
  return encoder.load_encoder(path, step)


__all__ = ['load_encoder']
