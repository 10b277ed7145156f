"""Deterministic synthetic action clips in the raw UCF101 layout: the embedded default for the UCF101 path.

Each clip shows one articulated, textured actor (a stick figure of thick limbs: torso, head, two-segment
arms and legs) performing its class's motion over a textured scene, filmed with MJPG .avi files and the
official split lists (input_pipeline/formats/ucf101.py), so the same reader, ingest, training and
retrieval run on it as on UCF101 itself:

  * the class is the motion only (what the limbs and body do over time: waving, jumping jacks, squats,
    walking, punching, cartwheels, arm circles, bowing, hopping, kicking), so every single frame shows a
    pose typical of its class, and a clip's frames together show its cycle;
  * a group (gXX, as in UCF101) is one actor (body proportions, limb thickness, clothing colours and
    texture) in one scene (background colours, furniture, floor); groups are drawn independently of the
    class, and the official splits hold out whole groups, so test clips show unseen actors and scenes;
  * each clip of a group varies speed, phase, actor size and position, mirroring, camera roll and pan.

  python -c "from input_pipeline.synthetic import actions; actions.generate('DIR')"
"""
from __future__ import annotations

import json
import math
import os
import shutil

import cv2
import numpy as np

from input_pipeline.formats import ucf101

GENERATOR_VERSION = 1
MANIFEST = 'ACTIONS.json'
CLASSES = ('ArmCircles', 'Bowing', 'Cartwheel', 'Hopping', 'JumpingJack', 'Kicking', 'Punch', 'Squats',
           'Walking', 'Waving')
_SHIFT = 4  # cv2 drawing with 1/16 px precision
_DEG = math.pi / 180


def _pose(cls: str, phase: float, t: float) -> dict[str, float]:
  """Joint angles (degrees, measured from hanging straight down, + towards the facing side) and body
  offsets (actor heights) of a class at `phase` (radians); `t` in [0, 1] is the clip's progress."""
  s, c = math.sin(phase), (1 - math.cos(phase)) / 2
  p = dict(lean=0.0, arm_l=-10.0, elbow_l=0.0, arm_r=10.0, elbow_r=0.0, leg_l=-6.0, knee_l=0.0,
           leg_r=6.0, knee_r=0.0, dx=0.0, dy=0.0, rot=0.0)
  if cls == 'ArmCircles':
    p.update(arm_l=-math.degrees(phase) % 360, arm_r=math.degrees(phase) % 360)
  elif cls == 'Bowing':
    p.update(lean=75 * c, arm_l=75 * c - 5, arm_r=75 * c + 5, leg_l=-3, leg_r=3)
  elif cls == 'Cartwheel':
    p.update(rot=math.degrees(phase), arm_l=-150, arm_r=150, leg_l=-28, leg_r=28, dy=0.35)
  elif cls == 'Hopping':
    h = abs(s)
    p.update(dy=0.25 * h, leg_l=45 * h, leg_r=40 * h, knee_l=-90 * h, knee_r=-85 * h, arm_l=-40 - 80 * h,
             arm_r=40 + 80 * h)
  elif cls == 'JumpingJack':
    p.update(arm_l=-(20 + 140 * c), arm_r=20 + 140 * c, leg_l=-(5 + 22 * c), leg_r=5 + 22 * c, dy=0.05 * c)
  elif cls == 'Kicking':
    k = max(0.0, s)
    p.update(leg_r=100 * k, knee_r=-70 * (1 - k), leg_l=-5, arm_l=-70, arm_r=-110 + 40 * k, lean=-15 * k)
  elif cls == 'Punch':
    right, left = max(0.0, s), max(0.0, -s)
    p.update(arm_r=40 + 50 * right, elbow_r=120 * (1 - right), arm_l=40 + 50 * left, elbow_l=120 * (1 - left),
             leg_l=-15, leg_r=15, lean=10)
  elif cls == 'Squats':
    p.update(dy=-0.2 * c, leg_l=75 * c, leg_r=70 * c, knee_l=-130 * c, knee_r=-125 * c, arm_l=85 * c,
             arm_r=90 * c, lean=25 * c)
  elif cls == 'Walking':
    p.update(leg_l=30 * s, leg_r=-30 * s, knee_l=-25 * max(0.0, -s), knee_r=-25 * max(0.0, s),
             arm_l=-25 * s, arm_r=25 * s, elbow_l=20, elbow_r=20, dx=1.2 * (t - 0.5), dy=0.02 * abs(s))
  elif cls == 'Waving':
    p.update(arm_r=140, elbow_r=45 * s, arm_l=-12)
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


def _pattern(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
  """A clothing texture in [-1, 1]: stripes, checks, dots or noise at a random scale and angle."""
  h, w = hw
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  angle, period = rng.uniform(0, math.pi), rng.uniform(3, 9)
  u = x * math.cos(angle) + y * math.sin(angle)
  v = -x * math.sin(angle) + y * math.cos(angle)
  kind = rng.integers(4)
  if kind == 0:
    return np.sign(np.sin(2 * math.pi * u / period)).astype(np.float32)
  if kind == 1:
    return np.sign(np.sin(2 * math.pi * u / period) * np.sin(2 * math.pi * v / period)).astype(np.float32)
  if kind == 2:
    return (np.cos(2 * math.pi * u / period) * np.cos(2 * math.pi * v / period) > 0.5).astype(np.float32) * 2 - 1
  noise = cv2.resize(rng.uniform(-1, 1, (max(2, h // 4), max(2, w // 4))).astype(np.float32), (w, h),
                     interpolation=cv2.INTER_LINEAR)
  return np.clip(noise * 2, -1, 1)


def _scene(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
  """A group's backdrop (float RGB in [0, 1], wider than the frame so the camera can pan): smooth colour
  noise on the walls, a floor band, and a few furniture blocks."""
  h, w = hw
  base = rng.uniform(0.25, 0.75, 3)
  walls = cv2.resize(rng.normal(0, 0.12, (4, 6, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
  img = np.clip(base + walls, 0, 1).astype(np.float32)
  floor = int(h * rng.uniform(0.62, 0.78))
  img[floor:] = np.clip(rng.uniform(0.15, 0.65, 3) + 0.08 * _pattern(rng, (h - floor, w))[..., None], 0, 1)
  for _ in range(rng.integers(2, 6)):
    bw, bh = int(w * rng.uniform(0.05, 0.2)), int(h * rng.uniform(0.1, 0.45))
    x0, y0 = int(rng.uniform(0, w - bw)), max(0, floor - bh + int(rng.uniform(-0.1, 0.05) * h))
    img[y0:y0 + bh, x0:x0 + bw] = rng.uniform(0.1, 0.9, 3)
  return img


def _group(seed: int, group: int, frame_hw: tuple[int, int]) -> dict:
  """One actor in one scene (shared by every clip of group `group`, whatever the class)."""
  rng = np.random.default_rng([seed, 1, group])
  h, w = frame_hw
  body = dict(torso=rng.uniform(0.3, 0.38), upper_arm=rng.uniform(0.15, 0.2), forearm=rng.uniform(0.14, 0.19),
              thigh=rng.uniform(0.2, 0.25), shin=rng.uniform(0.2, 0.25), head=rng.uniform(0.06, 0.09),
              width=rng.uniform(0.07, 0.11))
  colours = {'upper': rng.uniform(0.05, 0.95, 3), 'lower': rng.uniform(0.05, 0.95, 3),
             'head': np.array([0.85, 0.65, 0.5]) * rng.uniform(0.5, 1.1)}
  return dict(body=body, colours=colours, texture=_pattern(rng, (h, w)), texture_gain=rng.uniform(0.1, 0.3),
              scene=_scene(rng, (int(h * 1.2), int(w * 1.6))))


def render_clip(cls: str, group: dict, rng: np.random.Generator, num_frames: int,
                frame_hw: tuple[int, int]) -> np.ndarray:
  """RGB uint8 frames [T, H, W, 3] of one clip: the group's actor doing `cls` in the group's scene."""
  h, w = frame_hw
  size = h * rng.uniform(0.45, 0.7)              # actor height in pixels
  centre = np.array([w * rng.uniform(0.38, 0.62), h * rng.uniform(0.62, 0.72)])  # hip position
  mirror = rng.random() < 0.5
  period = rng.uniform(14, 26)                   # frames per cycle (speed)
  phase0 = rng.uniform(0, 2 * math.pi)
  roll = rng.uniform(-8, 8)
  scene = group['scene']
  pan = rng.uniform(-0.6, 0.6)                   # scene pixels per frame
  sx0 = rng.uniform(0, scene.shape[1] - w - abs(pan) * num_frames)
  if pan < 0:
    sx0 += abs(pan) * num_frames
  sy0 = int(rng.uniform(0, scene.shape[0] - h))
  rot_m = cv2.getRotationMatrix2D((w / 2, h / 2), roll, 1.0)
  thickness = max(2, int(round(group['body']['width'] * size)))
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
    frame = scene[sy0:sy0 + h, x:x + w].copy()
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
    group = _group(seed, g, (height, width))
    for label, cls in enumerate(classes):
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
