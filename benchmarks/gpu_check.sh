#!/usr/bin/env bash
# Issue 15's GPU runbook: the CUDA tests and the step timings, eager and captured, in one run.
#
#   bash benchmarks/gpu_check.sh --fetch-wheels    # here (network): .whl/ with what the GPU
#                                                  # image lacks (pydantic and its parts)
#   bash benchmarks/gpu_check.sh                   # there, in one device call, carry [".whl"],
#                                                  # timeout_s 560; results under $OUT
#
# The GPU image has CuPy (cupy-cuda13x), PyTorch, NumPy, PyYAML and pytest but no pydantic,
# and nothing can be fetched there: the wheels travel in .whl/ (keep it out of git:
# `echo /.whl/ >> .git/info/exclude`). Each stage has its own timeout so that the whole
# stays under 8 minutes and a hang in one still leaves the others' results in $OUT:
#   env.txt     GPU, driver, CuPy, PyTorch
#   tests.log   tests/test_cuda.py (CuPy against NumPy, fused kernels against their twins,
#               captured steps against eager ones), test_fused.py, test_step_graph.py
#   bench.txt   benchmarks/step.py --device cuda: lenet5, vgg_small at batch 64; resnet_tiny
#               and the zoo's resnet18 at 64x64, batch 256; unfused, fused, fused + --capture
set -u
cd "$(dirname "$0")/.."

WHEELS=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
        typing-extensions==4.16.0)
if [ "${1:-}" = "--fetch-wheels" ]; then
    mkdir -p .whl
    exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}"
fi

OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1

{
    date -u
    nvidia-smi -L
    python3 -c "import cupy, numpy, torch; print('cupy', cupy.__version__, 'numpy', \
numpy.__version__, 'torch', torch.__version__, 'cuda', cupy.cuda.runtime.runtimeGetVersion())"
} >"$OUT/env.txt" 2>&1

timeout 150 python3 -m pytest -q -p no:cacheprovider -rxXs tests/test_cuda.py \
    tests/test_fused.py tests/test_step_graph.py >"$OUT/tests.log" 2>&1
echo "tests exit $?" >>"$OUT/tests.log"

# resnet_tiny and resnet18 at 64x64 (resnet18 gets an optimizer: the zoo spec has none)
SPECS64=/tmp/specs64
mkdir -p "$SPECS64"
sed 's/input: {shape: \[3, 32, 32\]}/input: {shape: [3, 64, 64]}/' specs/resnet_tiny.yaml \
    >"$SPECS64/resnet_tiny_64.yaml"
sed 's/input: {shape: \[3, 224, 224\]}/input: {shape: [3, 64, 64]}/' specs/zoo/resnet18.yaml \
    >"$SPECS64/resnet18_64.yaml"
echo "train: {optimizer: {SGD: {lr: 0.1, momentum: 0.9}}}" >>"$SPECS64/resnet18_64.yaml"

bench() {  # bench SECONDS ARGS...: one step.py run, its table appended to bench.txt
    local seconds=$1
    shift
    echo "== NETSPEC_FUSED=$NETSPEC_FUSED step.py $*" >>"$OUT/bench.txt"
    timeout "$seconds" python3 benchmarks/step.py --device cuda --rounds 4 "$@" \
        >>"$OUT/bench.txt" 2>&1
    echo "exit $?" >>"$OUT/bench.txt"
}
# unfused (NETSPEC_FUSED=0: the optimizer and BatchNorm passes as separate CuPy kernels, time
# only), fused, fused and captured
for mode in "unfused" "" "--capture"; do
    if [ "$mode" = "unfused" ]; then
        export NETSPEC_FUSED=0
        mode="--no-memory"
    else
        export NETSPEC_FUSED=1
    fi
    bench 45 $mode specs/lenet5.yaml specs/vgg_small.yaml
    bench 65 $mode --batch-size 256 "$SPECS64/resnet_tiny_64.yaml" "$SPECS64/resnet18_64.yaml"
done
cat "$OUT/env.txt" "$OUT/bench.txt"
tail -n 25 "$OUT/tests.log"
