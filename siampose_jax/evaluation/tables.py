"""The paper's tables as files: Tables 1 and 2 (Objectron), Table 3 (UCF101), Objectron's AP curve, and
one table combined from several evaluated runs (`python -m siampose_jax.evaluation.tables`).

Each CSV row carries its `row` key (`methods.RowKey`, e.g. 'model', 'random_init/within_category'), by which
programs find rows; the `method` column and the Markdown tables hold the display names.
"""
from __future__ import annotations

import os

from input_pipeline.formats import paths
from siampose_jax.evaluation import methods
from siampose_jax.reports import plt, read_csv, save_figure, write_csv, write_markdown

TABLE1_TITLE = 'Table 1: zero-shot 9-DoF box fitting, 3D AP@0.5 (fraction of queries with 3D IoU > 0.5)'
TABLE1_EXTRA = {'failed_fits': 'Failed fits', 'rotation_error_median': 'Median rotation err. (°)',
                'azimuth_error': 'Azimuth err. (°)', 'elevation_error': 'Elevation err. (°)'}
TABLE1_NOTES = ('Rows marked "uses the label" pick neighbours among the query\'s own category (the oracle '
                'ceiling and the within-category diagnostics). Rotation error: the geodesic angle between the '
                'true and the fitted box rotation, minimised over the half turns that map a box onto itself '
                '(and over turns about the up axis for eval.symmetric_categories); its median over the '
                'queries. Azimuth and elevation errors (means) ignore those symmetries. Failed fits count as '
                '180° (rotation) and 180° / 90° (azimuth / elevation).',)
TABLE2_TITLE = 'Table 2: classification accuracy (%), 3D mAP (overall AP@0.5) and Re-ID mAP'
TABLE2_COLUMNS = {'method': 'Method', 'classif_acc': 'Classif. Acc.', 'overall_3d_ap': '3D mAP',
                  'reid_map': 'Re-ID mAP', 'reid_ap_self_excluded': 'Re-ID AP (self excluded)',
                  'reid_top1': 'Re-ID top-1', 'frame_jitter': 'Top-1 frame jitter',
                  'objectron_ap50': 'Objectron AP@0.5'}
TABLE2_NOTES = ('Re-ID mAP is the reference code\'s definition (query at similarity 0, kept in its ranking; '
                'trapezoidal area under recall/precision), comparable with the paper; Re-ID AP (self '
                'excluded) is the standard average precision. Objectron AP@0.5: Objectron\'s '
                'interpolated AP at IoU 0.5 with the 1-NN similarity as detection score, mean over '
                'categories.',)

def write_tables(workdir, table1: list[dict], table2: list[dict], categories,
                 notes: tuple[str, ...] = ()) -> dict[str, str]:
  """table1.{md,csv}: one row per method, per-category AP@0.5 + overall (+ fit failures and viewpoint
  errors); table2.{md,csv}: the paper's Table 2 columns, then extra, named ones. The CSVs lead with each
  row's key (`row`), the Markdown tables show display names only."""
  workdir = paths.resolve(workdir)
  cols1 = (['method'] + [c for c in categories if any(c in r for r in table1)] + ['overall']
           + [k for k in TABLE1_EXTRA if any(k in r for r in table1)])
  names1 = {'method': 'method', **TABLE1_EXTRA}
  renamed1 = [{names1.get(k, k): v for k, v in r.items()} for r in table1]
  out = {
      'table1_csv': write_csv(workdir / 'table1.csv', table1, ['row'] + cols1),
      'table1_md': write_markdown(workdir / 'table1.md', renamed1,
                                  [names1.get(c, c) for c in cols1], TABLE1_TITLE,
                                  notes=TABLE1_NOTES + tuple(notes)),
  }
  if table2:
    cols2 = [k for k in TABLE2_COLUMNS if k in ('method', 'classif_acc', 'overall_3d_ap', 'reid_map')
             or any(k in r for r in table2)]
    renamed = [{TABLE2_COLUMNS[k]: v for k, v in r.items() if k in TABLE2_COLUMNS} for r in table2]
    out['table2_csv'] = write_csv(workdir / 'table2.csv', table2, ['row'] + cols2)
    out['table2_md'] = write_markdown(workdir / 'table2.md', renamed,
                                      [TABLE2_COLUMNS[k] for k in cols2], TABLE2_TITLE,
                                      notes=TABLE2_NOTES + tuple(notes))
  return out


TABLE3_TITLE = 'Table 3: action retrieval on UCF101, top-k recall R@k (%)'
TABLE3_COLUMNS = {'method': 'Method', 'r1': 'R@1', 'r5': 'R@5', 'r10': 'R@10', 'r20': 'R@20', 'r50': 'R@50'}
TABLE3_NOTES = ('R@k: share of test clips with a training clip of their action among their k nearest '
                '(cosine) training clips. The paper reports R@1/5/10/20 = 41.4/57.3/62.1/66.2 on UCF101 '
                '(nearby pairs); R@50 is extra.',)


def write_table3(workdir, rows: list[dict], notes: tuple[str, ...] = ()) -> dict[str, str]:
  """table3.{md,csv}: one row per embedding, the paper's R@1/5/10/20 columns, then R@50."""
  workdir = paths.resolve(workdir)
  cols = [k for k in TABLE3_COLUMNS if k == 'method' or any(k in r for r in rows)]
  renamed = [{TABLE3_COLUMNS[k]: v for k, v in r.items() if k in TABLE3_COLUMNS} for r in rows]
  return {'table3_csv': write_csv(workdir / 'table3.csv', rows, ['row'] + cols),
          'table3_md': write_markdown(workdir / 'table3.md', renamed, [TABLE3_COLUMNS[k] for k in cols],
                                      TABLE3_TITLE, fmt='{:.1f}', notes=TABLE3_NOTES + tuple(notes))}


def plot_ap_curve(path, thresholds, curves: dict, title: str) -> str:
  """Objectron-style AP vs 3D IoU threshold: the mean over categories bold, each category thin."""
  fig, ax = plt.subplots(figsize=(5.0, 3.4))
  for name, ap in curves.items():
    if name != 'mean':
      ax.plot(thresholds, ap, lw=0.8, alpha=0.6, label=name)
  ax.plot(thresholds, curves['mean'], 'k', lw=2, marker='.', label='mean')
  ax.set_xlabel('3D IoU threshold')
  ax.set_ylabel('AP')
  ax.set_ylim(0, 1.02)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=6, ncol=2)
  ax.set_title(title, fontsize=7)
  fig.tight_layout()
  return save_figure(fig, path)


def combine_tables(workdirs: list[str], out_dir: str, categories) -> dict[str, str]:
  """One Table 1 and one Table 2 from several evaluated runs (e.g. nearby, distant, same-frame, NT-Xent,
  TCN), as in the paper. Each run's own rows are kept (named after the run when two runs share a name).
  A baseline row (random fits, oracle, random/ImageNet embeddings) is kept once when it is identical in
  every run that has it, which a note under the table says; runs whose baselines differ (other data or
  seeds) keep theirs, each named after its run."""
  tables = {'table1.csv': [], 'table2.csv': []}
  for w in workdirs:
    for name, rows in tables.items():
      path = paths.resolve(w) / name
      if not path.exists():
        raise FileNotFoundError(f'{path} not found: evaluate {w} first (--config.mode=eval)')
      rows.extend((os.path.basename(os.path.normpath(w)), r) for r in read_csv(path))
  combined, notes = {}, []
  for name, rows in tables.items():
    out, seen = [], set()
    for run, r in rows:
      same_key = [x for _, x in rows if x['row'] == r['row']]
      if methods.RowKey.parse(r['row']).source != methods.MODEL and all(x == same_key[0] for x in same_key):
        if r['row'] not in seen:
          seen.add(r['row'])
          out.append(r)
          if len(same_key) > 1:
            notes.append(f'"{r["method"]}" is identical in the {len(same_key)} runs that have it.')
      else:
        same_name = [x for _, x in rows if x['method'] == r['method']]
        out.append(dict(r, method=f'{r["method"]} [{run}]') if len(same_name) > 1 else r)
    combined[name] = out
  paths.resolve(out_dir).mkdir(parents=True, exist_ok=True)
  return write_tables(out_dir, combined['table1.csv'], combined['table2.csv'], categories,
                      notes=tuple(sorted(set(notes))))


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
