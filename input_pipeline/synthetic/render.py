"""A small numpy + OpenCV rasteriser for the synthetic dataset (no GL).

Painter's algorithm over the convex textured faces of several upright objects on the ground (the
annotated one and unannotated distractors): whole objects are drawn far to near (an exact order,
see `render`); within an object, faces are back-face culled and sorted far to near, each clipped
at the near plane, textured by `cv2.warpPerspective` of its tile through the face's exact plane
homography (so a texel lands where the camera model puts it), Lambert-shaded, scaled by the
exposure and pasted through a sub-pixel polygon mask. The ground plane y=0 is one homography warp
of a wrapped tile, lit like an upward face and faded towards the horizon into the backdrop: a
panorama looked up by each pixel's world azimuth and elevation (walls and furniture that change
with the viewing direction), or a plain gradient. Pixels use the projection of
`input_pipeline.formats.geometry` exactly: OpenCV pixel (col, row) = (u * 480 - 0.5, v * 640 - 0.5) for
`point_2d` = (u, v, depth).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from input_pipeline.formats import geometry
from input_pipeline.synthetic.objects import TILE, ObjectModel

NEAR = 0.02  # metres; geometry closer to the camera than this is clipped away
BACKDROP_ELEVATION = (-0.35, 1.3)  # radians: world elevation of Environment.backdrop's bottom and top
_SHIFT = 4   # sub-pixel bits for polygon masks
_SHADOW = np.clip(1.0 - np.hypot(*np.mgrid[-1:1:TILE * 1j, -1:1:TILE * 1j]), 0,
                  1).astype(np.float32)


@dataclasses.dataclass
class Environment:
  """One frame's look: background, ground tile, light; colours BGR in [0, 255]."""
  sky_top: np.ndarray
  sky_horizon: np.ndarray
  ground: np.ndarray        # [n, n, 3] uint8 tile, wraps; albedo (lit here like an upward face)
  ground_texel: float       # metres per ground texel
  ground_offset: np.ndarray  # [2] world (x, z) of texel (0, 0)
  light: np.ndarray         # [3] world unit vector towards the light
  ambient: float
  diffuse: float
  fog: float                # metres: the ground fades into the backdrop beyond ~this depth
  shadow: float             # contact shadow strength in [0, 1)
  exposure: float = 1.0     # global camera gain on every pixel but shadows
  # [h, w, 3] uint8 panorama: column = world azimuth atan2(x, z) in [0, 2 pi), row = elevation from
  # BACKDROP_ELEVATION's top down to its bottom; None = a gradient from sky_horizon to sky_top.
  backdrop: np.ndarray | None = None


@dataclasses.dataclass
class Placed:
  """An object standing upright on the ground, at pose `model_to_camera` (4x4) in the camera frame.

  `textures` overrides the model's tiles (e.g. pre-tinted per video).
  """
  model: ObjectModel
  model_to_camera: np.ndarray
  textures: list[np.ndarray] | None = None

  def footprint_power(self) -> float:
    """Power of the camera (the origin) w.r.t. the circle bounding the box's ground footprint.

    The power is |horizontal offset|^2 - r^2, measured across the object's vertical (model y) axis.
    """
    rot, trans = self.model_to_camera[:3, :3], self.model_to_camera[:3, 3]
    up = rot[:, 1]
    horizontal = trans - (trans @ up) * up
    return float(horizontal @ horizontal - footprint_radius(self.model.scale) ** 2)


def footprint_radius(scale) -> float:
  """Radius of the vertical cylinder around a box of `scale` (x, y, z) standing upright."""
  return float(np.hypot(scale[0], scale[2]) / 2)


def pixel_matrix(projection, width=geometry.IMAGE_WIDTH, height=geometry.IMAGE_HEIGHT):
  """3x4 matrix taking camera points to homogeneous OpenCV portrait pixels, as project_points does.

  project_points gives u = (1 + h1 / h3) / 2 and v = (1 + h0 / h3) / 2 with h = P [p, 1], so
  u * width - 0.5 = (width / 2 (h3 + h1) - h3 / 2) / h3, likewise for v.
  """
  p = np.asarray(projection, np.float64)
  if p.shape != (4, 4) or np.any(p[[0, 1, 3], 3] != 0):
    raise ValueError('expected a perspective projection as made by '
                     f'geometry.projection_from_intrinsics, got {p}')
  return np.stack([width / 2 * (p[3] + p[1]) - 0.5 * p[3],
                   height / 2 * (p[3] + p[0]) - 0.5 * p[3], p[3]])


def _clip_near(poly):
  """Sutherland-Hodgman clip of a camera-frame polygon [k, 3] to z <= -NEAR."""
  out = []
  inside = poly[:, 2] <= -NEAR
  for k in range(len(poly)):
    a, b = poly[k], poly[(k + 1) % len(poly)]
    ia, ib = inside[k], inside[(k + 1) % len(poly)]
    if ia:
      out.append(a)
    if ia != ib:
      t = (-NEAR - a[2]) / (b[2] - a[2])
      out.append(a + t * (b - a))
  return np.array(out)


def _paste(image, texture, homography, poly_px, shade=None, multiply=None):
  """Warps `texture` through `homography` (texel -> pixel) inside the pixel polygon onto `image`.

  With `multiply` the warped single-channel tile darkens the image instead (contact shadow).
  """
  h, w = image.shape[:2]
  x0, y0 = np.floor(poly_px.min(axis=0)).astype(int) - 1
  x1, y1 = np.ceil(poly_px.max(axis=0)).astype(int) + 2
  x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
  if x1 <= x0 or y1 <= y0:
    return
  shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
  size = (int(x1 - x0), int(y1 - y0))
  mask = np.zeros((size[1], size[0]), np.uint8)
  pts = np.round((poly_px - (x0, y0)) * (1 << _SHIFT)).astype(np.int32)
  cv2.fillConvexPoly(mask, pts, 255, cv2.LINE_8, _SHIFT)
  roi = image[y0:y1, x0:x1]
  if multiply is not None:
    alpha = cv2.warpPerspective(texture, shift @ homography, size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    dark = 1.0 - multiply * alpha * (mask > 0)
    roi[...] = (roi * dark[..., None]).astype(np.uint8)
    return
  patch = cv2.warpPerspective(texture, shift @ homography, size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_WRAP)
  if shade is not None:
    patch = cv2.convertScaleAbs(patch, alpha=float(shade))
  np.copyto(roi, patch, where=(mask > 0)[..., None])


def _panorama(backdrop, rays, size, reduce=2):
  """Looks every pixel's world ray up in the backdrop panorama (wrapping in azimuth).

  The panorama is smooth at the image's scale (one texel spans several pixels), so the lookup runs on a
  grid `reduce` times coarser and is resized up: the arctangents dominate a frame's cost otherwise.
  """
  w, h = size
  small = (-(-w // reduce), -(-h // reduce))
  # Pixel centres of the coarse grid in full-resolution pixel coordinates.
  cols, rows = np.meshgrid((np.arange(small[0], dtype=np.float32) + 0.5) * reduce - 0.5,
                           (np.arange(small[1], dtype=np.float32) + 0.5) * reduce - 0.5)
  rays = np.asarray(rays, np.float32)
  d = [rays[i, 0] * cols + rays[i, 1] * rows + rays[i, 2] for i in range(3)]
  azimuth = np.arctan2(d[0], d[2]) % np.float32(2 * np.pi)
  elevation = np.arctan2(d[1], np.hypot(d[0], d[2]))
  ph, pw = backdrop.shape[:2]
  lo, hi = BACKDROP_ELEVATION
  map_x = azimuth * np.float32(pw / (2 * np.pi)) - 0.5
  map_y = np.clip((hi - elevation) * np.float32(ph / (hi - lo)) - 0.5, 0, ph - 1)
  coarse = cv2.remap(backdrop, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
  return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


def _background(env, view, camera_to_world, pm, size):
  """Ground plane (faded by distance) over the backdrop; returns uint8 [h, w, 3]."""
  w, h = size
  k_inv = np.linalg.inv(pm[:, :3])  # pixel [c, r, 1] -> camera ray with z = -1
  eye_y = camera_to_world[1, 3]
  # g = -(world y of the ray) is affine in the pixel: > 0 below the horizon, ground depth eye_y / g.
  a = -(camera_to_world[1, :3] @ k_inv)
  g = (a[0] * np.arange(w, dtype=np.float32))[None, :] + (
      a[1] * np.arange(h, dtype=np.float32) + a[2])[:, None]
  if env.backdrop is not None:
    sky = cv2.convertScaleAbs(_panorama(env.backdrop, camera_to_world[:3, :3] @ k_inv, size),
                              alpha=env.exposure)
  else:
    sky_t = np.clip(-g * 1.5, 0, 1)
    lut = np.clip(np.linspace(env.sky_horizon, env.sky_top, 256)[None] * env.exposure, 0,
                  255).astype(np.uint8)  # [1, 256, 3]
    idx = (sky_t * 255).astype(np.uint8)
    sky = cv2.LUT(cv2.merge([idx, idx, idx]), lut)
  fade = np.clip(g * (env.fog / max(eye_y, 1e-6)), 0, 1).astype(np.float32)
  if not fade.any():
    return sky
  t = env.ground_texel
  plane = np.array([[t, 0, env.ground_offset[0]], [0, 0, 0], [0, t, env.ground_offset[1]],
                    [0, 0, 1]])
  hom = pm @ view @ plane
  gain = env.exposure * (env.ambient + env.diffuse * max(0.0, float(env.light[1])))
  ground = cv2.warpPerspective(cv2.convertScaleAbs(env.ground, alpha=gain), hom, (w, h),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
  return cv2.blendLinear(ground, sky, fade, 1 - fade)


def render(env: Environment, view, projection, objects: Sequence[Placed] = ()) -> np.ndarray:
  """BGR uint8 [640, 480, 3] frame of the ground, background and `objects`.

  Objects must stand upright on one ground plane with disjoint footprint circles (see
  `footprint_radius`). The radical axis of two disjoint circles separates them, so the vertical
  plane through it puts each object wholly on one side, and the object on the camera's side (smaller
  power of the camera) can hide the other but never the reverse: drawing objects by decreasing
  power is an exact painter's order between objects, whatever their shapes inside their circles.
  """
  view = np.asarray(view, np.float64)
  pm = pixel_matrix(projection)
  size = (geometry.IMAGE_WIDTH, geometry.IMAGE_HEIGHT)
  image = _background(env, view, np.linalg.inv(view), pm, size)
  k3 = pm[:, :3]
  if env.shadow > 0:  # shadows lie on the ground, under every object
    for obj in objects:
      _shadow(image, obj, k3, env.shadow)
  light = view[:3, :3] @ env.light
  for obj in sorted(objects, key=lambda o: o.footprint_power(), reverse=True):
    _faces(image, obj, k3, light, env)
  return image


def _shadow(image, obj, k3, strength):
  """Contact shadow: a soft blob on the box's footprint (so it stays inside the box outline)."""
  rot, trans = obj.model_to_camera[:3, :3], obj.model_to_camera[:3, 3]
  sx, sy, sz = obj.model.scale
  corner = np.array([-sx / 2, -sy / 2, -sz / 2])
  foot = np.array([corner, corner + (sx, 0, 0), corner + (sx, 0, sz), corner + (0, 0, sz)])
  du, dv = np.array([sx / TILE, 0, 0]), np.array([0, 0, sz / TILE])
  _draw(image, foot @ rot.T + trans, np.stack([rot @ du, rot @ dv, rot @ corner + trans], 1),
        k3, _SHADOW, multiply=strength)


def _faces(image, obj, k3, light, env):
  """Draws one object's camera-facing faces far to near, Lambert-shaded and exposed."""
  model = obj.model
  textures = model.textures if obj.textures is None else obj.textures
  rot, trans = obj.model_to_camera[:3, :3], obj.model_to_camera[:3, 3]
  verts = [f.vertices @ rot.T + trans for f in model.faces]
  order = []
  for i, (f, v) in enumerate(zip(model.faces, verts)):
    n = rot @ f.normal
    if np.dot(n, v[0]) < 0:  # faces the camera (which sits at the origin)
      order.append((float(v[:, 2].mean()), i, n))
  order.sort()  # most negative z (farthest) first
  for _, i, n in order:
    f = model.faces[i]
    frame = np.stack([rot @ f.du, rot @ f.dv, rot @ f.origin + trans], axis=1)
    shade = env.exposure * (env.ambient + env.diffuse * max(0.0, float(n @ light)))
    _draw(image, verts[i], frame, k3, textures[f.texture], shade=shade)


def _draw(image, poly_cam, frame, k3, texture, shade=None, multiply=None):
  """Clips a camera-frame polygon at the near plane and pastes its texture (texel frame `frame`)."""
  poly = _clip_near(poly_cam)
  if len(poly) < 3:
    return
  px = poly @ k3.T
  px = px[:, :2] / px[:, 2:3]
  _paste(image, texture, k3 @ frame, px, shade=shade, multiply=multiply)
