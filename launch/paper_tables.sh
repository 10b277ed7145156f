#!/usr/bin/env bash
# Every method of the paper's Table 2 at one preset, over seeds, with the claims tested: a thin wrapper over
# the experiment runner (rerunning the same command resumes an interrupted sweep).
#   launch/paper_tables.sh cpu runs/paper_cpu --seeds=5   (results: results/cpu/)
set -euo pipefail
preset=${1:?preset: paper | cpu | test}
root=${2:?output directory}
shift 2
exec python -m siampose_jax.experiments.paper_tables --preset="$preset" --workdir="$root" "$@"
