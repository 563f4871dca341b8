#!/usr/bin/env bash
# One sweep from a SLURM job array: every array task is one worker on one GPU; all of them share the sweep's
# queue (PostgreSQL) and tracking (an MLflow server). A task that dies loses nothing: its run is taken by
# another worker after the grace period and resumes from its last checkpoint when the results folder is shared.
#
#   sbatch --array=0-7 experiments/cluster/slurm-array.sh experiments/senet-cifar10-preresnet110-gpu.yaml
#
# Set these for your site (docs/many-machines.md says how to start the two servers):
#   SESWEEP_STORAGE       postgresql+psycopg://USER:PASS@HOST:5432/sesweep
#   SESWEEP_TRACKING_URI  http://HOST:5000
#SBATCH --job-name=sesweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --output=sesweep-%A_%a.log
set -euo pipefail
sweep="${1:?usage: sbatch --array=0-N slurm-array.sh SWEEP.yaml}"
: "${SESWEEP_STORAGE:?set SESWEEP_STORAGE to the PostgreSQL URL of the sweep}"
: "${SESWEEP_TRACKING_URI:?set SESWEEP_TRACKING_URI to the MLflow server}"
cd "${SLURM_SUBMIT_DIR:-.}"
# one worker per task, on the GPU SLURM gave it; results/ on a shared file system lets a retried run resume
# from its checkpoint (without one, the run starts again from epoch 0 and nothing else changes)
exec .venv/bin/sesweep run "$sweep" --storage "$SESWEEP_STORAGE" --tracking-uri "$SESWEEP_TRACKING_URI" \
    --results "${SESWEEP_RESULTS:-results}" --workers 1 --quiet
