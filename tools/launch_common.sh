# Shared by tools/dist_train.sh, dist_test.sh, slurm_train.sh and slurm_test.sh
# (sourced, not run): the argument checks and the two launch commands, PyTorch's
# torchrun and Slurm's srun; mmengine's launchers take it from there.
# The sourcing script sets USAGE first.

# error: WHY; USAGE, and exit status 2 (nothing is launched)
usage_error() {
    echo "error: $1; $USAGE" >&2
    exit 2
}

# require COUNT GIVEN NAMES: at least COUNT positional arguments
require() {
    [ "$2" -ge "$1" ] || usage_error "$3 are required"
}

# positive NAME [HINT]: the variable NAME must hold a positive whole number
positive() {
    [[ "${!1}" =~ ^[1-9][0-9]*$ ]] || usage_error "$1 must be a positive whole number${2:-}, got '${!1}'"
}

# torchrun_launch NUM_PROCS TOOL TOOL_ARGS... -- OPTIONS...: TOOL (a path under
# tools/) on NUM_PROCS processes of this node, --launcher pytorch after TOOL_ARGS.
# Environment: PYTHON (python), NNODES (1), NODE_RANK (0), MASTER_ADDR
# (127.0.0.1), PORT (29500).
torchrun_launch() {
    local nproc=$1 tool=$2
    shift 2
    local args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    exec "${PYTHON:-python}" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
        --nproc_per_node="$nproc" \
        "$TOOLS_DIR/$tool" "${args[@]}" --launcher pytorch "$@"
}

# slurm_launch PARTITION JOB_NAME TOOL TOOL_ARGS... -- OPTIONS...: TOOL as a
# Slurm job step, one task per GPU, --launcher=slurm after TOOL_ARGS.
# Environment: GPUS (8), GPUS_PER_NODE (min(GPUS, 8)), CPUS_PER_TASK (5),
# SRUN_ARGS (further srun options, split into words), PYTHON, PORT (29500).
slurm_launch() {
    local partition=$1 job=$2 tool=$3
    shift 3
    local args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    GPUS=${GPUS:-8}
    positive GPUS
    GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
    CPUS_PER_TASK=${CPUS_PER_TASK:-5}
    positive GPUS_PER_NODE
    positive CPUS_PER_TASK
    # SRUN_ARGS is split into words on purpose (several srun options).
    # shellcheck disable=SC2086
    MASTER_PORT=${PORT:-29500} exec srun -p "$partition" \
        --job-name="$job" \
        --gres=gpu:"$GPUS_PER_NODE" \
        --ntasks="$GPUS" \
        --ntasks-per-node="$GPUS_PER_NODE" \
        --cpus-per-task="$CPUS_PER_TASK" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        "${PYTHON:-python}" -u "$TOOLS_DIR/$tool" "${args[@]}" --launcher=slurm "$@"
}
