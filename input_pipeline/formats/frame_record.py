"""The one in-memory form of an annotated Objectron frame, whatever format it was read from."""
from __future__ import annotations

import dataclasses

import numpy as np

CATEGORIES = ('bike', 'book', 'bottle', 'camera', 'cereal_box', 'chair', 'cup', 'laptop', 'shoe')


@dataclasses.dataclass
class FrameRecord:
  """One video frame with its annotations; arrays follow input_pipeline.formats.geometry's conventions.

  Per-instance arrays have a leading instance axis I (Objectron frames can hold several objects).
  All 3D quantities are in the camera frame of this frame, except `extrinsics` (camera-to-world) and
  `view` (world-to-camera).
  """
  video_id: str            # 'cup/batch-16/47' (Objectron's sequence id: class/batch-i/j)
  frame_id: int            # frame number in the raw video
  timestamp_us: int
  category: str
  image: bytes             # encoded JPEG or PNG, portrait
  image_width: int
  image_height: int
  point_2d: np.ndarray     # [I, 9, 3] (u, v normalised, depth)
  point_3d: np.ndarray     # [I, 9, 3] metres, camera frame
  rotation: np.ndarray     # [I, 3, 3]  (`object/orientation`, row-major)
  translation: np.ndarray  # [I, 3]
  scale: np.ndarray        # [I, 3]
  visibility: np.ndarray   # [I]
  intrinsics: np.ndarray   # [3, 3] landscape
  projection: np.ndarray   # [4, 4]
  view: np.ndarray         # [4, 4]
  extrinsics: np.ndarray   # [4, 4]
  plane_center: np.ndarray  # [3]
  plane_normal: np.ndarray  # [3]
  object_names: tuple[str, ...] = ()
  instance_ids: tuple[int, ...] = ()  # stable per-video instance ids (defaults to 0..I-1)

  @property
  def instance_num(self) -> int:
    return int(self.point_3d.shape[0])

  def equal_annotations(self, other: 'FrameRecord', atol: float = 1e-5) -> bool:
    """True if every field except the encoded image matches (floats within atol)."""
    for f in dataclasses.fields(self):
      a, b = getattr(self, f.name), getattr(other, f.name)
      if f.name == 'image':
        continue
      if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape or not np.allclose(a, b, atol=atol):
          return False
      elif tuple(a) != tuple(b) if isinstance(a, (tuple, list)) else a != b:
        return False
    return True
