"""Figures of what the embeddings learned, from the files the evaluation leaves in a workdir.

    python -m siampose_jax.evaluation.figures --workdir=DIR [--what=pca,neighbours,boxes,failures]

Each kind becomes `DIR/viz_<kind>.png` and an image in `DIR/tensorboard` (tag `viz/<kind>`):
  pca         per test video, its embeddings projected on their first two principal components, points
              coloured by time (hue) with crop thumbnails at a few of them: the poster's trajectories;
  neighbours  a few test queries with their top-k neighbours among all frames (train + test, the query
              itself excluded), for 'entire dataset' and 'other videos only' retrieval;
  boxes       per category the best, median and worst fit: the query frame with its ground-truth box in
              green and the fitted box in white, beside the training frame whose box was transferred;
  failures    the fits that missed (IoU <= 0.5), grouped by cause (`failure_causes`).
The inputs are `eval_embeddings.npz` and `eval_fits.npz` (written by `objectron.evaluate`) and the frames of
the frame store they name; nothing is re-embedded or re-fitted. Grid figures are composed in pixels at
1:1 (`Panel` says where each frame sits), so drawn box edges stay pure colours in the PNG.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import jax
import matplotlib
import numpy as np
from absl import app, flags
from jax.sharding import Mesh

from input_pipeline.formats import geometry, paths
from input_pipeline.store import crops, frame_store
from siampose_jax import checkpointing, encoder, progress, reports, sharding
from siampose_jax.evaluation import knn, metrics

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: E402

KINDS = ('pca', 'neighbours', 'boxes', 'failures')
EMBEDDINGS_FILE, FITS_FILE = 'eval_embeddings.npz', 'eval_fits.npz'
GREEN, WHITE = (0, 255, 0), (255, 255, 255)   # ground truth, fitted (the poster's colours)
BACKGROUND = (225, 225, 225)                  # grey, so that white edges stand out from it
IOU_THRESHOLD = 0.5                           # the paper's AP@0.5: at or below it a fit counts as a miss
# failure_causes: an error counts once it reaches these (30 degrees, 1.5x in size, a quarter of the height).
ORIENTATION_DEG, SCALE_RATIO, GROUND_FRACTION = 30.0, 1.5, 0.25
_DPI, _CAPTION_PX, _LABEL_PX = 100, 30, 150


class Panel(NamedTuple):
  """Where one frame is drawn in a grid figure: PNG pixels `extent` (x0, y0, x1, y1) show the frame's
  pixels `window` (x0, y0, x1, y1; the full frame is (0, 0, width, height))."""
  split: str
  record: int
  query: int        # index into the evaluation's queries (-1 for a gallery frame)
  window: tuple
  extent: tuple


class Figure(NamedTuple):
  """One written figure; `panels` locate its frames (grid figures only)."""
  path: str
  image: np.ndarray  # RGB uint8, as written
  panels: list


# ---------------------------------------------------------------------------------------------- inputs
def parse_what(what) -> tuple[str, ...]:
  """'pca,boxes' (or a sequence) -> the kinds, checked against KINDS."""
  kinds = [k.strip() for k in (what.split(',') if isinstance(what, str) else what) if k.strip()]
  bad = [k for k in kinds if k not in KINDS]
  if bad or not kinds:
    problem = f'unknown figure kind(s) {bad}' if bad else 'no figure kind'
    raise ValueError(f'--what={what!r}: {problem}; expected a comma-separated subset of {",".join(KINDS)}')
  return tuple(dict.fromkeys(kinds))


def _load_npz(workdir, name) -> dict:
  path = paths.resolve(workdir) / name
  if not path.exists():
    raise FileNotFoundError(f'{path} not found: run the evaluation first (--config.mode=eval) so that it '
                            f'writes {name}')
  return reports.read_npz(path)


class Frames:
  """Frames and object crops of the evaluated store, read (and decoded) once each."""

  def __init__(self, store_path: str, crop_margin: float):
    self.store, self.margin, self._cache = frame_store.open_store(store_path), crop_margin, {}

  def record(self, split: str, index: int) -> dict:
    key = (split, int(index))
    if key not in self._cache:
      self._cache[key] = self.store[key]
    return self._cache[key]

  def crop(self, split: str, index: int, size: int) -> np.ndarray:
    """The evaluation's object crop of a frame (its keypoint window, see `crops`), at `size` pixels."""
    rec = self.record(split, index)
    window = crops.crop_window(rec['point_2d'], rec['image'].shape[:2], self.margin)
    return crops.crop_and_resize(rec['image'], window, size)


# ---------------------------------------------------------------------------------------------- drawing
def draw_box(image: np.ndarray, point_2d, colour, thickness: int = 2) -> np.ndarray:
  """Draws the 12 edges (geometry.EDGES) of a box's projected keypoints [9, >=2] (normalised u, v; a third
  column, depth, drops edges with a corner behind the camera) on an RGB image, in place; NaN draws nothing."""
  p = np.asarray(point_2d, np.float64)
  h, w = image.shape[:2]
  xy = np.clip(p[:, :2] * (w, h), -1e6, 1e6)
  front = np.all(np.isfinite(p), axis=1) & ((p[:, 2] > 0) if p.shape[1] > 2 else True)
  for a, b in geometry.EDGES:
    if front[a] and front[b]:
      cv2.line(image, tuple(int(round(v)) for v in xy[a]), tuple(int(round(v)) for v in xy[b]), colour,
               thickness, cv2.LINE_8)
  return image


def _box_window(points_2d, hw, grow=0.2):
  """Pixel window around the in-view parts of some projected boxes (grown), or the full frame."""
  h, w = hw
  p = np.concatenate([np.asarray(p, np.float64)[:, :3] for p in points_2d])
  p = p[np.all(np.isfinite(p), axis=1) & ((p[:, 2] > 0) if p.shape[1] > 2 else True)]  # in front only
  xy = np.clip(p[:, :2] * (w, h), 0, (w, h))
  if len(xy) == 0:
    return 0, 0, w, h
  lo, hi = xy.min(0), xy.max(0)
  pad = (hi - lo) * grow + 4
  x0, y0 = np.maximum(lo - pad, 0).astype(int)
  x1, y1 = np.minimum(hi + pad, (w, h)).astype(int)
  return (int(x0), int(y0), int(x1), int(y1)) if x1 - x0 > 8 and y1 - y0 > 8 else (0, 0, w, h)


def framed(image, boxes, size):
  """A frame zoomed on its boxes [(point_2d, colour)] to fit `size` (height, width) pixels, edges drawn
  after resizing (so they keep their colour): returns (image, window)."""
  window = _box_window([p for p, _ in boxes], image.shape[:2])
  x0, y0, x1, y1 = window
  scale = min(size[0] / (y1 - y0), size[1] / (x1 - x0))
  out = cv2.resize(image[y0:y1, x0:x1], (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
                   interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
  full_w, full_h = image.shape[1] * scale, image.shape[0] * scale  # the frame at this zoom, unshifted
  for p, colour in boxes:
    p = np.array(p, np.float64)
    p[:, 0] = (p[:, 0] * full_w - x0 * scale) / out.shape[1]
    p[:, 1] = (p[:, 1] * full_h - y0 * scale) / out.shape[0]
    draw_box(out, p, colour)
  return out, window


class Cell(NamedTuple):
  image: np.ndarray
  caption: str = ''
  colour: str = 'black'
  panel: tuple | None = None  # (split, record, query, window) when the cell shows a frame


def _compose(rows, row_labels, title, cell_hw, groups=()):
  """Grid of cells at 1:1 on a grey canvas, captions under the cells, labels left of the rows and column
  groups [(number of columns, header)] set apart; returns (RGB array, panels)."""
  ch, cw = cell_hw
  ncol = max(len(r) for r in rows)
  groups = list(groups) or [(ncol, '')]
  groups.append((max(0, ncol - sum(n for n, _ in groups)), ''))
  xs, headers, x = [], [], _LABEL_PX
  for n, header in groups:
    headers.append((x + n * (cw + 6) / 2, header))
    xs += [x + j * (cw + 6) for j in range(n)]
    x += n * (cw + 6) + 18
  top = 56 if any(h for _, h in groups) else 40
  width, height = x, top + len(rows) * (ch + _CAPTION_PX + 6)
  canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
  texts = [(hx, top - 16, header, 'black', 9, 'center') for hx, header in headers if header]
  panels = []
  for i, row in enumerate(rows):
    y = top + i * (ch + _CAPTION_PX + 6)
    texts.append((6, y + ch / 2, row_labels[i], 'black', 8, 'left'))
    for j, cell in enumerate(row):
      img = cell.image
      s = min(ch / img.shape[0], cw / img.shape[1], 1.0)
      if s < 1:
        img = cv2.resize(img, (max(1, int(img.shape[1] * s)), max(1, int(img.shape[0] * s))),
                         interpolation=cv2.INTER_AREA)
      xx, yy = xs[j] + (cw - img.shape[1]) // 2, y + (ch - img.shape[0]) // 2
      canvas[yy:yy + img.shape[0], xx:xx + img.shape[1]] = img
      texts.append((xs[j] + cw / 2, y + ch + 3, cell.caption, cell.colour, 7, 'center'))
      if cell.panel is not None:
        panels.append(Panel(*cell.panel, extent=(xx, yy, xx + img.shape[1], yy + img.shape[0])))
  fig = plt.figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
  ax = fig.add_axes((0, 0, 1, 1))
  ax.imshow(canvas, interpolation='nearest', aspect='auto')
  ax.set_axis_off()
  fig.text(0.5, 1 - 12 / height, title, ha='center', va='top', fontsize=11)
  for x, y, text, colour, size, ha in texts:
    fig.text(x / width, 1 - y / height, text, ha=ha, va='top' if ha == 'center' else 'center',
             color=colour, fontsize=size, linespacing=1.0)
  return _rgb(fig), panels


def _rgb(fig) -> np.ndarray:
  fig.canvas.draw()
  out = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  plt.close(fig)
  return out


def _short(video_id: str) -> str:
  return str(video_id).replace('/batch-', '/b')


# ---------------------------------------------------------------------------------------------- figures
def _pick_videos(video_id, category, n):
  """Up to n test videos, taking the categories in turn, so that one figure shows several of them."""
  by_cat = {}
  for v, c in dict.fromkeys(zip(video_id, category)):
    by_cat.setdefault(c, []).append(v)
  picked, depth = [], 0
  while len(picked) < n and any(depth < len(v) for v in by_cat.values()):
    picked += [v[depth] for v in by_cat.values() if depth < len(v)][:n - len(picked)]
    depth += 1
  return picked


def pca_figure(emb, frames, num_videos=6, thumbs=4):
  """Per video: its embeddings on their own first two principal components (numpy SVD), hue = time."""
  videos = _pick_videos(emb['video_id'], emb['category'], num_videos)
  cols = min(3, len(videos))
  fig, axes = plt.subplots(-(-len(videos) // cols), cols, figsize=(4.2 * cols, 3.9 * -(-len(videos) // cols)),
                           dpi=_DPI, squeeze=False)
  for ax in axes.flat[len(videos):]:
    ax.set_axis_off()
  for ax, video in zip(axes.flat, videos):
    idx = np.flatnonzero(emb['video_id'] == video)
    idx = idx[np.argsort(emb['frame_index'][idx], kind='stable')]
    x = emb['embeddings'][idx] - emb['embeddings'][idx].mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    xy = u[:, :2] * s[:2] if len(idx) > 1 else np.zeros((len(idx), 2))
    xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    explained = (s[:2] ** 2).sum() / max((s ** 2).sum(), 1e-12)
    t = np.linspace(0, 0.85, len(idx))  # hue by time, stopping short of red again
    ax.plot(xy[:, 0], xy[:, 1], '-', color='0.7', lw=1, zorder=1)
    ax.scatter(xy[:, 0], xy[:, 1], c=plt.cm.hsv(t), s=40, edgecolors='k', linewidths=0.4, zorder=2)
    for k in np.unique(np.linspace(0, len(idx) - 1, min(thumbs, len(idx))).round().astype(int)):
      crop = frames.crop('test', emb['record'][idx[k]], 48)
      box = OffsetImage(crop, zoom=0.7)
      ax.add_artist(AnnotationBbox(box, xy[k], xybox=(32, 32), boxcoords='offset points', pad=0.15,
                                   bboxprops=dict(edgecolor=plt.cm.hsv(t[k]), lw=2),
                                   arrowprops=dict(arrowstyle='-')))
    ax.set_title(f'{video} ({len(idx)} frames, PC1+2: {explained:.0%})', fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.margins(0.3)
  fig.suptitle('Test videos in embedding space (PCA per video; hue = time, red -> magenta)', fontsize=11)
  fig.tight_layout()
  return _rgb(fig), []


def neighbour_grid(emb, frames, num_queries=6, k=4, size=88):
  """Top-k neighbours of a few queries (the middle frame of videos of different categories) among every
  frame, self excluded: 'entire dataset' (same-video frames allowed) and 'other videos only'."""
  pool = np.concatenate([emb['gallery_embeddings'], emb['embeddings']])
  n_gal = len(emb['gallery_embeddings'])
  split = np.array(['train'] * n_gal + ['test'] * len(emb['embeddings']))
  record = np.concatenate([emb['gallery_record'], emb['record']])
  video = np.concatenate([emb['gallery_video_id'], emb['video_id']])
  category = np.concatenate([emb['gallery_category'], emb['category']])
  queries = []
  for v in _pick_videos(emb['video_id'], emb['category'], num_queries):
    idx = np.flatnonzero(emb['video_id'] == v)
    queries.append(idx[np.argsort(emb['frame_index'][idx])][len(idx) // 2])
  queries = np.asarray(queries)
  k = min(k, len(pool) - 1)
  mesh = Mesh(np.asarray(jax.local_devices()[:1]), (sharding.DATA_AXIS,))  # a few queries, this process only
  results = [knn.knn(emb['embeddings'][queries], pool, k, mesh=mesh, query_groups=n_gal + queries,
                     gallery_groups=np.arange(len(pool)), exclude_same_group=True),
             knn.knn(emb['embeddings'][queries], pool, k, mesh=mesh, query_groups=emb['video_id'][queries],
                     gallery_groups=video, exclude_same_group=True)]
  rows, labels = [], []
  for r, q in enumerate(queries):
    row = [Cell(frames.crop('test', emb['record'][q], size), f'query\n{_short(emb["video_id"][q])}', 'blue',
                ('test', int(emb['record'][q]), int(q), None))]
    for mode, (scores, nn) in zip(('entire', 'other'), results):
      for j in range(k):
        n = nn[r, j]
        if n < 0:
          continue
        colour = ('blue' if video[n] == emb['video_id'][q] else
                  'black' if category[n] == emb['category'][q] else 'red')
        row.append(Cell(frames.crop(split[n], record[n], size), f'{scores[r, j]:.3f}\n{_short(video[n])}',
                        colour, (split[n], int(record[n]), int(n) - n_gal, None)))
    rows.append(row)
    labels.append(str(emb['category'][q]))
  title = 'Nearest neighbours: cosine similarity, video (blue = the query\'s own video, red = another category)'
  return _compose(rows, labels, title, (size, size + 14),
                  [(1, 'query'), (k, 'entire dataset'), (k, 'other videos only')])


def _fit_cells(i, emb, fits, frames, size, label):
  """The query frame (ground truth green, fit white) and the neighbour frame (its own box, white)."""
  rec = frames.record('test', emb['record'][i])
  query, window = framed(rec['image'], [(fits['point_2d'][i], GREEN), (fits['fitted_point_2d'][i], WHITE)],
                         size)
  n = int(fits['neighbour'][i])
  nrec = frames.record('train', emb['gallery_record'][n])
  neighbour, nwindow = framed(nrec['image'], [(fits['neighbour_point_2d'][i], WHITE)], size)
  why = str(fits['failure'][i]).replace('_', ' ')
  return [Cell(query, f'{label}IoU {fits["iou"][i]:.2f}{" (" + why + ")" if why else ""}\n'
                      f'{_short(emb["video_id"][i])} f{emb["frame_index"][i]}', 'black',
               ('test', int(emb['record'][i]), int(i), window)),
          Cell(neighbour, f'neighbour, sim {fits["similarity"][i]:.2f}\n{_short(emb["gallery_video_id"][n])} '
                          f'f{emb["gallery_frame_index"][n]}',
               'black' if emb['gallery_category'][n] == emb['category'][i] else 'red',
               ('train', int(emb['gallery_record'][n]), -1, nwindow))]


def box_grid(emb, fits, frames, height=150):
  """Per category: the best, median and worst fitted query (failed fits are on the failures page)."""
  rows, labels = [], []
  for c in dict.fromkeys(emb['category']):
    idx = np.flatnonzero(emb['category'] == c)
    fitted = idx[fits['failure'][idx] == '']
    pool = fitted if len(fitted) else idx
    order = pool[np.argsort(-fits['iou'][pool], kind='stable')]
    row = []
    for i in (order[0], order[len(order) // 2], order[-1]):
      row += _fit_cells(i, emb, fits, frames, (height, int(height * 1.1)), '')
    rows.append(row)
    ap = metrics.ap_at_threshold(fits['iou'][idx])
    labels.append(f'{c}\n{len(fitted)} of {len(idx)} fitted\nAP@0.5 {ap:.2f}')
  return _compose(rows, labels, 'Ground truth (green) and fitted box (white) beside the neighbour whose box '
                  'was transferred', (height, int(height * 1.1)), [(2, 'best'), (2, 'median'), (2, 'worst')])


def failure_causes(fitted_3d, true_3d, iou, failure, threshold=IOU_THRESHOLD):
  """Why each fit missed (IoU <= threshold, as metrics.ap_at_threshold counts): '' for hits, 'fit failed:
  <reason>' where the evaluation recorded one (boxfit.FAILURES), else the largest of three errors between the
  fitted box and the ground truth (geometry.box_parameters of each), each divided by the size from which it
  alone explains a miss:
    orientation   the smallest angle turning one box onto the other (a box maps onto itself under half turns
                  about its axes, so those are tried too), over ORIENTATION_DEG;
    scale         |log| of the ratio of their volumes' cube roots (linear size), over log(SCALE_RATIO);
    ground plane  how far the fitted box's bottom face sits above or below the true one along the true up
                  axis (+y), as a fraction of the true height, over GROUND_FRACTION (a floating or sunken box:
                  the neighbour's height above its own plane did not carry over).
  'unclear' when none reaches 1 (several smaller errors together)."""
  failure = np.asarray(failure).astype(str)
  cause = np.where(failure != '', np.char.add('fit failed: ', np.char.replace(failure, '_', ' ')), '')
  cause = cause.astype(object)
  low = np.flatnonzero((failure == '') & (np.asarray(iou) <= threshold))
  if len(low) == 0:
    return cause
  r_fit, t_fit, s_fit = geometry.box_parameters(np.asarray(fitted_3d)[low])
  r_gt, t_gt, s_gt = geometry.box_parameters(np.asarray(true_3d)[low])
  flips = np.array([np.diag(d) for d in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))], np.float64)
  relative = np.einsum('nji,njk,fkl->nfil', r_gt, r_fit, flips)
  cos = (np.trace(relative, axis1=-2, axis2=-1) - 1) / 2
  orientation = np.degrees(np.arccos(np.clip(cos, -1, 1))).min(axis=1) / ORIENTATION_DEG
  scale = np.abs(np.log(np.prod(s_fit, -1) / np.prod(s_gt, -1))) / 3 / np.log(SCALE_RATIO)
  up = r_gt[..., 1]
  bottom = lambda r, t, s: t - r[..., 1] * s[..., 1:2] / 2  # noqa: E731
  ground = (np.abs(np.sum((bottom(r_fit, t_fit, s_fit) - bottom(r_gt, t_gt, s_gt)) * up, -1))
            / s_gt[:, 1] / GROUND_FRACTION)
  errors = np.stack([orientation, scale, ground], axis=1)
  names = np.array(['orientation', 'scale', 'ground plane'], object)
  cause[low] = np.where(errors.max(1) >= 1, names[errors.argmax(1)], 'unclear')
  return cause


def failure_grid(emb, fits, frames, per_cause=3, height=130):
  """The misses grouped by `failure_causes`, the largest groups first, the lowest-similarity
  examples of each (the ones the 1-NN score itself flags)."""
  cause = failure_causes(fits['fitted_point_3d'], fits['point_3d'], fits['iou'], fits['failure'])
  names, counts = np.unique(cause[cause != ''].astype(str), return_counts=True)
  rows, labels = [], []
  for name in names[np.argsort(-counts, kind='stable')]:
    idx = np.flatnonzero(cause == name)
    row = []
    for i in idx[np.argsort(fits['similarity'][idx], kind='stable')][:per_cause]:
      row += _fit_cells(i, emb, fits, frames, (height, int(height * 1.1)), '')
    rows.append(row)
    wrapped = name.replace(': ', ':\n')
    labels.append(f'{wrapped}\n{len(idx)} of {len(cause)} queries')
  if not rows:
    rows, labels = [[Cell(np.full((height, height, 3), BACKGROUND, np.uint8), 'no misses')]], ['']
  title = (f'Misses (IoU <= {IOU_THRESHOLD}) by cause: green = ground truth, white = fit | neighbour '
           '(causes: siampose_jax.evaluation.figures.failure_causes)')
  return _compose(rows, labels, title, (height, int(height * 1.1)), [(2, '')] * per_cause)


# ---------------------------------------------------------------------------------------------- entry
def make_figures(workdir, what=KINDS, config=None, write_tensorboard: bool = True) -> dict[str, Figure]:
  """Draws the requested kinds from a workdir's evaluation files, writes PNGs (and TensorBoard images).
  `config` (default: the workdir's config.json) gives the crop margin the evaluation used."""
  kinds = parse_what(what)
  emb = _load_npz(workdir, EMBEDDINGS_FILE)
  fits = _load_npz(workdir, FITS_FILE) if {'boxes', 'failures'} & set(kinds) else None
  config = config or encoder.load_config(workdir)
  try:
    frames = Frames(str(emb['store']), config.data.crop_margin)
  except FileNotFoundError as e:
    raise FileNotFoundError(f'the frame store that {EMBEDDINGS_FILE} names is not readable here: {e}') from e
  draw = {'pca': lambda: pca_figure(emb, frames), 'neighbours': lambda: neighbour_grid(emb, frames),
          'boxes': lambda: box_grid(emb, fits, frames), 'failures': lambda: failure_grid(emb, fits, frames)}
  out = {}
  for kind in kinds:
    image, panels = draw[kind]()
    path = paths.resolve(workdir) / f'viz_{kind}.png'
    path.write_bytes(cv2.imencode('.png', image[..., ::-1])[1].tobytes())
    out[kind] = Figure(str(path), image, panels)
  if write_tensorboard:
    ckpt = checkpointing.checkpoint_dir(workdir)
    steps = [int(p.name) for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.exists() else []
    writer = progress.ScalarWriter(paths.resolve(workdir) / 'tensorboard')
    writer.write_images(max(steps, default=0), {f'viz/{k}': f.image for k, f in out.items()})
    writer.close()
  return out


def visualize(workdir, what=KINDS, config=None) -> dict[str, str]:
  """The written PNG paths, keyed like the other outputs of a run ('viz_<kind>_png')."""
  return {f'viz_{k}_png': f.path for k, f in make_figures(workdir, what, config).items()}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    written = visualize(flags.FLAGS.workdir, parse_what(flags.FLAGS.what))
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(str(e)) from e
  for name, path in sorted(written.items()):
    print(f'  {name}: {path}')


if __name__ == '__main__':  # flags defined here only: siampose_jax.main, which imports this module, has its own
  flags.DEFINE_string('workdir', None, 'A workdir evaluated by siampose_jax.main (eval_*.npz).')
  flags.DEFINE_string('what', ','.join(KINDS), f'Comma-separated figure kinds: {",".join(KINDS)}.')
  flags.mark_flags_as_required(['workdir'])
  app.run(main)
