#!/usr/bin/env bash
# Regenerates the schedule-quality table of docs/compiler.md: for every zoo model,
# scheme and preset, the simulated cycles of one inference (timing only) against the
# roofline floor max(MACs / peak MACs per cycle, off-chip bytes / bandwidth, SRAM I/O).
# Quantization: 500 calibration images (min/max) of the embedded training subset.
#   bash docs/roofline.sh > /tmp/roofline.md
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p npu
npu=target/release/npu
schemes="int8-pow2 int8-sym uint8-asym int8-per-channel w4a8-per-channel binary-weights"
presets="${PRESETS:-edge-64 edge-256 edge-1k}"
models="${MODELS:-cnn resnet mobilenet}"
printf '| model | scheme | preset | cycles | floor | bound | cycles / floor |\n|---|---|---|---|---|---|---|\n'
for m in $models; do
  for s in $schemes; do
    for hw in $presets; do
      if ! json=$($npu simulate "zoo:$m" --scheme "$s" --hw "$hw" --timing-only --json 2> /dev/null); then
        printf '| zoo:%s | %s | %s | — | — | — | cannot compile (missing capability) |\n' "$m" "$s" "$hw"
        continue
      fi
      jq -r --arg m "$m" --arg s "$s" --arg hw "$hw" \
        '"| zoo:\($m) | \($s) | \($hw) | \(.report.total_cycles) | \(.roofline.floor | floor) | \(.roofline.bound) | \(.roofline.ratio * 1000 | round / 1000) |"' <<< "$json"
    done
  done
done
