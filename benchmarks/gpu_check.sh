#!/usr/bin/env bash
# The GPU check (issue 21): one short, time-boxed run on a Linux machine with ONE NVIDIA GPU, Python 3.12 with
# JAX (CUDA), PyTorch, numpy, pandas, scikit-learn, h5py, matplotlib, OpenCV, Pillow, onnxruntime, pytest and
# pytest-xdist installed, and NO TensorFlow, NO Keras and NO network. In under 8 minutes on an H100 it
#   1. installs the project's other needs from the wheels in .whl/ (into /tmp/site, nothing system-wide),
#   2. says which GPU JAX sees,
#   3. runs the JAX test subset on the GPU (pytest -m jax: tests/transfer/training/test_backends.py),
#   4. runs the demo end to end on the GPU (scripts/demo.py under KERAS_BACKEND=jax),
#   5. measures the throughput table (benchmarks/gpu.py): training images/s of ResNet50, VGG19 and MobileNetV2
#      at 224 px (float32 and bf16, XLA on) and smallcnn on 32x32x2 arrays, input-pipeline images/s from a PNG
#      folder and an HDF5 file, GPU memory; with the anchor (NVIDIA's TF ResNet-50 on one A100, 2,375 images/s).
# Every step has its own time limit, and all of them together stop before GPU_CHECK_SECONDS (default 465 s), so a
# hang costs its step, not the machine's budget.
#
# The wheels, made beforehand on a machine with network, from the repository root (.whl/ is git-ignored):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
#     keras==3.15.1 namex==0.1.0 optree==0.20.0 typing_extensions==4.16.0 \
#     Augmentor==0.2.12 isal==1.9.1 ijson==3.6.0 \
#     uproot==5.7.7 awkward==2.14.0 awkward-cpp==57 cramjam==2.14.0 xxhash==4.1.0 fsspec==2026.9.0
#
# (13 wheels, about 8 MB. Everything else the project imports is on such a machine already: pyyaml, tqdm,
# absl-py, rich, ml-dtypes, packaging, h5py.)
#
# Usage, from anywhere:  bash benchmarks/gpu_check.sh [OUTDIR] [--quick]
#   OUTDIR   where the results go (default: $OUT if set, else ./gpu_check_out): summary.md, check.log (all
#            output), throughput.md and throughput.json (the table), gpu_py.log, pytest_jax.xml, demo_report.md
#   --quick  a smoke run for a CPU (32 px, few steps, small demo, longer limits): tests this script, not a GPU
# Environment: PYTHON (default python3), GPU_CHECK_SITE (default /tmp/site), GPU_CHECK_SECONDS, GPU_CHECK_TEST_WORKERS,
# GPU_CHECK_WHEELS=no (an environment that has keras already, e.g. the project's .venv with jax added).
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

QUICK=""
OUTDIR=""
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=--quick ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $arg" >&2; exit 2 ;;
        *) OUTDIR=$arg ;;
    esac
done
OUTDIR=${OUTDIR:-${OUT:-./gpu_check_out}}
mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd) || exit 2
PY=${PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/site}
WORK=$(mktemp -d /tmp/gpu-check-XXXXXX)
export ROOT OUTDIR PY SITE WORK
if [ -n "$QUICK" ]; then LIMIT=${GPU_CHECK_SECONDS:-3600}; else LIMIT=${GPU_CHECK_SECONDS:-465}; fi
START=$(date +%s)
LOG=$OUTDIR/check.log
SUMMARY=$OUTDIR/summary.md
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!

STEPS=()
FAILED=0
elapsed() { echo $(( $(date +%s) - START )); }

# step NAME CAP_SECONDS COMMAND...: run COMMAND for at most CAP seconds (less if the whole check's limit is
# nearer); timeout kills its whole process group (pytest workers, the demo's subprocesses) when time is up.
step() {
    local name=$1 cap=$2 left rc t0 seconds verdict
    shift 2
    left=$(( LIMIT - $(elapsed) - 5 ))
    (( cap > left )) && cap=$left
    if (( cap < 10 )); then
        STEPS+=("| $name | not run: the check's ${LIMIT} s were used up | 0 |")
        FAILED=1
        echo "===== $name: not run, ${left} s left of ${LIMIT} s"
        return 0
    fi
    echo
    echo "===== $name (at most ${cap} s, at $(elapsed) s): $*"
    t0=$(date +%s)
    if declare -F "$1" > /dev/null; then  # a function of this script: run it in a bash that timeout can kill
        timeout -k 10 "$cap" bash -c "$(declare -f "$1"); $*"
    else
        timeout -k 10 "$cap" "$@"
    fi
    rc=$?
    seconds=$(( $(date +%s) - t0 ))
    case "$name:$rc" in
        *:0) verdict="passed" ;;
        *:124|*:137) verdict="TIMED OUT after ${seconds} s (limit ${cap} s)"; FAILED=1 ;;
        *) verdict="FAILED (exit status $rc)"; FAILED=1 ;;
    esac
    echo "===== $name: $verdict, ${seconds} s"
    STEPS+=("| $name | $verdict | $seconds |")
}

echo "GPU check of $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'this checkout') ${QUICK:+(quick) }on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC'); limit ${LIMIT} s; results in $OUTDIR"

# 1. The project's other needs, from the wheels (no network), into $SITE only.
install_wheels() {
    if [ "${GPU_CHECK_WHEELS:-yes}" = no ] || ! ls "$ROOT"/.whl/*.whl > /dev/null 2>&1; then
        echo "no wheels installed (none in $ROOT/.whl, or GPU_CHECK_WHEELS=no): using what $PY already has"
        "$PY" -c "import keras" || return 1
        return 0
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
}
step install 120 install_wheels
export PYTHONPATH=$SITE:$ROOT
export KERAS_BACKEND=jax
# one GPU shared by pytest's workers and by one process after another: allocate on demand, not 75 % up front
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

# 2. What is there: the GPU, the versions, and that TensorFlow is not.
environment() {
    command -v nvidia-smi > /dev/null && timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
    "$PY" - <<'EOF'
import importlib.util, os, platform, sys
import jax, keras
print(f"python {platform.python_version()} ({sys.executable}); jax {jax.__version__}; keras {keras.__version__} "
      f"(backend {keras.backend.backend()}); {os.cpu_count()} CPU cores")
print("devices:", ", ".join(f"{d.platform}:{d.device_kind}" for d in jax.devices()))
print("tensorflow:", "INSTALLED" if importlib.util.find_spec("tensorflow") else "not installed")
import imgen, augment, transfer  # noqa: F401  the project imports without TensorFlow
from transfer.training.devices import hardware, precision_policy
found = hardware()
print(f"transfer sees: {found.describe()}; --mixed-precision auto -> {precision_policy('auto', found)}")
if found.platform != "gpu":
    print("WARNING: no GPU visible to JAX: everything below runs on the CPU")
EOF
}
step environment 90 environment

# 3. The JAX test subset, on the GPU. Modules that cannot be imported here (a package this machine lacks) are
# reported by pytest and do not stop the rest.
if [ -n "$QUICK" ]; then TEST_CAP=1200; else TEST_CAP=150; fi
TEST_ARGS=()
if ! "$PY" -c "import nbformat" 2> /dev/null; then  # the notebook tests need nbformat, which is not carried
    echo "nbformat is not installed: tests/test_notebooks.py (no JAX tests) is left out of collection"
    TEST_ARGS+=(--ignore=tests/test_notebooks.py)
fi
step tests "$TEST_CAP" "$PY" -m pytest -m jax -q -p no:cacheprovider --continue-on-collection-errors \
    -n "${GPU_CHECK_TEST_WORKERS:-4}" --dist loadscope --junitxml="$OUTDIR/pytest_jax.xml" ${TEST_ARGS[@]+"${TEST_ARGS[@]}"}

# 4. The demo end to end, as a user runs it (KERAS_BACKEND=jax, so transfer trains on JAX).
if [ -n "$QUICK" ]; then DEMO_ARGS="--events 60 --size 32 --epochs 2"; DEMO_CAP=1200; else DEMO_ARGS=""; DEMO_CAP=150; fi
export DEMO_ARGS
demo() {
    # shellcheck disable=SC2086  # DEMO_ARGS is a list of words
    "$PY" scripts/demo.py --out "$WORK/demo" $DEMO_ARGS || return $?
    local run
    run=$(ls -d "$WORK"/demo/runs/*/ 2>/dev/null | head -1)
    [ -n "$run" ] && [ -f "$run/report.md" ] && cp "$run/report.md" "$OUTDIR/demo_report.md"
    [ -n "$run" ] && "$PY" - "$run" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1] + "/metrics.json"))
test = m.get("test") or {}
auc = test.get("roc_auc")
auc = auc.get("macro") if isinstance(auc, dict) else auc
facts = ", ".join(f"{k} {m[k]}" for k in ("backbone", "backend", "hardware", "mixed_precision") if m.get(k))
fmt = lambda v: f"{v:.3f}" if isinstance(v, (int, float)) else "n/a"
print(f"demo run: {facts}; test accuracy {fmt(test.get('accuracy'))}, ROC AUC {fmt(auc)}")
EOF
    return 0
}
step demo "$DEMO_CAP" demo

# 5. The throughput table, in whatever time is left (benchmarks/gpu.py stops starting rows when its budget runs out).
left=$(( LIMIT - $(elapsed) - 15 ))
step throughput $(( left + 10 )) "$PY" benchmarks/gpu.py --out "$OUTDIR" --budget "$left" $QUICK

{
    echo "# GPU check ${QUICK:+(quick, CPU smoke run) }$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "| step | result | seconds |"
    echo "|---|---|---|"
    printf '%s\n' "${STEPS[@]}"
    echo
    echo "Whole check: $(elapsed) s of ${LIMIT} s. The table: throughput.md; all output: check.log."
} > "$SUMMARY"
echo
cat "$SUMMARY"
[ -f "$OUTDIR/throughput.md" ] && cat "$OUTDIR/throughput.md"
rm -rf "$WORK"
exec >&- 2>&-
wait "$TEE_PID" 2> /dev/null  # check.log complete before the caller collects OUTDIR
exit $FAILED
