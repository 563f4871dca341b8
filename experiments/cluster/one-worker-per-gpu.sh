#!/usr/bin/env bash
# One machine with several GPUs: one worker process per GPU, all on one sweep.
#
#   experiments/cluster/one-worker-per-gpu.sh experiments/senet-cifar10-wrn16-8-gpu.yaml
#
# `sesweep run --workers N` does the same by itself (worker i takes GPU i mod N); this script shows the explicit
# form, one process per GPU with CUDA_VISIBLE_DEVICES, which is also how to join a sweep from several machines:
# give every process the same --storage (and --tracking-uri).
set -euo pipefail
sweep="${1:?usage: one-worker-per-gpu.sh SWEEP.yaml [STORAGE_URL]}"
storage="${2:-}"
gpus=$(nvidia-smi --list-gpus | wc -l)
pids=()
for ((i = 0; i < gpus; i++)); do
  CUDA_VISIBLE_DEVICES=$i .venv/bin/sesweep run "$sweep" ${storage:+--storage "$storage"} --quiet &
  pids+=($!)
done
wait "${pids[@]}"
