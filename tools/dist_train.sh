#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NUM_PROCS [train.py options]
# Launches tools/train.py on NUM_PROCS processes of this node with PyTorch's
# torchrun (NCCL on GPUs, gloo on CPU). Several nodes: run it on each with
# NNODES, NODE_RANK and MASTER_ADDR set (docs/en/user_guides/distributed.md).
# Environment: PYTHON (default python), NNODES (1), NODE_RANK (0),
# MASTER_ADDR (127.0.0.1), PORT (29500).
set -euo pipefail
usage="usage: tools/dist_train.sh CONFIG NUM_PROCS [train.py options]"
if [ $# -lt 2 ]; then
    echo "error: CONFIG and NUM_PROCS are required; $usage" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: NUM_PROCS must be a positive whole number (processes on this node), got '$NPROC'; $usage" >&2
    exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "$@"
