#!/bin/sh
# Start vbert.serving with as many inference threads as the container may use (its CPU limit, else its CPUs).
set -eu

CPU_MAX="${CPU_MAX:-/sys/fs/cgroup/cpu.max}"   # cgroup v2: "<quota> <period>" or "max <period>"

cpu_limit() {
    if [ -r "$CPU_MAX" ]; then
        read -r quota period < "$CPU_MAX"
        if [ "$quota" != "max" ]; then
            echo $(((quota + period - 1) / period))
            return
        fi
    fi
    nproc
}

THREADS="${VBERT_THREADS:-$(cpu_limit)}"
export OMP_NUM_THREADS="$THREADS"
exec python -m vbert.serving --backend openvino --model-dir "$MODEL_DIR" --host 0.0.0.0 --port "$PORT" \
    --grpc-port "${GRPC_PORT:-8500}" --threads "$THREADS" "$@"
