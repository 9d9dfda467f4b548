#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options]
# Launches tools/test.py on NUM_PROCS processes of this node with PyTorch's
# torchrun; each process evaluates its share of the test set and rank 0
# reports the metric. Environment as tools/dist_train.sh: PYTHON, NNODES,
# NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
TOOLS_DIR="$(cd "$(dirname "$0")" && pwd)"
USAGE="usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options]"
source "$TOOLS_DIR/launch_common.sh"
require 3 $# "CONFIG, CHECKPOINT and NUM_PROCS"
CONFIG=$1
CHECKPOINT=$2
NUM_PROCS=$3
shift 3
positive NUM_PROCS " (processes on this node)"
torchrun_launch "$NUM_PROCS" test.py "$CONFIG" "$CHECKPOINT" -- "$@"
