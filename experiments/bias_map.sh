#!/usr/bin/env bash
# Where the bias is catastrophic: the Discounting Chain mapped over the paying chain (--mapping-seed
# 1..4: the better reward 3, 10, 30 or 100 steps away) × γ0 ∈ {0.91, 0.93, 0.95, 0.97, 0.99}, for
# MG and MG + outer critic (VARIANTS=all adds BMG and BMG + outer critic), the paper's other
# settings; then the figure and the tables. Everything goes to runs/bias_map_<time>/ (docs/ is
# left alone). Each (variant, mapping) trains its γ0 × seed runs in one jit(vmap) (bias_map.py).
# Usage: experiments/bias_map.sh [NUM_UPDATES=5000] [NUM_SEEDS=5] [VARIANTS=mg,mg_oc] [options for bias_map.py run...]
#   VARIANTS: comma-separated names from mg, mg_oc, bmg, bmg_oc, or all.
#   e.g. experiments/bias_map.sh 5000 5 all --gamma-inits 0.93 0.95 0.97 0.99
#   A stopped grid continues with the same arguments and --out-dir runs/bias_map_<time>.
set -euo pipefail
cd "$(dirname "$0")/.."  # the scripts and runs/ are at the repository's root
updates=${1:-5000}; seeds=${2:-5}; variants=${3:-mg,mg_oc}
shift $(( $# < 3 ? $# : 3 ))  # what follows the three goes to bias_map.py run
for pair in "NUM_UPDATES=$updates" "NUM_SEEDS=$seeds"; do
  [[ ${pair#*=} =~ ^[1-9][0-9]*$ ]] || { echo "error: ${pair%%=*} must be a positive integer, got '${pair#*=}'" >&2; exit 2; }
done
[[ $variants == all ]] && variants=mg,mg_oc,bmg,bmg_oc
name='(mg|mg_oc|bmg|bmg_oc)'
[[ $variants =~ ^$name(,$name)*$ ]] \
  || { echo "error: VARIANTS must be comma-separated names from mg, mg_oc, bmg, bmg_oc (or all), got '$variants'" >&2
       exit 2; }
IFS=, read -ra names <<< "$variants"
(( $(printf '%s\n' "${names[@]}" | sort -u | wc -l) == ${#names[@]} )) \
  || { echo "error: VARIANTS names a variant twice: '$variants'" >&2; exit 2; }
out=runs/bias_map_$(date +%Y%m%d-%H%M%S)
extra=()
while (( $# )); do  # --out-dir DIR continues that grid instead of starting a new one
  case $1 in
    --out-dir) (( $# >= 2 )) || { echo "error: --out-dir needs a directory" >&2; exit 2; }; out=$2; shift 2 ;;
    --out-dir=*) out=${1#*=}; shift ;;
    *) extra+=("$1"); shift ;;
  esac
done
python -c "import jax, gymnax, matplotlib" 2>/dev/null \
  || { echo "error: install the requirements first: pip install -r requirements.txt" >&2; exit 2; }
start=$SECONDS
python experiments/bias_map.py run --num-updates "$updates" --num-seeds "$seeds" --variants "${names[@]}" \
  --out-dir "$out" --no-draw ${extra[@]+"${extra[@]}"}
python experiments/bias_map.py draw "$out"
took=$(( SECONDS - start ))
echo "bias map done in $(( took / 60 )) min $(( took % 60 )) s: $out"
echo "redraw the figure from the CSV alone: python experiments/bias_map.py draw $out"
