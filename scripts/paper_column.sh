#!/usr/bin/env bash
# The paper's MNIST column on one GPU: every run side by side, trained for MINUTES, then scored.
#
#   bash scripts/paper_column.sh MINUTES [RUNS] [SEEDS]     # e.g. 22 runs/paper "0 1 2"
#
# Each run is `python -m pixelgan` (torch, numpy, pyarrow, PyYAML: no Ray, Hydra or DVC), with
# its log beside its folder. A run that reaches --time-limit before its profile's epochs is
# scored as it stands (its metrics.json records how many epochs it had). The same command run
# again resumes every unfinished run from its checkpoint. Needs data/mnist (pipeline.prepare),
# or another prepared folder in DATA; PIXELGAN_ARGS adds flags to every run; ONLY (a bash
# regular expression) keeps the runs whose names match it, e.g. ONLY=semi-20.
set -euo pipefail
minutes=${1:?usage: scripts/paper_column.sh MINUTES [RUNS] [SEEDS]}
runs=${2:-runs/paper}
seeds=${3:-0 1 2}
python=${PYTHON:-python3}
data=${DATA:-data/mnist}
read -ra extra <<<"${PIXELGAN_ARGS:-}"
only=${ONLY:-.}
mkdir -p "$runs"
declare -A pids  # run name -> the pid of its background job

# One run in the background: train until the time limit, then score whatever epoch it reached.
launch() {
  local name=$1; shift
  [[ $name =~ $only ]] || return 0
  local out=$runs/$name
  (
    $python -m pixelgan --data "$data" --out "$out" --time-limit "$minutes" "$@" "${extra[@]}"
    if [[ ! -f $out/metrics.json ]]; then
      epochs=$($python -c "import sys; from pixelgan.checkpoint import load_checkpoint; print(load_checkpoint(sys.argv[1])['epoch'])" "$out/checkpoint.pt")
      $python -m pixelgan --data "$data" --out "$out" "$@" "${extra[@]}" --epochs "$epochs"
    fi
  ) >>"$runs/$name.log" 2>&1 &
  pids[$name]=$!
}

fast=(--precision bf16 --channels-last)
for seed in $seeds; do
  paper=(--profile paper --seed "$seed" "${fast[@]}")
  launch "clustering-30-seed$seed" "${paper[@]}" --prior categorical --dim 30
  # The AAE's clustering set-up: a 5-D Gaussian style code beside the 30 categories, so that
  # style need not ride in the categories' small probabilities (docs/results.md, the paper column).
  launch "clustering-30-style-seed$seed" "${paper[@]}" --prior categorical_gaussian --dim 30
  launch "semi-100-seed$seed" "${paper[@]}" --prior categorical_gaussian --dim 10 --labels 100
  launch "semi-50-seed$seed" "${paper[@]}" --prior categorical_gaussian --dim 10 --labels 50
  launch "semi-20-seed$seed" "${paper[@]}" --prior categorical_gaussian --dim 10 --labels 20
done
# Figure 2 wants a small receptive field: the cpu profile's 4-layer PixelCNN (6 rows above a pixel).
small=(--profile cpu --seed 0 "${fast[@]}" --prior gaussian --dim 2)
launch fig2-pixelgan-seed0 "${small[@]}"
launch fig2-pixelcnn-seed0 "${small[@]}" --conditioning none
launch fig2-aae-seed0 "${small[@]}" --conditioning location_dependent --no-autoregressive
failed=()
for name in "${!pids[@]}"; do
  wait "${pids[$name]}" || failed+=("$runs/$name.log")
done
if ((${#failed[@]})); then
  echo "error: ${#failed[@]} run(s) failed, see ${failed[*]}" >&2
  exit 1
fi
echo "all runs scored: python -m pipeline.paper $runs"
