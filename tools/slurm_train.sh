#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]
# Runs tools/train.py as a Slurm job step (srun): one task per GPU, and
# mmengine's slurm launcher sets up the process group from Slurm's variables.
# Environment: GPUS (total tasks, default 8), GPUS_PER_NODE (default
# min(GPUS, 8)), CPUS_PER_TASK (5), SRUN_ARGS (extra srun options, e.g.
# "--quotatype=auto"), PYTHON (python), PORT (29500, the rendezvous port).
set -euo pipefail
usage="usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]"
if [ $# -lt 4 ]; then
    echo "error: PARTITION, JOB_NAME, CONFIG and WORK_DIR are required; $usage" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
positive() {  # NAME: the variable must hold a positive whole number
    if ! [[ "${!1}" =~ ^[1-9][0-9]*$ ]]; then
        echo "error: $1 must be a positive whole number, got '${!1}'" >&2
        exit 2
    fi
}
GPUS=${GPUS:-8}
positive GPUS
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
positive GPUS_PER_NODE
positive CPUS_PER_TASK
HERE="$(cd "$(dirname "$0")" && pwd)"
# SRUN_ARGS is split into words on purpose (several srun options).
# shellcheck disable=SC2086
MASTER_PORT=${PORT:-29500} exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$HERE/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "$@"
