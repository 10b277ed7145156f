#!/usr/bin/env bash
# One TPU VM worker's part of launch/tpu_vm.sh run|logs|stop, run there over ssh in the checkout that
# `tpu_vm.sh setup` unpacked (this script's parent directory):
#   worker.sh start ARGS...  starts `python -m siampose_jax.main ARGS` detached from the ssh session (its own
#                            session, SIGHUP ignored), output appended to logs/train.log, pid in logs/train.pid
#   worker.sh logs           follows logs/train.log, each line prefixed with this worker's host name
#   worker.sh stop           sends the run SIGTERM (it checkpoints the step in hand and exits 0), waits for it
set -euo pipefail
cd "$(dirname "$0")/.."
log=logs/train.log
pidfile=logs/train.pid
host=$(hostname)

running() {  # the recorded pid still runs siampose_jax.main (not a pid reused since)
  pid=$(cat "$pidfile" 2>/dev/null) && ps -o args= -p "$pid" | grep -q siampose_jax.main
}

case "${1:-}" in
  start)
    shift
    if running; then
      echo "$host: a run is going (pid $pid); stop it first (tpu_vm.sh stop)" >&2
      exit 1
    fi
    mkdir -p logs
    SIAMPOSE_DISTRIBUTED=1 setsid nohup .venv/bin/python -m siampose_jax.main "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    echo "$host: started pid $!, log $PWD/$log" ;;
  logs)
    tail -n 100 -F "$log" | sed -u "s/^/$host: /" ;;
  stop)
    if ! running; then
      echo "$host: no run going"
      exit 0
    fi
    kill -TERM "$pid"
    echo "$host: sent SIGTERM to pid $pid; waiting for it to checkpoint and exit"
    while running; do sleep 1; done
    echo "$host: stopped" ;;
  *) echo "usage: worker.sh start ARGS... | logs | stop" >&2; exit 2 ;;
esac
