#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options]
# Launches tools/test.py on NUM_PROCS processes of this node with PyTorch's
# torchrun; each process evaluates its share of the test set and rank 0
# reports the metric. Environment as tools/dist_train.sh: PYTHON, NNODES,
# NODE_RANK, MASTER_ADDR, PORT.
set -euo pipefail
usage="usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options]"
if [ $# -lt 3 ]; then
    echo "error: CONFIG, CHECKPOINT and NUM_PROCS are required; $usage" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: NUM_PROCS must be a positive whole number (processes on this node), got '$NPROC'; $usage" >&2
    exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
