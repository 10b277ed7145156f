"""Per-video synthetic scenes: the room around the object, unannotated distractors, drifting light.

Every video stands its object in a room: a floor tile under a few rugs, and a backdrop panorama of
walls and furniture. Both change with the viewing direction, as a real capture's background does, so
that distant frames of a video share much less background than nearby ones; a uniform, tiled
background would be an invariant that pair-based self-supervision could match instead of the object.

Some videos get one or two distractor objects (input_pipeline.synthetic.objects.make_distractor)
standing on the ground near the annotated object, placed where the camera path passes behind them
so that they hide part of the object in some frames; they are never labelled. Some videos get a
lighting drift: the light sweeps round and, together with the ambient level and the camera exposure,
brightens or darkens slowly along the video, so that distant frames differ in appearance.

Both choices and their contents come from their own rng streams (see input_pipeline.synthetic), so
they do not change the instance, camera path or environment of a video.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from input_pipeline.formats import geometry
from input_pipeline.synthetic import objects as synthetic_objects
from input_pipeline.synthetic import render as synthetic_render

OCCLUDER_PROBABILITY = 0.33  # ~10% find no place (see place_occluders): ~30% get some
LIGHT_DRIFT_PROBABILITY = 0.3
_MIN_OVERLAP = 0.2    # of the object's 2D box hidden by an occluder's 2D box in some frame
_CLEARANCE = 0.3      # occluder-to-camera distance, relative to the object-to-camera distance
_ATTEMPTS = 30
_GROUND_TILE = 256    # texels of the floor tile
_FLOOR_TILES = 4      # the ground map (floor and rugs) is this many floor tiles across, then wraps
_BACKDROP_HW = (128, 512)
_KINDS = ('stripes', 'checks', 'noise', 'noise', 'blobs', 'rings', 'plain')


@dataclasses.dataclass
class Occluder:
  model: synthetic_objects.ObjectModel  # textures already under the video's light colour
  object_to_world: np.ndarray           # [4, 4]; standing on y = 0, yawed
  shape: str
  occluded_frame: int                   # the frame where its 2D box covers most of the object's


def environment(rng, room_rng, size, radius) -> tuple[synthetic_render.Environment, np.ndarray]:
  """(environment, light tint) of one video; `room_rng` draws the rugs and the backdrop only."""
  tint = 1.0 + rng.normal(0, 0.06, 3)
  elev, azim = rng.uniform(0.5, 1.4), rng.uniform(0, 2 * np.pi)
  light = np.array([np.cos(elev) * np.sin(azim), np.sin(elev), np.cos(elev) * np.cos(azim)])
  ambient, diffuse = rng.uniform(0.35, 0.55), rng.uniform(0.45, 0.7)
  kind = str(rng.choice(['stripes', 'checks', 'noise', 'noise', 'blobs']))
  floor = synthetic_objects.texture_tile(rng, kind, *_muted_colours(rng), grain=4, size=_GROUND_TILE)
  horizon = np.clip(synthetic_objects.palette_colour(rng, 30) * 0.4 + 150, 0, 255)
  top = np.clip(horizon + rng.normal(0, 40, 3), 0, 255)
  diag = max(float(np.linalg.norm(size)), 0.4)
  texel = rng.uniform(0.4, 1.2) * diag / _GROUND_TILE
  ground = _rugs(room_rng, floor, texel, diag)
  backdrop = _backdrop(room_rng, horizon, top)
  env = synthetic_render.Environment(
      sky_top=top, sky_horizon=horizon, ground=np.clip(ground * tint, 0, 255).astype(np.uint8),
      ground_texel=texel, ground_offset=rng.uniform(-5, 5, 2), light=light, ambient=ambient,
      diffuse=diffuse, fog=rng.uniform(1.5, 4.0) * radius, shadow=rng.uniform(0.3, 0.6),
      backdrop=np.clip(backdrop * tint, 0, 255).astype(np.uint8))
  return env, tint


def _muted_colours(rng):
  """Two colours for a background pattern: a mid grey with a little of a palette colour, and a
  near neighbour. Floors and walls keep structure and some colour but vary much less from video
  to video than the objects do (as in captures of salient objects in ordinary rooms), so that
  the background does not outweigh the object in a crop's embedding."""
  c1 = 0.2 * synthetic_objects.palette_colour(rng, 40) + 0.8 * rng.uniform(105, 150)
  return c1, np.clip(c1 + rng.normal(0, 8, 3), 0, 255)


def _patch(rng, width, height):
  """A float [height, width, 3] patch of a random pattern in muted colours (like the floor)."""
  tile = synthetic_objects.texture_tile(rng, str(rng.choice(_KINDS)), *_muted_colours(rng),
                                        grain=4, size=128)
  return cv2.resize(tile, (int(width), int(height)), interpolation=cv2.INTER_AREA).astype(np.float32)


def _rugs(rng, floor, texel, diag):
  """The floor tile repeated into a wrapping ground map with 2-5 rugs of 0.3-1 object diagonals."""
  ground = np.tile(floor, (_FLOOR_TILES, _FLOOR_TILES, 1)).astype(np.float32)
  n = ground.shape[0]
  for _ in range(int(rng.integers(2, 6))):
    w, h = np.clip(rng.uniform(0.3, 1.0, 2) * diag / texel, 8, n // 2).astype(int)
    x, y = int(rng.integers(0, n - w)), int(rng.integers(0, n - h))
    ground[y:y + h, x:x + w] = _patch(rng, w, h)
  return ground


def _backdrop(rng, horizon, top):
  """A panorama (see synthetic_render.Environment.backdrop): a sky gradient behind 4-8 wall or
  furniture segments of random heights and patterns, some with a framed picture or window."""
  h, w = _BACKDROP_HW
  lo, hi = synthetic_render.BACKDROP_ELEVATION
  t = np.clip(np.linspace(hi, lo, h) / hi, 0, 1)[:, None, None]
  pano = np.broadcast_to(horizon * (1 - t) + top * t, (h, w, 3)).copy()
  edges = np.unique(np.concatenate([[0, w], rng.integers(8, w - 8, int(rng.integers(3, 8)))]))
  for x0, x1 in zip(edges[:-1], edges[1:]):
    if rng.random() < 0.15:  # an opening: sky down to the horizon
      continue
    y0 = int((hi - rng.uniform(0.1, 0.9)) / (hi - lo) * h)
    pano[y0:, x0:x1] = _patch(rng, x1 - x0, h - y0)
    if rng.random() < 0.5 and x1 - x0 > 16 and h - y0 > 24:
      fw, fh = int(rng.integers(6, (x1 - x0) // 2)), int(rng.integers(6, (h - y0) // 2))
      fx, fy = int(rng.integers(x0 + 2, x1 - fw - 1)), int(rng.integers(y0 + 2, h - fh - 1))
      pano[fy:fy + fh, fx:fx + fw] = _patch(rng, fw, fh)
  return np.roll(pano, int(rng.integers(w)), axis=1)


def lighting_path(rng, env: synthetic_render.Environment, num_frames: int,
                  drift: bool) -> np.ndarray:
  """[num_frames, 6] light direction (3), ambient, diffuse, exposure per frame.

  Static: `env`'s values in every frame. Drift: over the video the light azimuth sweeps by 1-2.5
  rad while elevation, ambient, diffuse and exposure all ramp the same way (brighter or darker),
  centred on `env`'s values, so first and last frames differ by a factor ~1.5-2.5 in brightness.
  """
  tau = np.linspace(0.0, 1.0, num_frames)
  elev0 = np.arcsin(np.clip(env.light[1], -1, 1))
  azim0 = np.arctan2(env.light[0], env.light[2])
  if not drift:
    elev, azim = np.full(num_frames, elev0), np.full(num_frames, azim0)
    ambient, diffuse = np.full(num_frames, env.ambient), np.full(num_frames, env.diffuse)
    exposure = np.full(num_frames, env.exposure)
  else:
    ramp = rng.choice([-1.0, 1.0]) * (tau - 0.5)
    azim = azim0 + rng.uniform(1.0, 2.5) * rng.choice([-1.0, 1.0]) * (tau - 0.5)
    elev = np.clip(elev0 + rng.uniform(0.2, 0.5) * ramp, 0.2, 1.45)
    ambient = env.ambient * (1 + rng.uniform(0.2, 0.4) * ramp)
    diffuse = env.diffuse * (1 + rng.uniform(0.2, 0.4) * ramp)
    exposure = env.exposure * np.exp(rng.uniform(0.3, 0.5) * ramp)
  light = np.stack([np.cos(elev) * np.sin(azim), np.sin(elev), np.cos(elev) * np.cos(azim)], -1)
  return np.concatenate([light, np.stack([ambient, diffuse, exposure], -1)], axis=-1)


def frame_environment(env: synthetic_render.Environment,
                      lighting_row) -> synthetic_render.Environment:
  """`env` under one row of `lighting_path`."""
  return dataclasses.replace(env, light=np.asarray(lighting_row[:3]),
                             ambient=float(lighting_row[3]), diffuse=float(lighting_row[4]),
                             exposure=float(lighting_row[5]))


def _yawed(yaw, position, height):
  out = np.eye(4)
  out[:3, :3] = [[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]
  out[:3, 3] = (position[0], height / 2, position[1])
  return out


def _box_2d(pose, scale, world_to_cams, projection):
  """Per frame, the clipped normalised 2D bounding box [n, 4] of a box, NaN where it is behind."""
  corners = np.concatenate([geometry.UNIT_BOX * scale, np.ones((9, 1))], axis=1) @ pose.T
  cam = np.einsum('fij,kj->fki', world_to_cams, corners)[..., :3]  # [n, 9, 3]
  pts = geometry.project_points(cam.reshape(-1, 3), projection).reshape(cam.shape)[..., :2]
  box = np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=-1).clip(0, 1)
  box[(cam[..., 2] >= -synthetic_render.NEAR).any(axis=1)] = np.nan
  return box


def place_occluders(rng, model: synthetic_objects.ObjectModel, object_to_world: np.ndarray,
                    camera_to_world: np.ndarray, projection: np.ndarray,
                    tint: np.ndarray) -> list[Occluder]:
  """One or two distractors that hide part of the object in some frame, clear of the camera.

  Each stands near the object, roughly where the camera looks from in a random frame, with a
  footprint circle disjoint from the object's and the others' (as synthetic_render.render needs
  for an exact depth order). A candidate is kept only if it stays at least _CLEARANCE times the
  object's distance away from the camera in every frame, and in some frame lies nearer the camera
  than the object with its 2D box covering >= _MIN_OVERLAP of the object's; one that finds no such
  place in _ATTEMPTS tries is left out.
  """
  world_to_cams = np.linalg.inv(camera_to_world)
  cams = camera_to_world[:, :3, 3]
  centre = object_to_world[[0, 2], 3]
  obj_r, obj_h = synthetic_render.footprint_radius(model.scale), model.scale[1]
  obj_box = _box_2d(object_to_world, model.scale, world_to_cams, projection)
  obj_area = (obj_box[:, 2] - obj_box[:, 0]) * (obj_box[:, 3] - obj_box[:, 1])
  obj_dist = np.linalg.norm(cams - object_to_world[:3, 3], axis=1)
  circles = [(centre, obj_r)]
  # Aim at frames where the camera is far out, where there is room between it and the object.
  reach = np.linalg.norm(cams[:, [0, 2]] - centre, axis=1)
  far = np.flatnonzero(reach >= np.quantile(reach, 0.5))
  out = []
  for _ in range(int(rng.integers(1, 3))):
    shape = str(rng.choice(synthetic_objects.DISTRACTOR_SHAPES))
    height = max(obj_h, obj_r) * rng.uniform(0.8, 1.5)  # flat objects hide behind taller ones
    occ = synthetic_objects.make_distractor(rng, shape, obj_r * rng.uniform(0.3, 0.6), height)
    occ.textures = [np.clip(t * tint, 0, 255).astype(np.uint8) for t in occ.textures]
    r = synthetic_render.footprint_radius(occ.scale)
    for _ in range(_ATTEMPTS):
      look = cams[rng.choice(far), [0, 2]] - centre
      azim = np.arctan2(look[0], look[1]) + rng.uniform(-0.4, 0.4)
      pos = centre + (obj_r + r + obj_r * rng.uniform(0.05, 0.5)) * np.array(
          [np.sin(azim), np.cos(azim)])
      if any(np.linalg.norm(pos - c) < (cr + r) * 1.05 for c, cr in circles):
        continue
      horizontal = np.maximum(np.linalg.norm(cams[:, [0, 2]] - pos, axis=1) - r, 0)
      vertical = np.maximum(cams[:, 1] - occ.scale[1], 0)
      if (np.hypot(horizontal, vertical) < _CLEARANCE * obj_dist).any():
        continue
      pose = _yawed(rng.uniform(0, 2 * np.pi), pos, occ.scale[1])
      box = _box_2d(pose, occ.scale, world_to_cams, projection)
      inter = (np.clip(np.minimum(box[:, 2], obj_box[:, 2]) - np.maximum(box[:, 0], obj_box[:, 0]),
                       0, None) *
               np.clip(np.minimum(box[:, 3], obj_box[:, 3]) - np.maximum(box[:, 1], obj_box[:, 1]),
                       0, None))
      # In front of the object: the camera is on the occluder's side of the circles' radical axis.
      nearer = (np.sum((cams[:, [0, 2]] - pos) ** 2, axis=1) - r ** 2 <
                np.sum((cams[:, [0, 2]] - centre) ** 2, axis=1) - obj_r ** 2)
      cover = np.where(nearer & (obj_area > 0), inter / np.maximum(obj_area, 1e-12), 0)
      cover = np.nan_to_num(cover)
      if cover.max() >= _MIN_OVERLAP:
        out.append(Occluder(occ, pose, shape, int(cover.argmax())))
        circles.append((pos, r))
        break
  return out
