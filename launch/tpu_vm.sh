#!/usr/bin/env bash
# Cloud TPU VM lifecycle for siampose-jax (see launch/README.md):
#   launch/tpu_vm.sh [--dry-run] create NAME ZONE TYPE | setup NAME ZONE | run NAME ZONE ARGS...
#                               | logs NAME ZONE [WORKER] | stop NAME ZONE | delete NAME ZONE
# run starts training detached on every worker (launch/worker.sh: it outlives the ssh session), logs follows
# the workers' logs, stop sends the run SIGTERM (it checkpoints, then exits) and waits for it to end.
# --dry-run prints each command (shell-quoted, one per line) instead of running it.
set -euo pipefail
dry_run=0
if [ "${1:-}" = --dry-run ]; then
  dry_run=1
  shift
fi
usage='usage: tpu_vm.sh [--dry-run] create|setup|run|logs|stop|delete NAME ZONE [...]'
cmd=${1:?$usage}
name=${2:?TPU VM name}
zone=${3:?zone, e.g. us-central2-b}
shift 3
repo=$(cd "$(dirname "$0")/.." && pwd)
tarball=/tmp/siampose_jax.tgz

quote() {  # one argument as the shell reads it back: bare when plain, else single-quoted
  if [[ $1 =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then printf '%s' "$1"; else printf '%s' "${1@Q}"; fi
}
do_run() {  # runs its arguments, or prints them with --dry-run
  if [ "$dry_run" = 1 ]; then
    quote "$1"
    shift
    for arg in "$@"; do printf ' '; quote "$arg"; done
    printf '\n'
  else
    "$@"
  fi
}
ssh_on() { do_run gcloud compute tpus tpu-vm ssh "$name" --zone="$zone" --worker="$1" --command="$2"; }
ssh_all() { ssh_on all "$1"; }

case "$cmd" in
  create)
    do_run gcloud compute tpus tpu-vm create "$name" --zone="$zone" \
      --accelerator-type="${1:?accelerator type, e.g. v4-32}" --version="${TPU_VERSION:-tpu-ubuntu2204-base}" ;;
  setup)
    do_run tar -C "$repo" --exclude=.venv --exclude=.git --exclude=runs -czf "$tarball" .
    do_run gcloud compute tpus tpu-vm scp "$tarball" "$name":~/ --zone="$zone" --worker=all
    ssh_all 'mkdir -p ~/siampose_jax && tar -C ~/siampose_jax -xzf ~/siampose_jax.tgz && cd ~/siampose_jax && python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[tpu]"' ;;
  run)
    args=$(printf ' %q' "$@")
    ssh_all "cd ~/siampose_jax && bash launch/worker.sh start$args" ;;
  logs)
    ssh_on "${1:-all}" 'cd ~/siampose_jax && bash launch/worker.sh logs' ;;
  stop)
    ssh_all 'cd ~/siampose_jax && bash launch/worker.sh stop' ;;
  delete)
    do_run gcloud compute tpus tpu-vm delete "$name" --zone="$zone" --quiet ;;
  *) echo "unknown command $cmd; $usage" >&2; exit 2 ;;
esac
