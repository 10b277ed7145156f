"""Procedural object instances of the 9 Objectron classes for the synthetic dataset.

An instance is a deterministic function of (category, instance index, seed): a few textured convex
primitives (extruded polygons, optionally tapered: cuboids, ~14-sided prisms, slabs, wedges) whose
proportions, colours and texture patterns come from an rng seeded by those three values only, so the
same instance looks the same in every video. Classes share primitive kinds; their colours
come from class-typical materials (`MATERIALS`, shared between classes), so that a class is recognisable
by shape and materials together, and each instance carries its own colours and pattern so that it can be
re-identified across views.

Geometry is in the object frame (metres, +y up, +z front), recentred on its tight axis-aligned box.
Colours are BGR uint8 (OpenCV order).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from input_pipeline.formats.frame_record import CATEGORIES

TILE = 64  # texture tile size in texels
# Shared palette (BGR): distractors, rooms and printed labels draw from it.
PALETTE = np.array([
    [40, 40, 200], [40, 140, 230], [60, 200, 230], [60, 170, 60], [150, 110, 30], [190, 90, 40],
    [140, 50, 120], [90, 60, 170], [230, 230, 230], [30, 30, 30], [130, 130, 130], [60, 90, 140],
    [170, 200, 220], [120, 160, 100], [200, 170, 150], [50, 50, 110],
], dtype=np.float64)
# Materials (BGR): the colours real objects of a class tend to have — black cameras, silver laptops, glass
# bottles, white pages, wooden chairs, ceramic cups, bright cereal packaging and bikes, leather shoes — so
# that a class is recognisable by its materials as well as its shape, as real classes are (the category is
# not what this benchmark measures: pose is). Instances differ within their class's materials, so that
# each can still be re-identified. Unannotated distractors are plain clutter.
MATERIALS = {
    'dark': [[28, 28, 30], [42, 42, 46], [58, 56, 54], [35, 40, 50]],
    'metal': [[175, 175, 180], [145, 145, 150], [205, 205, 208], [120, 125, 130]],
    'wood': [[40, 80, 130], [30, 60, 100], [60, 110, 160], [45, 95, 150], [25, 45, 75]],
    'paper': [[225, 235, 240], [205, 218, 228], [235, 240, 240]],
    'glass': [[45, 95, 45], [25, 60, 110], [150, 140, 115], [70, 130, 70], [30, 40, 80]],
    'vivid': [[0, 200, 255], [30, 30, 220], [0, 130, 255], [210, 110, 0], [40, 180, 40], [170, 40, 160],
              [0, 230, 230]],
    'ceramic': [[238, 238, 240], [205, 225, 240], [225, 200, 175], [180, 205, 230], [210, 180, 210],
                [45, 45, 45]],
    'fabric': [[85, 85, 135], [120, 100, 80], [70, 110, 90], [140, 140, 140], [60, 60, 115],
               [110, 80, 110]],
    'leather': [[30, 50, 90], [22, 32, 52], [60, 95, 140], [50, 70, 120], [40, 40, 95]],
    'clutter': [[120, 150, 175], [140, 140, 140], [110, 120, 125], [150, 165, 170]],
}


@dataclasses.dataclass
class Face:
  """A planar convex polygon with an affine texture map: texel (i, j) -> origin + i*du + j*dv."""
  vertices: np.ndarray  # [k, 3] object frame, counter-clockwise seen from outside
  normal: np.ndarray    # [3] outward unit normal
  origin: np.ndarray    # [3]
  du: np.ndarray        # [3] object-frame step per texel column
  dv: np.ndarray        # [3] object-frame step per texel row
  texture: int          # index into ObjectModel.textures


@dataclasses.dataclass
class ObjectModel:
  category: str
  instance: int
  faces: list[Face]
  textures: list[np.ndarray]  # [TILE, TILE, 3] uint8 BGR tiles
  scale: np.ndarray           # [3] size of the tight box (the box is centred on the origin)


def _rng(*key: int) -> np.random.Generator:
  return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


# ---------------------------------------------------------------- textures


def material(rng, *names, jitter=12.0):
  """A colour of one of the named materials (chosen at random among them), with a little jitter."""
  options = [c for n in names for c in MATERIALS[n]]
  c = np.asarray(options[rng.integers(len(options))], np.float64) + rng.normal(0, jitter, 3)
  return np.clip(c, 0, 255)


def palette_colour(rng, jitter=25.0):
  c = PALETTE[rng.integers(len(PALETTE))] + rng.normal(0, jitter, 3)
  return np.clip(c, 0, 255)


def _smooth_noise(rng, cells, size):
  small = rng.random((cells, cells)).astype(np.float32)
  return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _mix(a, b, t):
  t = np.clip(t, 0, 1)[..., None]
  return a * (1 - t) + b * t


def _pattern(rng, kind, c1, c2, size):
  """A [size, size, 3] float tile of one pattern family in colours c1, c2."""
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
  if kind == 'stripes':
    angle, period = rng.uniform(0, np.pi), 1 / rng.integers(2, 7)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    t = (np.mod(phase, 1.0) < rng.uniform(0.3, 0.7)).astype(np.float32)
  elif kind == 'checks':
    n = rng.integers(2, 6)
    t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float32)
  elif kind == 'noise':
    t = _smooth_noise(rng, int(rng.integers(3, 9)), size)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
  elif kind == 'blobs':
    t = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(2, 6)):
      centre = tuple(int(v) for v in rng.integers(0, size, 2))
      axes = tuple(int(v) for v in rng.integers(size // 16, size // 3, 2))
      cv2.ellipse(t, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
  elif kind == 'rings':
    r = np.hypot(xx - 0.5, yy - 0.5)
    t = (np.mod(r * rng.integers(3, 8), 1.0) < 0.5).astype(np.float32)
  elif kind == 'plain':
    t = np.zeros((size, size), np.float32)
  else:
    raise ValueError(f'unknown texture pattern {kind!r}')
  return _mix(c1, c2, t)


def texture_tile(rng, kind, c1=None, c2=None, grain=8.0, label=False, size=TILE):
  """Pattern tile with fine noise (so flat faces are not featureless), maybe a printed label."""
  c1 = palette_colour(rng) if c1 is None else c1
  c2 = palette_colour(rng) if c2 is None else c2
  tile = _pattern(rng, kind, c1, c2, size)
  if label:  # a band with a logo and 'text' strokes, as on printed packaging
    y0 = int(rng.integers(size // 5, size // 2))
    tile[y0:y0 + size // 4] = palette_colour(rng)
    ink = tuple(float(v) for v in palette_colour(rng))
    cv2.circle(tile, tuple(int(v) for v in rng.integers(size // 6, size - size // 6, 2)),
               int(rng.integers(size // 12, size // 5)), ink, -1)
    for k in range(3):
      x, y = int(rng.integers(2, size // 2)), y0 + (k + 1) * size // 16
      x1 = x + int(rng.integers(size // 6, size // 2))
      cv2.line(tile, (x, y), (x1, y), ink, max(1, size // 32))
  tile += rng.normal(0, grain, tile.shape)
  return np.clip(tile, 0, 255).astype(np.uint8)


def _wheel_texture(rng):
  """Tyre ring, rim and spokes for the bike wheels' sides."""
  tile = np.full((TILE, TILE, 3), 200.0) + rng.normal(0, 10, 3)
  c = (TILE // 2, TILE // 2)
  cv2.circle(tile, c, TILE // 2, (25, 25, 25), -1)
  cv2.circle(tile, c, int(TILE * 0.4), tuple(float(v) for v in tile[0, 0]), -1)
  for a in np.linspace(0, np.pi, 8, endpoint=False):
    d = np.array([np.cos(a), np.sin(a)]) * TILE * 0.4
    cv2.line(tile, tuple(int(v) for v in c + d), tuple(int(v) for v in c - d), (90, 90, 90), 1)
  cv2.circle(tile, c, 4, (60, 60, 60), -1)
  return np.clip(tile + rng.normal(0, 4, tile.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- primitives


def _rot_x(a):
  c, s = np.cos(a), np.sin(a)
  return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


# Frames mapping a primitive's extrusion axis (local z) to an object axis.
ALONG_Y = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])   # vertical prisms: profile in x-z
ALONG_X = np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])   # profile in (z, y), extruded along x
ALONG_Z = np.eye(3)                                        # profile in (x, y), extruded along z


def _ngon(n, rx, ry):
  a = np.linspace(0, 2 * np.pi, n, endpoint=False) + np.pi / n
  return np.stack([rx * np.cos(a), ry * np.sin(a)], axis=-1)


def _rect(w, h):
  return np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])


def _face(vertices, centre, origin, du, dv, texture):
  """A Face oriented outward (away from the primitive's centre)."""
  n = np.cross(vertices[1] - vertices[0], vertices[2] - vertices[0])
  n /= np.linalg.norm(n)
  if np.dot(n, vertices.mean(axis=0) - centre) < 0:
    vertices, n = vertices[::-1].copy(), -n
  return Face(vertices, n, origin, du, dv, texture)


def extrusion(profile, length, *, frame=ALONG_Z, centre=(0, 0, 0), taper=1.0, side=0, caps=None,
              wrap=True, repeat=1.0):
  """Faces of a convex 2D profile extruded by `length` along the frame's local z about `centre`.

  `taper` scales the profile at the +z end (frusta, necks). Side textures either wrap around the
  perimeter (`wrap`, one texture index) or cover each side whole (`side` a list, one per side).
  `repeat` > 1 tiles textures on big faces.
  """
  profile = np.asarray(profile, np.float64)
  frame, centre = np.asarray(frame, np.float64), np.asarray(centre, np.float64)
  n = len(profile)
  lo = np.concatenate([profile, np.full((n, 1), -length / 2)], axis=1)
  hi = np.concatenate([profile * taper, np.full((n, 1), length / 2)], axis=1)
  to_obj = lambda p: p @ frame.T + centre
  lo, hi = to_obj(lo), to_obj(hi)
  faces = []
  edges = np.linalg.norm(np.roll(profile, -1, axis=0) - profile, axis=1)
  perimeter, start = edges.sum(), np.concatenate([[0], np.cumsum(edges)[:-1]])
  for k in range(n):
    k1 = (k + 1) % n
    quad = np.stack([lo[k], lo[k1], hi[k1], hi[k]])
    along, up = lo[k1] - lo[k], (hi[k] - lo[k])
    if wrap:
      du = along / edges[k] * perimeter / repeat / TILE
      origin, tex = lo[k] - start[k] / perimeter * du * TILE * repeat, side
    else:
      du, origin, tex = along / repeat / TILE, lo[k], side[k]
    faces.append(_face(quad, centre, origin, du, up / repeat / TILE, tex))
  caps = side if caps is None else caps
  if caps is not None and not isinstance(caps, (list, tuple)):
    caps = (caps, caps)
  mn, mx = profile.min(axis=0), profile.max(axis=0)
  for verts, z, tex, s in ((lo, -length / 2, caps[0], 1.0), (hi, length / 2, caps[1], taper)):
    corner = to_obj(np.array([mn[0] * s, mn[1] * s, z]))
    du = (to_obj(np.array([mx[0] * s, mn[1] * s, z])) - corner) / repeat / TILE
    dv = (to_obj(np.array([mn[0] * s, mx[1] * s, z])) - corner) / repeat / TILE
    faces.append(_face(verts.copy(), centre, corner, du, dv, tex))
  return faces


def cuboid(size, centre, textures, frame=ALONG_Z, repeat=1.0):
  """Box of `size` (x, y, z) in `frame`; textures: one index or 6 (-y, +x, +y, -x sides; -z, +z)."""
  sx, sy, sz = size
  t = [textures] * 6 if isinstance(textures, int) else list(textures)
  return extrusion(_rect(sx, sy), sz, frame=frame, centre=centre, side=t[:4], caps=t[4:],
                   wrap=False, repeat=repeat)


def prism(radius, height, base_y, textures, *, sides=14, taper=1.0, squash=1.0, x=0.0, z=0.0,
          cap=None):
  """Vertical `sides`-gon prism (a cylinder stand-in) standing at height base_y."""
  return extrusion(_ngon(sides, radius, radius * squash), height, frame=ALONG_Y,
                   centre=(x, base_y + height / 2, z), taper=taper, side=textures,
                   caps=textures if cap is None else cap)


# ---------------------------------------------------------------- categories


def _bike(r, tex):
  wheel_r, base = r.uniform(0.28, 0.36), r.uniform(0.95, 1.15)
  tyre = r.uniform(0.03, 0.05)
  paint = material(r, 'vivid')
  wheel = tex(_wheel_texture(r))
  frame_tex = tex(texture_tile(r, str(r.choice(['plain', 'stripes'])), paint,
                               material(r, 'vivid', 'paper'), grain=4))
  dark = tex(texture_tile(r, 'noise', material(r, 'dark'), material(r, 'dark'), grain=4))
  faces = []
  for zc in (-base / 2, base / 2):
    faces += extrusion(_ngon(16, wheel_r, wheel_r), tyre, frame=ALONG_X, centre=(0, wheel_r, zc),
                       side=dark, caps=wheel)
  seat_y = wheel_r + r.uniform(0.35, 0.5)
  rear, crank, seat = (wheel_r, -base / 2), (wheel_r, 0.0), (seat_y, -base * 0.18)
  head = (seat_y, base * 0.3)
  bars = [(rear, seat), (rear, crank), (crank, seat), ((seat_y - 0.05, seat[1]), head),
          (crank, (seat_y - 0.03, head[1])), ((seat_y + 0.05, head[1]), (wheel_r, base / 2))]
  th = r.uniform(0.03, 0.05)
  for (y0, z0), (y1, z1) in bars:
    d = np.array([y1 - y0, z1 - z0])
    angle = np.arctan2(d[0], d[1])  # rotation about x taking +z to the bar direction
    frame = _rot_x(-angle)
    faces += cuboid((th, th, np.linalg.norm(d) + th), (0, (y0 + y1) / 2, (z0 + z1) / 2),
                    frame_tex, frame=frame)
  faces += cuboid((r.uniform(0.4, 0.6), 0.03, 0.03), (0, seat_y + 0.1, base * 0.33), dark)
  faces += cuboid((0.06, 0.12, 0.03), (0, seat_y + 0.04, base * 0.31), frame_tex)
  faces += cuboid((0.1, 0.04, 0.22), (0, seat_y + 0.02, -base * 0.2), dark)
  return faces


def _book(r, tex):
  w = r.uniform(0.13, 0.2)
  d, h = w * r.uniform(1.4, 1.7), r.uniform(0.018, 0.045)
  ink = material(r, 'fabric', 'leather', 'vivid')
  cover = tex(texture_tile(r, str(r.choice(['plain', 'stripes', 'blobs', 'noise'])), ink,
                           palette_colour(r), label=True))
  back = tex(texture_tile(r, 'plain', ink, ink))
  pages = tex(texture_tile(r, 'stripes', material(r, 'paper'), material(r, 'paper') - 25, grain=3))
  spine = tex(texture_tile(r, 'stripes', ink, material(r, 'paper', 'vivid')))
  return cuboid((w, h, d), (0, h / 2, 0), [back, pages, cover, spine, pages, pages])


def _bottle(r, tex):
  rad, body = r.uniform(0.025, 0.05), r.uniform(0.1, 0.25)
  neck_r, neck = rad * r.uniform(0.3, 0.45), r.uniform(0.04, 0.08)
  sides = int(r.choice([4, 6, 14, 14]))  # some bottles are square, like small boxes
  tint = material(r, 'glass')
  label = tex(texture_tile(r, str(r.choice(['plain', 'stripes', 'blobs'])), material(r, 'paper', 'vivid'),
                           palette_colour(r), label=True))
  glass = tex(texture_tile(r, 'noise', tint, np.clip(tint * 1.5 + 30, 0, 255), grain=5))
  shoulder = r.uniform(0.03, 0.06)
  faces = prism(rad, body, 0.0, label, sides=sides, cap=glass)
  faces += prism(rad, shoulder, body, glass, sides=sides, taper=neck_r / rad)
  faces += prism(neck_r, neck, body + shoulder, glass, sides=sides)
  faces += prism(neck_r * 1.15, 0.02, body + shoulder + neck,
                 tex(texture_tile(r, 'plain', material(r, 'metal'))), sides=sides)
  return faces


def _camera(r, tex):
  w, h, d = r.uniform(0.11, 0.15), r.uniform(0.06, 0.09), r.uniform(0.03, 0.045)
  shell = material(r, 'dark')
  body = tex(texture_tile(r, str(r.choice(['noise', 'plain'])), shell, material(r, 'dark'),
                          grain=6))
  lens_r = min(w, h) * r.uniform(0.25, 0.38)
  faces = cuboid((w, h, d), (0, h / 2, 0), body)
  lens_len = r.uniform(0.02, 0.045)
  faces += extrusion(_ngon(14, lens_r, lens_r), lens_len, frame=ALONG_Z,
                     centre=(r.uniform(-0.1, 0.1) * w, h * 0.48, d / 2 + lens_len / 2),
                     side=tex(texture_tile(r, 'stripes', material(r, 'dark'), material(r, 'metal'))),
                     caps=tex(texture_tile(r, 'rings', material(r, 'dark'), material(r, 'metal', 'glass'))))
  faces += cuboid((w * 0.3, h * 0.2, d * 0.6), (-w * 0.2, h * 1.1, 0), body)
  return faces


def _cereal_box(r, tex):
  w = r.uniform(0.19, 0.27)
  h, d = w * r.uniform(1.3, 1.5), w * r.uniform(0.25, 0.33)
  base = material(r, 'vivid')
  front = tex(texture_tile(r, str(r.choice(['blobs', 'stripes', 'checks'])), base, material(r, 'vivid'),
                           label=True))
  side = tex(texture_tile(r, 'stripes', base, material(r, 'vivid', 'paper')))
  plain = tex(texture_tile(r, 'plain', base, base))
  return cuboid((w, h, d), (0, h / 2, 0), [plain, side, plain, side, front, front])


def _chair(r, tex):
  w, seat_h = r.uniform(0.4, 0.48), r.uniform(0.42, 0.5)
  d = w * r.uniform(1.3, 1.55)
  back_h, th, leg = r.uniform(0.3, 0.6), r.uniform(0.03, 0.06), r.uniform(0.03, 0.05)
  frame_colour = material(r, 'wood')
  wood = tex(texture_tile(r, 'stripes', frame_colour, frame_colour * 0.8, grain=6))
  cushion = tex(texture_tile(r, str(r.choice(['plain', 'noise', 'checks'])), material(r, 'wood', 'fabric'),
                             material(r, 'fabric')))
  faces = cuboid((w, th, d), (0, seat_h - th / 2, 0), [wood, wood, cushion, wood, wood, wood])
  tilt = r.uniform(0.1, 0.35)
  faces += cuboid((w, back_h, th), (0, seat_h + back_h / 2 * np.cos(tilt), -d / 2 + th / 2 -
                                   back_h / 2 * np.sin(tilt)), cushion, frame=_rot_x(-tilt))
  for sx in (-1, 1):
    for sz in (-1, 1):
      faces += cuboid((leg, seat_h - th, leg), (sx * (w / 2 - leg / 2), (seat_h - th) / 2,
                                                sz * (d / 2 - leg / 2)), wood)
  return faces


def _cup(r, tex):
  rad, h = r.uniform(0.035, 0.05), r.uniform(0.08, 0.12)
  kind = str(r.choice(['stripes', 'blobs', 'checks', 'noise']))
  glaze = material(r, 'ceramic')
  kind = kind if r.random() < 0.4 else 'plain'
  outer = tex(texture_tile(r, kind, glaze, material(r, 'ceramic'), grain=4, label=r.random() < 0.3))
  inside = tex(texture_tile(r, 'noise', glaze, glaze, grain=3) // 3)  # the open top, in shade
  bottom = tex(texture_tile(r, 'plain', glaze, glaze))
  faces = prism(rad, h, 0.0, outer, taper=r.uniform(1.0, 1.12), cap=(bottom, inside))
  t, reach = 0.012, rad * r.uniform(0.9, 1.25)
  x0 = rad * 1.05
  faces += cuboid((reach, t, t), (x0 + reach / 2, h * 0.8, 0), outer)
  faces += cuboid((reach, t, t), (x0 + reach / 2, h * 0.25, 0), outer)
  faces += cuboid((t, h * 0.55 + t, t), (x0 + reach, h * 0.525, 0), outer)
  return faces


def _laptop(r, tex):
  w, t = r.uniform(0.32, 0.4), r.uniform(0.012, 0.025)
  d = w * r.uniform(0.48, 0.56)
  case = material(r, 'metal')
  shell = tex(texture_tile(r, str(r.choice(['plain', 'noise'])), case, case * 0.9, grain=4))
  keys = tex(texture_tile(r, 'checks', material(r, 'dark'), case, grain=4))
  screen = tex(texture_tile(r, 'noise', np.array([60.0, 20, 10]) + r.uniform(0, 40, 3), palette_colour(r),
                            grain=4))
  faces = cuboid((w, t, d), (0, t / 2, 0), [shell, shell, keys, shell, shell, shell])
  open_angle = r.uniform(0.0, 0.2)  # lid tilt back from vertical
  centre = (0, t + d / 2 * np.cos(open_angle), -d / 2 - d / 2 * np.sin(open_angle) + t / 2)
  faces += cuboid((w, d, t), centre, [shell, shell, shell, shell, shell, screen],
                  frame=_rot_x(-open_angle))
  return faces


def _shoe(r, tex):
  length, width = r.uniform(0.24, 0.3), r.uniform(0.08, 0.11)
  sole_h = r.uniform(0.015, 0.035)
  high = sole_h + 0.055 + r.uniform(0.01, 0.06)
  sole = tex(texture_tile(r, 'plain', material(r, 'paper'), grain=5))
  upper = tex(texture_tile(r, str(r.choice(['plain', 'stripes', 'noise'])), material(r, 'leather'),
                           material(r, 'leather', 'paper')))
  faces = extrusion(np.array([[-length / 2, 0], [length / 2, 0], [length / 2, sole_h],
                              [-length / 2, sole_h]]), width, frame=ALONG_X, centre=(0, 0, 0),
                    side=sole, caps=sole)
  toe = length / 2 - 0.01
  profile = np.array([[-length / 2 + 0.005, sole_h], [toe, sole_h], [toe, sole_h + 0.035],
                      [toe - 0.06, sole_h + 0.055], [-length * 0.1, high],
                      [-length / 2 + 0.005, high]])
  faces += extrusion(profile, width * 0.9, frame=ALONG_X, centre=(0, 0, 0), side=upper,
                     caps=upper)
  return faces


DISTRACTOR_SHAPES = ('box', 'cylinder')


def make_distractor(rng, shape: str, radius: float, height: float) -> ObjectModel:
  """An unannotated box or cylinder whose footprint fits a circle of `radius` (texture from `rng`).

  Its plain clutter tiles come from `rng`, never from an instance's stream, so a distractor does not
  repeat the annotated object's look.
  """
  tone = material(rng, 'clutter')
  textures = [texture_tile(rng, str(rng.choice(['plain', 'noise'])), tone, tone * 0.85, grain=6),
              texture_tile(rng, 'plain', tone * 0.9, tone * 0.9)]
  if shape == 'box':
    angle = rng.uniform(0.5, np.pi / 2 - 0.5)  # footprint diagonal = 2 radius
    sx, sz = 2 * radius * np.cos(angle), 2 * radius * np.sin(angle)
    faces = cuboid((sx, height, sz), (0, 0, 0), [0, 0, 1, 0, 0, 0])
  elif shape == 'cylinder':  # the n-gon's bounding square has half-diagonal `radius`
    faces = prism(radius / np.sqrt(2), height, -height / 2, 0, cap=1)
  else:
    raise ValueError(f'unknown distractor shape {shape!r}; expected one of {DISTRACTOR_SHAPES}')
  pts = np.concatenate([f.vertices for f in faces])
  return ObjectModel('distractor', -1, faces, textures, pts.max(axis=0) - pts.min(axis=0))


_BUILDERS = {'bike': _bike, 'book': _book, 'bottle': _bottle, 'camera': _camera,
             'cereal_box': _cereal_box, 'chair': _chair, 'cup': _cup, 'laptop': _laptop,
             'shoe': _shoe}


def make_instance(category: str, instance: int, seed: int) -> ObjectModel:
  """The instance's geometry and textures, recentred on its tight box; same inputs, same object."""
  if category not in _BUILDERS:
    raise ValueError(f'unknown category {category!r}; expected one of {CATEGORIES}')
  if instance < 0:
    raise ValueError(f'instance must be >= 0, got {instance}')
  rng = _rng(seed, CATEGORIES.index(category), instance, 7)
  textures: list[np.ndarray] = []

  def tex(tile):
    textures.append(tile)
    return len(textures) - 1

  faces = _BUILDERS[category](rng, tex)
  pts = np.concatenate([f.vertices for f in faces])
  lo, hi = pts.min(axis=0), pts.max(axis=0)
  centre = (lo + hi) / 2
  for f in faces:
    f.vertices = f.vertices - centre
    f.origin = f.origin - centre
  return ObjectModel(category, instance, faces, textures, hi - lo)
