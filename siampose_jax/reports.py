"""Files a run leaves in its workdir: metrics tables (CSV/Markdown) and PNG plots."""
from __future__ import annotations

import csv
import io
import json

import matplotlib
import numpy as np
from etils import epath

from input_pipeline.formats import paths

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def read_jsonl(path) -> list[dict]:
  return [json.loads(line) for line in epath.Path(path).read_text().splitlines() if line.strip()]


def write_csv(path, rows: list[dict], columns: list[str] | None = None) -> str:
  columns = columns or sorted({k for r in rows for k in r}, key=lambda k: (k != 'step', k))
  buf = io.StringIO(newline='')
  w = csv.DictWriter(buf, fieldnames=columns)
  w.writeheader()
  for r in rows:
    w.writerow({k: r.get(k, '') for k in columns})
  epath.Path(path).write_text(buf.getvalue())
  return str(path)


def write_npz(path, **arrays) -> str:
  """`np.savez` to `path` (local or gs://)."""
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  epath.Path(path).write_bytes(buf.getvalue())
  return str(path)


def read_npz(path) -> dict:
  """Every array of an `.npz` file at `path` (local or gs://)."""
  with np.load(io.BytesIO(epath.Path(path).read_bytes())) as z:
    return {k: z[k] for k in z.files}


def save_figure(fig, path) -> str:
  """A matplotlib figure as PNG at `path` (local or gs://), then closed."""
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=100)
  plt.close(fig)
  epath.Path(path).write_bytes(buf.getvalue())
  return str(path)


def write_markdown(path, rows: list[dict], columns: list[str], title: str = '',
                   fmt: str = '{:.2f}', notes: list[str] = ()) -> str:
  def cell(v):
    return fmt.format(v) if isinstance(v, float) else str(v)
  lines = [f'# {title}', ''] if title else []
  lines += ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(cell(r.get(c, '')) for c in columns) + ' |' for r in rows]
  if notes:
    lines += [''] + list(notes)
  epath.Path(path).write_text('\n'.join(lines) + '\n')
  return str(path)


def training_reports(workdir) -> dict[str, str]:
  """metrics.jsonl -> metrics.csv and training_curves.png (loss, online 1-NN accuracy and embedding rank,
  throughput)."""
  workdir = paths.resolve(workdir)
  src = workdir / 'metrics.jsonl'
  if not src.exists():
    return {}
  rows = read_jsonl(src)
  out = {'metrics_csv': write_csv(workdir / 'metrics.csv', rows)}
  panels = [k for k in ('loss', 'knn_category_acc', 'embedding_rank', 'pairs_per_sec')
            if any(k in r for r in rows)]
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False)
  for ax, key in zip(axes[0], panels):
    pts = [(r['step'], r[key]) for r in rows if key in r]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='.' if len(pts) < 30 else None)
    ax.set_xlabel('step')
    ax.set_title(key)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  out['curves_png'] = save_figure(fig, workdir / 'training_curves.png')
  return out


def read_csv(path) -> list[dict]:
  rows = list(csv.DictReader(io.StringIO(epath.Path(path).read_text(), newline='')))
  for r in rows:
    for k, v in r.items():
      try:
        r[k] = float(v)
      except (TypeError, ValueError):
        pass
  return rows
