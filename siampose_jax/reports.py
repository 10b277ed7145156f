"""Files a run leaves in its workdir: metrics tables (CSV/Markdown) and PNG plots."""
from __future__ import annotations

import csv
import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def read_jsonl(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def write_csv(path: str, rows: list[dict], columns: list[str] | None = None) -> str:
  columns = columns or sorted({k for r in rows for k in r}, key=lambda k: (k != 'step', k))
  with open(path, 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=columns)
    w.writeheader()
    for r in rows:
      w.writerow({k: r.get(k, '') for k in columns})
  return path


def write_markdown(path: str, rows: list[dict], columns: list[str], title: str = '',
                   fmt: str = '{:.2f}') -> str:
  def cell(v):
    return fmt.format(v) if isinstance(v, float) else str(v)
  lines = [f'# {title}', ''] if title else []
  lines += ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(cell(r.get(c, '')) for c in columns) + ' |' for r in rows]
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return path


def training_reports(workdir: str) -> dict[str, str]:
  """metrics.jsonl -> metrics.csv and training_curves.png (loss, online 1-NN accuracy, throughput)."""
  src = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(src):
    return {}
  rows = read_jsonl(src)
  out = {'metrics_csv': write_csv(os.path.join(workdir, 'metrics.csv'), rows)}
  panels = [k for k in ('loss', 'knn_category_acc', 'img_per_sec') if any(k in r for r in rows)]
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False)
  for ax, key in zip(axes[0], panels):
    pts = [(r['step'], r[key]) for r in rows if key in r]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='.' if len(pts) < 30 else None)
    ax.set_xlabel('step')
    ax.set_title(key)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  out['curves_png'] = os.path.join(workdir, 'training_curves.png')
  fig.savefig(out['curves_png'], dpi=100)
  plt.close(fig)
  return out
