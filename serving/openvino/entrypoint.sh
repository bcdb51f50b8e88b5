#!/bin/sh
# Start vbert.serving with as many inference threads as the container may use (its CPU limit, else its CPUs).
set -eu

cpu_limit() {
    if [ -r /sys/fs/cgroup/cpu.max ]; then
        read -r quota period < /sys/fs/cgroup/cpu.max
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
    --threads "$THREADS" "$@"
