#!/usr/bin/env bash
# Train three denoiser sizes (small is the default config and denoiser-v1) side by side on one GPU (each process alone leaves it mostly
# idle), from a pack made by scripts/make_train_pack.py. Checkpoints and logs go to OUT/<name>/.
#   bash scripts/train_denoiser_gpu.sh PACK OUT MINUTES [EXTRA TRAINING ARGS...]
# e.g. EXTRA = --init models/denoiser-v1.pt to continue from the shipped weights.
set -u
PACK=${1:-.pack}; OUT=${2:-runs/gpu}; MINUTES=${3:-8}
extra=("${@:4}")
common=(--speech "$PACK/speech.ogg" --noise "$PACK/noise.ogg" --rir "$PACK/rir"
        --dev-speech "$PACK/dev_speech.ogg" --dev-noise "$PACK/dev_noise.ogg"
        --minutes "$MINUTES" --batch 64 --lr 1.5e-3 --log-every 200 --checkpoint-minutes 1.5)
run() {  # name, extra args...
  local name=$1; shift
  mkdir -p "$OUT/$name"
  python3 -m streamae.train.train_denoiser "${common[@]}" "${extra[@]}" --run-dir "$OUT/$name" "$@" > "$OUT/$name/log.txt" 2>&1
}
run small & a=$!
run large --bottleneck 128 --hidden 256 & b=$!
run medium --bottleneck 96 --hidden 192 & c=$!
status=0
for pid in $a $b $c; do wait "$pid" || status=1; done
rm -f "$OUT"/*/summary.json
tail -n 4 "$OUT"/*/log.txt
exit $status
