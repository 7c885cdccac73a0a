#!/usr/bin/env bash
# Train several denoiser variants side by side on one GPU (each process alone leaves it mostly
# idle), from a pack made by scripts/release/make_train_pack.py. Checkpoints and logs go to OUT/<name>/.
#   [RUNS="small spectral"] [NOISE="noise noise_nc"] [RESUME=DIR] [INIT=DIR] bash scripts/release/train_denoiser_gpu.sh PACK OUT MINUTES [EXTRA...]
# Variants: small (the learned filterbank, denoiser-v1's config), medium, large, wide (large's
# widths in 6 blocks, 1.3 s of context: 2.5x small's parameters for about 1.2x its streaming
# cost), lowsnr (small on -5..15 dB only), spectral (a 512-sample asymmetric STFT front end, same
# mask network), spectral-large and spectral-gru (that front end with two GRU layers of 128 as the
# mask network: 0.9x the parameters, cheaper to stream than the dilated blocks), spectral-gru-wide
# (two GRU layers of 256: streams at about small's cost), spectral-gru-deep (three of 256) and
# spectral-gru-df (spectral-gru with a deep filter of 3 taps below 4 kHz) and spectral-gru-phase
# (spectral-gru with the phase input alone).
# Wheels for what the GPU machine lacks: scripts/release/device_wheels.sh.
# EXTRA goes to every run (INIT, below, is per run).
# Runs longer than one device call: give every sitting the same MINUTES (the whole schedule) and
# --stop-after M (this sitting) in EXTRA, bring OUT back, and carry it as RESUME=DIR next time:
# each DIR/<name>/checkpoint.pt is copied into OUT/<name>/ and that run goes on where it stopped.
# INIT=DIR starts each run that has a DIR/<name>.pt from those weights (e.g. a CPU run's checkpoint,
# or models/denoiser-v1.pt as small.pt), with a new schedule; a resumed run ignores it. Smaller
# weights are grown first, keeping their output (models/denoiser-v2.pt as spectral-gru-wide.pt: v2
# with 256 units a layer; as spectral-gru-df.pt or spectral-gru-phase.pt: v2 with a deep filter or the
# phase input). gtcrn and gtcrn-live fine-tune GTCRN's published weights (INIT=DIR with
# DIR/gtcrn.pt and DIR/gtcrn-live.pt copies of models/gtcrn-dns3.pt): at its own 32 ms frame, and on
# v2's 10 ms frame (an asymmetric analysis window; it must relearn its temporal layers).
set -u
PACK=${1:-.pack}; OUT=${2:-runs/gpu}; MINUTES=${3:-8}
extra=("${@:4}")
# NOISE="noise noise_nc" adds the pack's UrbanSound8K clips, which make the model non-commercial
# (and did not help a CPU fine-tune of v1: docs/BENCHMARKS.md, denoiser experiments)
noise=()
for n in ${NOISE:-noise}; do noise+=("$PACK/$n.ogg"); done
common=(--speech "$PACK/speech.ogg" --noise "${noise[@]}" --rir "$PACK/rir"
        --dev-speech "$PACK/dev_speech.ogg" --dev-noise "$PACK/dev_noise.ogg"
        --minutes "$MINUTES" --batch 64 --lr 1.5e-3 --log-every 200 --checkpoint-minutes 1.5)
declare -A variant=(
  [small]=""
  [medium]="--bottleneck 96 --hidden 192"
  [large]="--bottleneck 128 --hidden 256"
  [wide]="--bottleneck 128 --hidden 256 --dilations 1 2 4 8 16 32"
  [lowsnr]="--snr -5 15"
  [spectral]="--analysis-window 512"
  [spectral-large]="--analysis-window 512 --bottleneck 128 --hidden 256"
  [spectral-gru]="--analysis-window 512 --recurrent 2 --bottleneck 128 --hidden 128"
  [spectral-gru-wide]="--analysis-window 512 --recurrent 2 --bottleneck 128 --hidden 256"
  [spectral-gru-deep]="--analysis-window 512 --recurrent 3 --bottleneck 128 --hidden 256"
  [spectral-gru-df]="--analysis-window 512 --recurrent 2 --bottleneck 128 --hidden 128 --deep-filter 3"
  [spectral-gru-phase]="--analysis-window 512 --recurrent 2 --bottleneck 128 --hidden 128 --phase-input"
  [gtcrn]="--clean-fraction 0.2 --sparsity 0.003 --lr 3e-4"
  [gtcrn-live]="--window 160 --hop 80 --temporal-dilations 3 6 15 --clean-fraction 0.2 --sparsity 0.003 --lr 5e-4"
)
pids=()
for name in ${RUNS:-small large medium}; do
  [ -n "${variant[$name]+set}" ] || { echo "unknown variant $name (have: ${!variant[*]})" >&2; exit 2; }
  mkdir -p "$OUT/$name"
  if [ -n "${RESUME:-}" ] && [ -f "$RESUME/$name/checkpoint.pt" ]; then cp "$RESUME/$name/checkpoint.pt" "$OUT/$name/"; fi
  init=()
  if [ -n "${INIT:-}" ] && [ -f "$INIT/$name.pt" ]; then init=(--init "$INIT/$name.pt"); fi
  # shellcheck disable=SC2086  # the variant's options are meant to split
  python3 -m streamae train denoiser "${common[@]}" "${init[@]}" "${extra[@]}" ${variant[$name]} \
    --run-dir "$OUT/$name" > "$OUT/$name/log.txt" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
rm -f "$OUT"/*/summary.json
tail -n 4 "$OUT"/*/log.txt
exit $status
