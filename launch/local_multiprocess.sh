#!/usr/bin/env bash
# Rehearses a multi-host run on one machine: N CPU processes, one local coordinator.
#   launch/local_multiprocess.sh 2 --config=configs/distant.py:test --workdir=/tmp/mp
set -euo pipefail
n=${1:?number of processes}
shift
port=${SIAMPOSE_PORT:-12355}
pids=()
for ((i = 0; i < n; i++)); do
  SIAMPOSE_DISTRIBUTED=1 SIAMPOSE_COORDINATOR="localhost:$port" SIAMPOSE_NUM_PROCESSES="$n" \
    SIAMPOSE_PROCESS_ID="$i" JAX_PLATFORMS=cpu python -m siampose_jax.main "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
