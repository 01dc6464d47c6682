#!/usr/bin/env bash
# The CUDA path in one short run: the gpu tests, the quickstart study on the GPU, the
# cost benchmarks with --device cuda, one cell and a small study at the GPU configs'
# proxy, and the fast suite with CUDA visible. Each step has its own time limit and
# a failing step does not stop the others; logs and JSON go to OUT.
#
#   bash benchmarks/cuda_check.sh DATA_ROOT [OUT]
#
# DATA_ROOT holds cifar-10-batches-py/ with at least data_batch_1 and the first
# 2,000 images of test_batch (the quickstart's split); every step reads only those.
# PYTHON (default python) must have nasnc installed with the bench extra; NASNC
# (default nasnc) is its command. Figures from one H200: docs/benchmarks.md,
# "The CUDA path".
set -u
DATA=$(cd "${1:?usage: cuda_check.sh DATA_ROOT [OUT]}" && pwd) || exit 2
mkdir -p "${2:-runs/cuda-check}" && OUT=$(cd "${2:-runs/cuda-check}" && pwd) || exit 2
PYTHON=${PYTHON:-python}
NASNC=${NASNC:-nasnc}
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1
T0=$(date +%s)
step() { echo; echo "=== [$(($(date +%s) - T0)) s] $*"; }

step info
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PYTHON" -c "import torch, nasnc; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported(), 'nasnc', nasnc.__version__)" || exit 1

step "gpu tests"
timeout 120 "$PYTHON" -m pytest -p no:cacheprovider -m gpu -q -rs tests 2>&1 | tee "$OUT/gpu-tests.log" | tail -4

step "the quickstart study on the GPU (device: auto)"
(cd "$WORK" && timeout 150 "$NASNC" search "$OLDPWD/configs/quickstart.yaml" --data-root "$DATA" \
    --format json --no-progress >"$OUT/quickstart.json" 2>"$OUT/quickstart.err")
echo "rc=$? wall $(($(date +%s) - T0)) s so far"; tail -2 "$OUT/quickstart.err"

step "observer overhead"
timeout 60 "$PYTHON" benchmarks/observer_overhead.py --device cuda --pairs 200 2>&1 | tail -9

step "estimate cost, benchmark-network step"
timeout 60 "$PYTHON" benchmarks/estimate_cost.py --device cuda --benchmark-step 2>&1 | tail -9

step "one cell at the CPU default proxy"
timeout 90 "$PYTHON" benchmarks/proxy_cost.py --device cuda --overhead --data-root "$DATA" 2>&1 | tail -7

# The GPU config on what the data holds: 10k training images, 2k validation images,
# a 500-cell screen and 8 trials (the shipped config: 50k, 5k, 6,461 and 64).
sed -e 's/^n_trials: .*/n_trials: 8/' -e "s#^cache: .*#cache: $WORK/cache-nb201#" \
    -e 's/^  size: 6461/  size: 500/' -e 's/^  top_k: 32/  top_k: 4/' \
    -e 's/^  n_startup_trials: 20/  n_startup_trials: 4/' \
    -e 's/^  train_subset: null/  train_subset: 10000/' -e 's/^  valid_size: 5000/  valid_size: 2000/' \
    configs/nb201-cifar10.yaml >"$WORK/nb201-scaled.yaml"

step "one cell at the nb201-cifar10 proxy (10k images, 12 epochs)"
timeout 90 "$NASNC" train '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|' \
    --config "$WORK/nb201-scaled.yaml" --data-root "$DATA" --no-cache --format json --no-progress \
    >"$OUT/train.json" 2>"$OUT/train.err"
"$PYTHON" -c "import json, sys; d = json.load(open(sys.argv[1])); \
print({k: d[k] for k in ('seconds', 'steps', 'final_valid_acc', 'beta_eff', 'diverged')})" "$OUT/train.json" ||
    tail -3 "$OUT/train.err"

step "a small nb201-cifar10 study (500-cell screen, 8 trials)"
(cd "$WORK" && timeout 240 "$NASNC" -v search nb201-scaled.yaml --data-root "$DATA" --format json \
    --no-progress >"$OUT/nb201-scaled.json" 2>"$OUT/nb201-scaled.err")
echo "rc=$?"; grep -i "screen" "$OUT/nb201-scaled.err" | cut -c1-200 | tail -3

step "the fast suite with CUDA visible"
timeout 300 "$PYTHON" -m pytest -p no:cacheprovider -q -m "not slow" tests 2>&1 | tee "$OUT/suite.log" | tail -12
step done
rm -rf "$WORK"
