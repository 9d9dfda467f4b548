#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NUM_PROCS [train.py options]
# Launches tools/train.py with torchrun (NCCL on GPUs, gloo on CPU).
# PYTHON (default: python), PORT, NNODES, NODE_RANK, MASTER_ADDR may be set.
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
HERE="$(cd "$(dirname "$0")" && pwd)"
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "$@"
