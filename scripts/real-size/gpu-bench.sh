#!/usr/bin/env bash
# The real-size bench on a CUDA machine, prepared so the run takes minutes: check that onnxruntime-node runs on
# CUDA here, make the full-size SD 1.5 inpainting folders (or take existing ones), run
# `bench real-size --device cuda --json` on each at each size, and keep every report and the GPU's memory use.
#
#   scripts/real-size/gpu-bench.sh --model DIR [--model DIR ...] [options]
#   scripts/real-size/gpu-bench.sh --make DIR --diffusers-src PATH [--hfhub-src PATH] [options]
# options: --steps N (4)  --sizes 512,1024 (512)  --out DIR (real-size-gpu-results)  --dry-run
#          --device cpu (the same runs on the CPU provider, for comparison on the same machine; no provider check)
#
# --make DIR writes DIR/sd15-inpaint-fp32 and DIR/sd15-inpaint-fp16 with make_real_size_model.py (about 6 GB,
# minutes; it needs Debian's python3-torch, python3-onnx and diffusers v0.30.3's sources, see README.md here).
# --dry-run checks the arguments, the model folders and the CUDA provider, prints what a run would do, and
# runs nothing else. Exit status: 0 done, 2 bad arguments or folders, 3 no working CUDA provider, 4 a step failed.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo" || exit 2

models=()
make_dir="" diffusers_src="" hfhub_src="" steps=4 sizes=512 out="real-size-gpu-results" dry_run=0 device=cuda
usage() { sed -n '5,8p' "$0" | sed 's/^# \{0,1\}//' >&2; }
fail() { echo "gpu-bench: $1" >&2; exit "${2:-2}"; }
need_value() { [[ $# -ge 2 && "$2" != --* ]] || fail "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) need_value "$@"; models+=("$2"); shift 2 ;;
    --make) need_value "$@"; make_dir="$2"; shift 2 ;;
    --diffusers-src) need_value "$@"; diffusers_src="$2"; shift 2 ;;
    --hfhub-src) need_value "$@"; hfhub_src="$2"; shift 2 ;;
    --steps) need_value "$@"; steps="$2"; shift 2 ;;
    --sizes) need_value "$@"; sizes="$2"; shift 2 ;;
    --out) need_value "$@"; out="$2"; shift 2 ;;
    --device) need_value "$@"; device="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage; fail "unknown argument \"$1\"; allowed: --model, --make, --diffusers-src, --hfhub-src, --steps, --sizes, --out, --device, --dry-run" ;;
  esac
done
[[ "$device" == cuda || "$device" == cpu ]] || fail "--device must be cuda or cpu; got \"$device\""
[[ "$steps" =~ ^[1-9][0-9]{0,2}$ ]] || fail "--steps must be a whole number from 1 to 999; got \"$steps\""
IFS=, read -r -a size_list <<< "$sizes"
for size in "${size_list[@]}"; do
  [[ "$size" =~ ^[0-9]+$ ]] && (( size >= 64 && size <= 2048 && size % 8 == 0 )) || fail "--sizes must be multiples of 8 from 64 to 2048, comma-separated; got \"$sizes\""
done
if [[ -n "$make_dir" ]]; then
  (( ${#models[@]} == 0 )) || fail "give --model or --make, not both"
  [[ -n "$diffusers_src" ]] || fail "--make needs --diffusers-src (diffusers v0.30.3's src/ folder)"
  [[ -d "$diffusers_src" ]] || fail "--diffusers-src: no folder $diffusers_src"
  models=("$make_dir/sd15-inpaint-fp32" "$make_dir/sd15-inpaint-fp16")
elif (( ${#models[@]} == 0 )); then
  usage; fail "give --model DIR (a folder from make_real_size_model.py) or --make DIR"
else
  for dir in "${models[@]}"; do
    for part in model_index.json text_encoder/model.onnx unet/model.onnx vae_encoder/model.onnx vae_decoder/model.onnx scheduler/scheduler_config.json; do
      [[ -s "$dir/$part" ]] || fail "--model $dir: missing $part (make one with scripts/real-size/make_real_size_model.py)"
    done
  done
fi

run() { # prints the command; runs it unless --dry-run
  echo "+ $*"
  (( dry_run )) && return 0
  "$@"
}

echo "gpu-bench: $(date -u +%FT%TZ), $(uname -srm), node $(node --version), $(nproc) cores"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu-bench: GPU /'
else
  echo "gpu-bench: no nvidia-smi on this machine"
fi

# 1. The provider: a one-node graph on CUDA alone (no CPU fall-back), before anything slow.
provider=0
if [[ "$device" == cuda ]]; then
  node bin/run-ts.js scripts/real-size/check-cuda-provider.ts
  provider=$?
fi
if (( provider != 0 )); then
  (( dry_run )) || fail "stopping: onnxruntime-node has no working CUDA provider here (see above)" 3
  echo "gpu-bench: dry run: a real run would stop here (status 3)"
fi

# 2. The model folders.
if [[ -n "$make_dir" ]]; then
  args=(/usr/bin/python3 scripts/real-size/make_real_size_model.py "${models[0]}" --diffusers-src "$diffusers_src" --fp16 "${models[1]}")
  [[ -n "$hfhub_src" ]] && args+=(--hfhub-src "$hfhub_src")
  run "${args[@]}" || fail "making the model folders failed" 4
fi

# 3. The bench on the device, each folder at each size, with the GPU's memory sampled every 200 ms.
run mkdir -p "$out"
status=0
for dir in "${models[@]}"; do
  for size in "${size_list[@]}"; do
    name="$(basename "$dir")-${device}-${size}"
    sampler=""
    if (( ! dry_run )) && command -v nvidia-smi > /dev/null; then
      nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$out/$name-gpu-memory-mib.csv" &
      sampler=$!
    fi
    echo "+ node bin/run-ts.js bench/index.ts real-size --model $dir --device $device --steps $steps --size $size --json > $out/$name.json"
    if (( ! dry_run )); then
      node bin/run-ts.js bench/index.ts real-size --model "$dir" --device "$device" --steps "$steps" --size "$size" --json > "$out/$name.json" || status=4
    fi
    if [[ -n "$sampler" ]]; then
      kill "$sampler" 2> /dev/null
      wait "$sampler" 2> /dev/null
      echo "gpu-bench: $name: peak GPU memory $(sort -n "$out/$name-gpu-memory-mib.csv" | tail -1) MiB"
    fi
    (( dry_run )) || echo "gpu-bench: $name: $(tr -s ' \n' ' ' < "$out/$name.json" | head -c 600)"
  done
done
(( status == 0 )) || fail "a bench run failed (its report is in $out)" 4
if (( dry_run )); then echo "gpu-bench: done (dry run)"; else echo "gpu-bench: done; reports in $out"; fi
