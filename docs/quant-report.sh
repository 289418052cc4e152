#!/usr/bin/env bash
# Regenerates the accuracy table of docs/quantization.md: every named scheme on every
# zoo model, integer reference executor, the 10,000 embedded test images, 500
# calibration images (min/max) from the embedded training subset.
#   bash docs/quant-report.sh > /tmp/report.md
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p npu
npu=target/release/npu
tmp=$(mktemp -d)
schemes="int8-pow2 int8-sym uint8-asym int8-per-channel w4a8-per-channel ternary-weights binary-weights"
printf '| model | FP32 |'; for s in $schemes; do printf ' %s |' "$s"; done; printf ' int8-per-channel, data-free + CLE + bias correction |\n'
printf '|---|---|'; for s in $schemes; do printf -- '---|'; done; printf -- '---|\n'
top1() { sed -E 's/.*top-1 ([0-9.]+)%.*/\1/'; }
for m in cnn mobilenet resnet; do
  fp=$($npu eval zoo:$m -q | top1)
  printf '| zoo:%s | %s |' "$m" "$fp"
  for s in $schemes; do
    $npu quantize zoo:$m --scheme $s --calib 500 -o "$tmp/q.npuq" > /dev/null
    printf ' %s |' "$($npu eval "$tmp/q.npuq" -q | top1)"
  done
  $npu quantize zoo:$m --scheme int8-per-channel --calib none --cle --bias-correction analytical -o "$tmp/q.npuq" > /dev/null
  printf ' %s |\n' "$($npu eval "$tmp/q.npuq" -q | top1)"
done
rm -rf "$tmp"
