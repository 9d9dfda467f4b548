#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NUM_PROCS [train.py options]
# Launches tools/train.py on NUM_PROCS processes of this node with PyTorch's
# torchrun (NCCL on GPUs, gloo on CPU). Several nodes: run it on each with
# NNODES, NODE_RANK and MASTER_ADDR set (docs/en/user_guides/distributed.md).
# Environment: PYTHON (default python), NNODES (1), NODE_RANK (0),
# MASTER_ADDR (127.0.0.1), PORT (29500).
set -euo pipefail
TOOLS_DIR="$(cd "$(dirname "$0")" && pwd)"
USAGE="usage: tools/dist_train.sh CONFIG NUM_PROCS [train.py options]"
source "$TOOLS_DIR/launch_common.sh"
require 2 $# "CONFIG and NUM_PROCS"
CONFIG=$1
NUM_PROCS=$2
shift 2
positive NUM_PROCS " (processes on this node)"
torchrun_launch "$NUM_PROCS" train.py "$CONFIG" -- "$@"
