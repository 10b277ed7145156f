#!/usr/bin/env bash
# Cloud TPU VM lifecycle for siampose-jax: create | setup | run | delete (see launch/README.md).
set -euo pipefail
cmd=${1:?usage: tpu_vm.sh create|setup|run|delete NAME ZONE [...]}
name=${2:?TPU VM name}
zone=${3:?zone, e.g. us-central2-b}
shift 3
repo=$(cd "$(dirname "$0")/.." && pwd)
ssh_all() { gcloud compute tpus tpu-vm ssh "$name" --zone="$zone" --worker=all --command="$1"; }
case "$cmd" in
  create)
    gcloud compute tpus tpu-vm create "$name" --zone="$zone" --accelerator-type="${1:?accelerator type, e.g. v4-32}" \
      --version="${TPU_VERSION:-tpu-ubuntu2204-base}" ;;
  setup)
    tar -C "$repo" --exclude=.venv --exclude=.git --exclude=runs -czf /tmp/siampose_jax.tgz .
    gcloud compute tpus tpu-vm scp /tmp/siampose_jax.tgz "$name":~/ --zone="$zone" --worker=all
    ssh_all 'mkdir -p ~/siampose_jax && tar -C ~/siampose_jax -xzf ~/siampose_jax.tgz &&
             cd ~/siampose_jax && python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[tpu]"' ;;
  run)
    args=$(printf '%q ' "$@")
    ssh_all "cd ~/siampose_jax && . .venv/bin/activate && SIAMPOSE_DISTRIBUTED=1 python -m siampose_jax.main $args" ;;
  delete)
    gcloud compute tpus tpu-vm delete "$name" --zone="$zone" --quiet ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
