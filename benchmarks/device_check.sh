#!/usr/bin/env bash
# The GPU checks, prepared as one command for an accelerator machine (a task that is lent one runs
# it in a single call, and gets every figure back even when a part fails or runs out of time):
#
#   bash benchmarks/device_check.sh            # results under $OUT (default outputs/device_check)
#   bash benchmarks/device_check.sh --smoke    # the same parts at toy sizes, on any machine (~90 s on 2 CPU cores)
#
# Parts, in order (each with its own time limit, all inside BUDGET seconds, default 540):
#   environment  the accelerator, Python and library versions, JAX's devices
#   llm          transformer throughput at V^L = 10^5 and 16^5 with sampled metrics (the README's
#                configuration: benchmarks/llm_throughput.py), response tokens/s
#   llm-real     a real model's shape: SmolLM2-135M (30 layers, d 576, vocabulary 49,152) with random
#                weights (the machine reaches no registry for the GGUF): sampling, scoring and training
#                tokens/s at batch 8 × 128 tokens, all weights and LoRA (benchmarks/llm_real.py)
#   bench        the dynamics and roofline benchmarks on 10^6 games × n = 10 × 1000 steps and one
#                game at n = 4000, float64 and float32 (benchmarks/run.py)
#   llm-large    a wider transformer (d = 256, 4 layers, 1024 pairs per step) at 16^5 responses
# The project runs from this checkout (PYTHONPATH): an accelerator machine here reaches no package
# registry, and its image has JAX with CUDA, flax, optax, orbax, pandas and pyarrow. PYTHON picks
# the interpreter (default python3). At most 7 files come back: log.txt and */results.{json,md}.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/device_check}
BUDGET=${BUDGET:-540}
PY=${PYTHON:-python3}
smoke=0
[[ ${1:-} == --smoke ]] && smoke=1
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

part() {  # part NAME CAP_SECONDS COMMAND...: run within min(CAP, what is left of BUDGET)
  local name=$1 cap=$2 left=$((BUDGET - SECONDS))
  shift 2
  local limit=$((cap < left ? cap : left))
  if ((limit < 20)); then
    echo "== $name: skipped, ${left} s of the ${BUDGET} s budget left"
    return
  fi
  echo "== $name (limit ${limit} s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  echo "== $name: exit $? after $((SECONDS - t0)) s"
}

{
  part environment 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null \
    || echo 'no nvidia-smi'; $PY -c 'import sys, jax, flax, optax, orbax.checkpoint, numpy, scipy
print(sys.version.split()[0], \"jax\", jax.__version__, \"flax\", flax.__version__, \"optax\", optax.__version__,
      \"numpy\", numpy.__version__, \"scipy\", scipy.__version__)
print(\"JAX backend\", jax.default_backend(), jax.devices())'"
  mkdir -p "$OUT/llm_real"
  if ((smoke)); then
    part llm 300 "$PY" benchmarks/llm_throughput.py --sizes 4x3 --steps 20 --eval-samples 256 --out "$OUT/llm"
    part llm-real 300 "$PY" benchmarks/llm_real.py --model random:smollm2-135m --batch 2 --tokens 16 \
      --new-tokens 4 --only score,train-lora --json "$OUT/llm_real/results.json"
    part bench 300 "$PY" benchmarks/run.py --quick --no-peers --only dynamics,roofline --workloads n=10 \
      --out "$OUT/bench"
    part llm-large 300 "$PY" benchmarks/llm_throughput.py --sizes 4x3 --d-model 64 --heads 4 --layers 2 \
      --batch 512 --steps 10 --eval-samples 256 --out "$OUT/llm_large"
  else
    part llm 240 "$PY" benchmarks/llm_throughput.py --sizes 10x5,16x5 --steps 200 --out "$OUT/llm"
    part llm-real 150 "$PY" benchmarks/llm_real.py --model random:smollm2-135m --only generate,score,train-full,train-lora \
      --json "$OUT/llm_real/results.json"
    part bench 260 "$PY" benchmarks/run.py --no-peers --only dynamics,roofline --workloads B=1000000,n=4000 \
      --out "$OUT/bench"
    part llm-large 150 "$PY" benchmarks/llm_throughput.py --sizes 16x5 --d-model 256 --heads 4 --layers 4 \
      --batch 1024 --steps 100 --out "$OUT/llm_large"
  fi
  echo "== done in $SECONDS s; results under $OUT"
} 2>&1 | tee "$OUT/log.txt"
