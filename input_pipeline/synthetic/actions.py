"""Deterministic synthetic action clips in the raw UCF101 layout: the embedded default for the UCF101 path.

Each clip shows one articulated, textured actor (a stick figure of thick limbs: torso, head, two-segment
arms and legs) performing its class's motion in a scene, written as MJPG .avi files with the official
split lists (input_pipeline/formats/ucf101.py), so the same reader, ingest, training and retrieval run on
it as on UCF101 itself:

  * the class is shown by the motion (waving, jumping jacks, squats, walking, punching, cartwheels, arm
    circles, bowing, hopping, kicking; each keeps a posture of its own through its cycle) and, as in
    UCF101 where actions come with their objects and places, by its setting: a prop (a punching bag, a
    ball, a rack, ...) and the kind of floor texture; their colours, sizes and places vary per clip;
  * a group (gXX of a class, as in UCF101) is one actor (body proportions, limb thickness, clothing
    colours and texture) in one scene (wall colours and gradient, floor), drawn from one distribution
    for every class; the official splits hold out whole groups, so test clips show unseen actors and
    scenes;
  * each clip of a group varies speed, phase, actor size and position, mirroring, camera roll and pan.

Design note (configs/ucf101_nearby.py:cpu, one seed each, README "UCF101 action retrieval"): SimSiam on
frame pairs learns what stays the same across a clip's frames. With the motion as the only class cue and
actors and scenes varied freely, trained embeddings retrieved actions at chance (R@1 ~9 %, random-init
~9-19 %); hence the class-typical settings and actors that differ little in build and clothing.

  python -c "from input_pipeline.synthetic import actions; actions.generate('DIR')"
"""
from __future__ import annotations

import colorsys
import json
import math
import os
import shutil

import cv2
import numpy as np

from input_pipeline.formats import ucf101

GENERATOR_VERSION = 9
MANIFEST = 'ACTIONS.json'
CLASSES = ('ArmCircles', 'Bowing', 'Cartwheel', 'Hopping', 'JumpingJack', 'Kicking', 'Punch', 'Squats',
           'Walking', 'Waving')
_SHIFT = 4  # cv2 drawing with 1/16 px precision
_DEG = math.pi / 180


def _pose(cls: str, phase: float, t: float) -> dict[str, float]:
  """Joint angles (degrees, measured from hanging straight down, + towards the facing side) and body
  offsets (actor heights) of a class at `phase` (radians); `t` in [0, 1] is the clip's progress.

  Each class keeps a posture of its own through its whole cycle (no class passes through a neutral
  stance), so that every frame shows which action it is, as a still of UCF101 mostly does."""
  s, c = math.sin(phase), (1 - math.cos(phase)) / 2
  p = dict(lean=0.0, arm_l=-10.0, elbow_l=0.0, arm_r=10.0, elbow_r=0.0, leg_l=-6.0, knee_l=0.0,
           leg_r=6.0, knee_r=0.0, dx=0.0, dy=0.0, rot=0.0)
  if cls == 'ArmCircles':  # straight arms sweeping full circles, feet wide apart
    p.update(arm_l=-math.degrees(phase) % 360, arm_r=math.degrees(phase) % 360, leg_l=-28, leg_r=28)
  elif cls == 'Bowing':  # deep bow and half back up, arms hanging
    p.update(lean=35 + 45 * c, arm_l=30 + 50 * c, arm_r=40 + 50 * c, leg_l=-3, leg_r=3, knee_l=10, knee_r=10)
  elif cls == 'Cartwheel':  # the whole body turning, arms and legs in an X
    p.update(rot=math.degrees(phase), arm_l=-150, arm_r=150, leg_l=-35, leg_r=35, dy=0.3)
  elif cls == 'Hopping':  # knees tucked, up and down
    h = abs(s)
    p.update(dy=0.2 * h, leg_l=50 + 30 * h, leg_r=45 + 30 * h, knee_l=-100 - 30 * h, knee_r=-95 - 30 * h,
             arm_l=-60 - 60 * h, arm_r=60 + 60 * h)
  elif cls == 'JumpingJack':  # arms between shoulder height and overhead, legs apart
    p.update(arm_l=-(80 + 90 * c), arm_r=80 + 90 * c, leg_l=-(15 + 20 * c), leg_r=15 + 20 * c, dy=0.05 * c)
  elif cls == 'Kicking':  # standing on one leg, the other kicking forward, arms out for balance
    k = max(0.0, s)
    p.update(leg_r=40 + 60 * k, knee_r=-70 * (1 - k), leg_l=-5, arm_l=-80, arm_r=-100 + 30 * k, lean=-10 * k)
  elif cls == 'Punch':  # guard up, fists shooting forward in turn
    right, left = max(0.0, s), max(0.0, -s)
    p.update(arm_r=50 + 40 * right, elbow_r=130 * (1 - right), arm_l=50 + 40 * left, elbow_l=130 * (1 - left),
             leg_l=-20, leg_r=20, lean=10)
  elif cls == 'Squats':  # arms straight forward, going down and up
    p.update(dy=-0.05 - 0.18 * c, leg_l=30 + 50 * c, leg_r=28 + 50 * c, knee_l=-50 - 80 * c,
             knee_r=-48 - 80 * c, arm_l=88, arm_r=92, lean=10 + 20 * c)
  elif cls == 'Walking':  # legs scissoring, arms swinging with bent elbows, moving across
    p.update(leg_l=20 + 15 * s, leg_r=-20 - 15 * s, knee_l=-30 * max(0.0, -s), knee_r=-30 * max(0.0, s),
             arm_l=-30 * s, arm_r=30 * s, elbow_l=60, elbow_r=60, dx=0.5 * (t - 0.5), dy=0.02 * abs(s))
  elif cls == 'Waving':  # one arm up, the forearm waving; the other hanging
    p.update(arm_r=150, elbow_r=45 * s, arm_l=-8)
  else:
    raise ValueError(f'unknown synthetic action {cls!r}; expected one of {CLASSES}')
  return p


def _direction(deg: float) -> np.ndarray:
  """Unit vector (x right, y up) of an angle measured from straight down towards +x."""
  return np.array([math.sin(deg * _DEG), -math.cos(deg * _DEG)])


def _skeleton(p: dict[str, float], body: dict[str, float]) -> tuple[list[tuple[np.ndarray, np.ndarray, str]],
                                                                     np.ndarray]:
  """Limb segments ((start, end, part) in actor heights, y up, hip at the origin) and the head centre."""
  neck = body['torso'] * _direction(180 + p['lean'])
  segments = [(np.zeros(2), neck, 'upper')]
  for side in ('l', 'r'):
    elbow = neck + body['upper_arm'] * _direction(p[f'arm_{side}'])
    hand = elbow + body['forearm'] * _direction(p[f'arm_{side}'] + p[f'elbow_{side}'])
    knee = body['thigh'] * _direction(p[f'leg_{side}'])
    foot = knee + body['shin'] * _direction(p[f'leg_{side}'] + p[f'knee_{side}'])
    segments += [(neck, elbow, 'upper'), (elbow, hand, 'upper'), (np.zeros(2), knee, 'lower'),
                 (knee, foot, 'lower')]
  head = neck + body['head'] * 1.3 * _direction(180 + p['lean'])
  return segments, head


def _pattern(rng: np.random.Generator, hw: tuple[int, int], kind=None, period=None, angle=None) -> np.ndarray:
  """A texture in [-1, 1]: stripes, checks, dots or noise (kind 0-3) at a scale and angle (random unless
  given)."""
  h, w = hw
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  angle = rng.uniform(0, math.pi) if angle is None else angle
  period = rng.uniform(3, 9) if period is None else period
  u = x * math.cos(angle) + y * math.sin(angle)
  v = -x * math.sin(angle) + y * math.cos(angle)
  kind = rng.integers(4) if kind is None else kind
  if kind == 0:
    return np.sign(np.sin(2 * math.pi * u / period)).astype(np.float32)
  if kind == 1:
    return np.sign(np.sin(2 * math.pi * u / period) * np.sin(2 * math.pi * v / period)).astype(np.float32)
  if kind == 2:
    return (np.cos(2 * math.pi * u / period) * np.cos(2 * math.pi * v / period) > 0.5).astype(np.float32) * 2 - 1
  noise = cv2.resize(rng.uniform(-1, 1, (max(2, h // 4), max(2, w // 4))).astype(np.float32), (w, h),
                     interpolation=cv2.INTER_LINEAR)
  return np.clip(noise * 2, -1, 1)


def _scene(rng: np.random.Generator, hw: tuple[int, int], label: int) -> np.ndarray:
  """A group's backdrop (float RGB in [0, 1], wider than the frame so the camera can pan): a wall of smooth,
  faint colour noise over a tilted brightness gradient, and a textured floor whose kind of texture (its
  pattern, scale and direction, not its colours) is typical of the class, as UCF101's settings go with
  their actions (gym floors, fields, mats)."""
  h, w = hw
  def muted(lo, hi):
    return rng.uniform(lo, hi) + rng.normal(0, 0.02, 3)
  walls = cv2.resize(rng.normal(0, 0.03, (4, 6, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  angle = rng.uniform(0, 2 * math.pi)
  gradient = 0.1 * ((x / w - 0.5) * math.cos(angle) + (y / h - 0.5) * math.sin(angle))
  img = np.clip(muted(0.5, 0.75) + walls + gradient[..., None], 0, 1).astype(np.float32)
  floor = int(h * rng.uniform(0.7, 0.85))
  period = (3 + 2.5 * (label // 4)) * rng.uniform(0.85, 1.15)
  texture = _pattern(rng, (h - floor, w), kind=label % 4, period=period, angle=0.6 * label + rng.uniform(-0.2, 0.2))
  img[floor:] = np.clip(muted(0.45, 0.65) + 0.12 * texture[..., None], 0, 1)
  return img


def _group(seed: int, label: int, group: int, frame_hw: tuple[int, int]) -> dict:
  """One actor in one scene: every clip of group `group` of class `label`."""
  rng = np.random.default_rng([seed, 1, label, group])
  h, w = frame_hw
  # Actors differ little in build and clothing (dark, weakly coloured, faintly textured): what stays the
  # same across a clip's frames is what frame pairs learn to match, and a clip's actor says nothing of its
  # class, so it is kept from standing out; its silhouette (the pose) and the class's setting do.
  body = dict(torso=rng.uniform(0.33, 0.35), upper_arm=rng.uniform(0.17, 0.18), forearm=rng.uniform(0.16, 0.17),
              thigh=rng.uniform(0.22, 0.23), shin=rng.uniform(0.22, 0.23), head=rng.uniform(0.075, 0.085),
              width=rng.uniform(0.105, 0.115))
  def cloth():
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 0.15), rng.uniform(0.15, 0.3)))
  colours = {'upper': cloth(), 'lower': cloth(), 'head': np.array([0.55, 0.4, 0.3]) * rng.uniform(0.8, 1.0)}
  return dict(body=body, colours=colours, texture=_pattern(rng, (h, w)), texture_gain=rng.uniform(0.02, 0.05),
              scene=_scene(rng, (int(h * 1.2), int(w * 1.6)), label))


# Each action's prop (UCF101's actions come with their objects: bags, balls, bars), drawn beside the actor.
PROPS = {'ArmCircles': 'pole', 'Bowing': 'window', 'Cartwheel': 'mat', 'Hopping': 'hoop', 'JumpingJack': 'cones',
         'Kicking': 'ball', 'Punch': 'bag', 'Squats': 'rack', 'Walking': 'door', 'Waving': 'flag'}


def _prop(cls: str, rng: np.random.Generator, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """(colour [H, W, 3], alpha [H, W, 1]) of the class's prop at a random side, size and colour."""
  h, w = hw
  mask = np.zeros((h, w), np.uint8)
  side = 1 if rng.random() < 0.5 else -1
  x = w / 2 + side * w * rng.uniform(0.22, 0.32)
  k = rng.uniform(0.8, 1.2) * h / 72  # scale with the frame
  ground = int(h * rng.uniform(0.88, 0.95))
  def pt(px, py):
    return int(round(px)), int(round(py))
  kind = PROPS[cls]
  if kind == 'pole':
    cv2.line(mask, pt(x, ground), pt(x, ground - 50 * k), 255, max(1, int(3 * k)))
  elif kind == 'window':
    top = ground - 55 * k
    cv2.rectangle(mask, pt(x - 9 * k, top), pt(x + 9 * k, top + 22 * k), 255, max(1, int(2 * k)))
    cv2.line(mask, pt(x, top), pt(x, top + 22 * k), 255, 1)
    cv2.line(mask, pt(x - 9 * k, top + 11 * k), pt(x + 9 * k, top + 11 * k), 255, 1)
  elif kind == 'mat':
    cv2.rectangle(mask, pt(x - 14 * k, ground - 4 * k), pt(x + 14 * k, ground), 255, -1)
  elif kind == 'hoop':
    cv2.ellipse(mask, pt(x, ground - 3 * k), pt(11 * k, 4 * k), 0, 0, 360, 255, max(1, int(2 * k)))
  elif kind == 'cones':
    for dx in (-7, 7):
      tri = np.array([pt(x + (dx - 4) * k, ground), pt(x + (dx + 4) * k, ground), pt(x + dx * k, ground - 12 * k)])
      cv2.fillPoly(mask, [tri], 255)
  elif kind == 'ball':
    cv2.circle(mask, pt(x, ground - 6 * k), int(6 * k), 255, -1)
  elif kind == 'bag':
    cv2.line(mask, pt(x, 0), pt(x, ground - 45 * k), 255, 1)
    cv2.rectangle(mask, pt(x - 5 * k, ground - 45 * k), pt(x + 5 * k, ground - 18 * k), 255, -1)
  elif kind == 'rack':
    for dx in (-10, 10):
      cv2.line(mask, pt(x + dx * k, ground), pt(x + dx * k, ground - 30 * k), 255, max(1, int(2 * k)))
    cv2.line(mask, pt(x - 14 * k, ground - 30 * k), pt(x + 14 * k, ground - 30 * k), 255, max(1, int(2 * k)))
  elif kind == 'door':
    cv2.rectangle(mask, pt(x - 8 * k, ground - 40 * k), pt(x + 8 * k, ground), 255, max(1, int(3 * k)))
  elif kind == 'flag':
    cv2.line(mask, pt(x, ground), pt(x, ground - 45 * k), 255, max(1, int(2 * k)))
    cv2.rectangle(mask, pt(x, ground - 45 * k), pt(x + side * 12 * k, ground - 36 * k), 255, -1)
  colour = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 0.3), rng.uniform(0.1, 0.4)))
  return np.broadcast_to(colour, (h, w, 3)).astype(np.float32), mask.astype(np.float32)[..., None] / 255


def render_clip(cls: str, group: dict, rng: np.random.Generator, num_frames: int,
                frame_hw: tuple[int, int]) -> np.ndarray:
  """RGB uint8 frames [T, H, W, 3] of one clip: the group's actor doing `cls` in the group's scene."""
  h, w = frame_hw
  size = h * rng.uniform(0.7, 0.85)              # pixels per actor height (the figure fills the frame)
  centre = np.array([w * rng.uniform(0.44, 0.56), h * rng.uniform(0.52, 0.58)])  # hip position
  mirror = rng.random() < 0.5
  period = rng.uniform(14, 26)                   # frames per cycle (speed)
  phase0 = rng.uniform(0, 2 * math.pi)
  roll = rng.uniform(-5, 5)
  scene = group['scene']
  pan = rng.uniform(-0.6, 0.6)                   # scene pixels per frame
  sx0 = rng.uniform(0, scene.shape[1] - w - abs(pan) * num_frames)
  if pan < 0:
    sx0 += abs(pan) * num_frames
  sy0 = int(rng.uniform(0, scene.shape[0] - h))
  rot_m = cv2.getRotationMatrix2D((w / 2, h / 2), roll, 1.0)
  thickness = max(2, int(round(group['body']['width'] * size)))
  prop, prop_alpha = _prop(cls, rng, frame_hw)
  frames = np.zeros((num_frames, h, w, 3), np.uint8)
  for i in range(num_frames):
    p = _pose(cls, phase0 + 2 * math.pi * i / period, i / max(1, num_frames - 1))
    segments, head = _skeleton(p, group['body'])
    cos, sin = math.cos(p['rot'] * _DEG), math.sin(p['rot'] * _DEG)
    turn = np.array([[cos, -sin], [sin, cos]])  # a body rotation about the hips (cartwheels)

    def to_px(q):
      q = turn @ q + np.array([p['dx'], p['dy']])
      x = centre[0] + (-q[0] if mirror else q[0]) * size
      return (int(round(x * (1 << _SHIFT))), int(round((centre[1] - q[1] * size) * (1 << _SHIFT))))

    x = int(sx0 + pan * i)
    frame = scene[sy0:sy0 + h, x:x + w] * (1 - prop_alpha) + prop * prop_alpha
    for part in ('lower', 'upper', 'head'):
      mask = np.zeros((h, w), np.uint8)
      if part == 'head':
        cv2.circle(mask, to_px(head), int(group['body']['head'] * size * (1 << _SHIFT)), 255, -1, cv2.LINE_AA,
                   _SHIFT)
      for a, b, which in segments:
        if which == part:
          cv2.line(mask, to_px(a), to_px(b), 255, thickness, cv2.LINE_AA, _SHIFT)
      alpha = mask.astype(np.float32)[..., None] / 255
      cloth = np.clip(group['colours'][part] * (1 + group['texture_gain'] * group['texture'][..., None]), 0, 1)
      frame = frame * (1 - alpha) + cloth * alpha
    frame = cv2.warpAffine(frame.astype(np.float32), rot_m, (w, h), borderMode=cv2.BORDER_REFLECT)
    frames[i] = np.clip(frame * 255 + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8)
  return frames


def write_avi(path: str, frames: np.ndarray, fps: float = ucf101.FPS) -> None:
  """RGB uint8 [T, H, W, 3] -> an MJPG .avi (what OpenCV writes without external codecs)."""
  h, w = frames.shape[1:3]
  os.makedirs(os.path.dirname(path), exist_ok=True)
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), fps, (w, h))
  if not writer.isOpened():
    raise OSError(f'{path}: OpenCV cannot open an MJPG video writer')
  try:
    for frame in frames:
      writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  finally:
    writer.release()


def generate(root: str, *, num_classes: int = 10, groups: int = 25, clips_per_group: int = 2,
             num_frames: int = 40, width: int = 96, height: int = 72, seed: int = 0, progress=None) -> str:
  """Writes the set into `root` (UCF-101/ and ucfTrainTestlist/, then ACTIONS.json last).

  `groups` group numbers are spread over UCF101's 1..25, so each official split holds some out.
  """
  if not 1 <= num_classes <= len(CLASSES) or not 2 <= groups <= 25 or clips_per_group < 1 or num_frames < 2:
    raise ValueError(f'synthetic actions: num_classes={num_classes} (1..{len(CLASSES)}), groups={groups} '
                     f'(2..25), clips_per_group={clips_per_group}, num_frames={num_frames}')
  classes = CLASSES[:num_classes]
  group_ids = sorted({int(round(g)) for g in np.linspace(1, 25, groups)})
  clips = []
  for g in group_ids:
    for label, cls in enumerate(classes):
      group = _group(seed, label, g, (height, width))
      for c in range(1, clips_per_group + 1):
        rng = np.random.default_rng([seed, 2, g, label, c])
        path = ucf101.clip_name(cls, g, c)
        write_avi(os.path.join(root, ucf101.VIDEO_DIR, path),
                  render_clip(cls, group, rng, num_frames, (height, width)))
        clips.append((path, label))
    if progress:
      progress(f'synthetic actions: group {g} written ({len(clips)} clips)')
  ucf101.write_split_lists(root, classes, sorted(clips))
  return root


def ensure_actions(root: str, progress=None, **params) -> str:
  """The set for `params` at `root`, generated unless a complete one with the same parameters is there."""
  manifest = os.path.join(root, MANIFEST)
  want = {'version': GENERATOR_VERSION, 'params': params}
  if os.path.exists(manifest):
    with open(manifest) as f:
      if json.load(f) == want:
        return root
  shutil.rmtree(root, ignore_errors=True)
  generate(root, progress=progress, **params)
  with open(manifest, 'w') as f:
    json.dump(want, f, indent=1)
  return root
