#!/usr/bin/env bash
# Usage: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]
# Runs tools/test.py as a Slurm job step (srun), one task per GPU, through
# mmengine's slurm launcher. Environment as tools/slurm_train.sh: GPUS (8),
# GPUS_PER_NODE (min(GPUS, 8)), CPUS_PER_TASK (5), SRUN_ARGS, PYTHON, PORT.
set -euo pipefail
TOOLS_DIR="$(cd "$(dirname "$0")" && pwd)"
USAGE="usage: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]"
source "$TOOLS_DIR/launch_common.sh"
require 4 $# "PARTITION, JOB_NAME, CONFIG and CHECKPOINT"
slurm_launch "$1" "$2" test.py "$3" "$4" -- "${@:5}"
