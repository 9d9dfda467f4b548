#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]
# Runs tools/train.py as a Slurm job step (srun): one task per GPU, and
# mmengine's slurm launcher sets up the process group from Slurm's variables.
# Environment: GPUS (total tasks, default 8), GPUS_PER_NODE (default
# min(GPUS, 8)), CPUS_PER_TASK (5), SRUN_ARGS (extra srun options, e.g.
# "--quotatype=auto"), PYTHON (python), PORT (29500, the rendezvous port).
set -euo pipefail
TOOLS_DIR="$(cd "$(dirname "$0")" && pwd)"
USAGE="usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]"
source "$TOOLS_DIR/launch_common.sh"
require 4 $# "PARTITION, JOB_NAME, CONFIG and WORK_DIR"
slurm_launch "$1" "$2" train.py "$3" --work-dir="$4" -- "${@:5}"
