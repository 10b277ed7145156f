"""The augmentation settings: the reference's defaults and their validation, apart from the OpenCV code in
augment.py, so that a config can name them without importing an image library."""
from __future__ import annotations

from typing import Any

# The reference's augmentation settings (docs/metrics.md, "The reference's training").
DEFAULT_AUG: dict[str, Any] = {
    'crop_scale': (0.2, 1.0), 'crop_ratio': (3 / 4, 4 / 3),
    'brightness': 0.2, 'contrast': 0.2, 'saturation': 0.2, 'hue': 0.05, 'jitter_p': 0.8,
    'grayscale_p': 0.2, 'flip_p': 0.5,
}
# Identity augmentation (the full crop, no colour change, no flip): for evaluation and tests.
NO_AUG: dict[str, Any] = dict(DEFAULT_AUG, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
                              jitter_p=0.0, grayscale_p=0.0, flip_p=0.0)


def aug_config(aug: dict[str, Any] | None) -> dict[str, Any]:
  """DEFAULT_AUG updated with `aug`; unknown keys are an error (no silently ignored settings)."""
  aug = dict(aug or {})
  unknown = set(aug) - set(DEFAULT_AUG)
  if unknown:
    raise ValueError(f'unknown augmentation keys {sorted(unknown)}; known: {sorted(DEFAULT_AUG)}')
  return dict(DEFAULT_AUG, **aug)
