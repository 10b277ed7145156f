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
  panels = [k for k in ('loss', 'knn_category_acc', 'pairs_per_sec') if any(k in r for r in rows)]
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


TABLE1_TITLE = 'Table 1: zero-shot 9-DoF box fitting, 3D AP@0.5 (fraction of queries with 3D IoU > 0.5)'
TABLE2_TITLE = 'Table 2: classification accuracy (%), 3D mAP (overall AP@0.5) and Re-ID mAP'
TABLE2_COLUMNS = {'method': 'Method', 'classif_acc': 'Classif. Acc.', 'overall_3d_ap': '3D mAP',
                  'reid_map': 'Re-ID mAP', 'reid_top1': 'Re-ID top-1', 'frame_jitter': 'Top-1 frame jitter'}


def write_tables(workdir: str, table1: list[dict], table2: list[dict], categories) -> dict[str, str]:
  """table1.{md,csv}: one row per method, per-category AP@0.5 + overall; table2.{md,csv}: Table 2 layout."""
  cols1 = ['method'] + [c for c in categories if any(c in r for r in table1)] + ['overall']
  out = {
      'table1_csv': write_csv(os.path.join(workdir, 'table1.csv'), table1, cols1),
      'table1_md': write_markdown(os.path.join(workdir, 'table1.md'), table1, cols1, TABLE1_TITLE),
  }
  if table2:
    renamed = [{TABLE2_COLUMNS[k]: v for k, v in r.items()} for r in table2]
    cols2 = list(TABLE2_COLUMNS.values())
    out['table2_csv'] = write_csv(os.path.join(workdir, 'table2.csv'), table2, list(TABLE2_COLUMNS))
    out['table2_md'] = write_markdown(os.path.join(workdir, 'table2.md'), renamed, cols2, TABLE2_TITLE)
  return out


def plot_ap_curve(path: str, thresholds, ap, azimuth_error: float, elevation_error: float) -> str:
  """Objectron-style AP vs 3D IoU threshold, with the mean viewpoint errors in the title."""
  fig, ax = plt.subplots(figsize=(4.5, 3.2))
  ax.plot(thresholds, ap, marker='.')
  ax.set_xlabel('3D IoU threshold')
  ax.set_ylabel('AP')
  ax.set_ylim(0, 1.02)
  ax.grid(alpha=0.3)
  ax.set_title(f'azimuth err {azimuth_error:.1f}°, elevation err {elevation_error:.1f}°', fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def read_csv(path: str) -> list[dict]:
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  for r in rows:
    for k, v in r.items():
      try:
        r[k] = float(v)
      except (TypeError, ValueError):
        pass
  return rows


def combine_tables(workdirs: list[str], out_dir: str, categories) -> dict[str, str]:
  """One Table 1 and one Table 2 from several evaluated runs (e.g. nearby, distant, same-frame, NT-Xent,
  TCN), as in the paper: each run's own rows, and the baseline rows (random fit, random embeddings, ...)
  once, from the first run that has them, since they do not depend on the training."""
  t1, t2, seen = [], [], set()
  for w in workdirs:
    for name, rows in (('table1.csv', t1), ('table2.csv', t2)):
      path = os.path.join(w, name)
      if not os.path.exists(path):
        raise FileNotFoundError(f'{path} not found: evaluate {w} first (--config.mode=eval)')
      for r in read_csv(path):
        if (name, r['method']) not in seen:
          seen.add((name, r['method']))
          rows.append(r)
  os.makedirs(out_dir, exist_ok=True)
  return write_tables(out_dir, t1, t2, categories)


def main(argv=None) -> None:
  import argparse  # pylint: disable=g-import-not-at-top
  from input_pipeline.formats.frame_record import CATEGORIES  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser(description='Combine the tables of several evaluated workdirs.')
  p.add_argument('--workdirs', nargs='+', required=True)
  p.add_argument('--out', required=True)
  args = p.parse_args(argv)
  for key, path in sorted(combine_tables(args.workdirs, args.out, CATEGORIES).items()):
    print(f'{key}: {path}')


if __name__ == '__main__':
  main()
