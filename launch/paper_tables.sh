#!/usr/bin/env bash
# Trains and evaluates every method of the paper's Table 2 at one preset, then combines the tables.
#   launch/paper_tables.sh cpu runs/paper_cpu        (the paper's own setup: launch/paper_tables.sh paper DIR)
set -euo pipefail
preset=${1:?preset: paper | cpu | test}
root=${2:?output directory}
shift 2
dirs=()
for exp in nearby distant same_frame ntxent tcn; do
  spec="configs/$exp.py"
  [ "$preset" = paper ] || spec="$spec:$preset"
  python -m siampose_jax.main --config="$spec" --workdir="$root/$exp" "$@"
  dirs+=("$root/$exp")
done
python -m siampose_jax.reports --workdirs "${dirs[@]}" --out "$root"
