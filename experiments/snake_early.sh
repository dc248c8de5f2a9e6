#!/usr/bin/env bash
# Snake as the reference configured it, early on: the five variants (experiments/slurm/snake.txt) for the
# first 1,500 updates (3.84M inner steps), drawn against the reference's curves (10 seeds) with γ and the outer
# advantage as means over its 146-update epochs, and the table at updates 438, 584 and 1,460.
# Each run writes a checkpoint every 5 minutes, so a stopped run can be continued.
# Usage: experiments/snake_early.sh [TOTAL_TIMESTEPS=3840000] [NUM_SEEDS=3] [extra flags for every run...]
set -euo pipefail
cd "$(dirname "$0")/.."  # the scripts and runs/ are at the repository's root
source experiments/variants.sh
steps=${1:-3840000}; seeds=${2:-3}
shift $(( $# < 2 ? $# : 2 ))  # what follows the two numbers goes to every run
for pair in "TOTAL_TIMESTEPS=$steps" "NUM_SEEDS=$seeds"; do
  [[ ${pair#*=} =~ ^[1-9][0-9]*$ ]] || { echo "error: ${pair%%=*} must be a positive integer, got '${pair#*=}'" >&2; exit 2; }
done
python -c "import jax, jumanji, gymnax" 2>/dev/null \
  || { echo "error: install the requirements first: pip install -r requirements.txt" >&2; exit 2; }
out=runs/snake_early_$(date +%Y%m%d-%H%M%S)
plot=(python plot.py "$out" --out "$out/snake_early.png" --window 146 --mark-updates 438 584 1460)
tables=(python experiments/reference_tables.py "$out" --at-updates 438 584 1460)
echo "training into $out"
echo "a stopped run continues with: python mg_snake.py --resume <run dir> (bmg_snake.py for the BMG runs);"
echo "then draw the figure and the tables with: ${plot[*]}; ${tables[*]}"
common=(--total-timesteps "$steps" --num-seeds "$seeds" --runs-dir "$out" --checkpoint-every-s 300 "$@")
run_variants experiments/slurm/snake.txt "${common[@]}"
"${plot[@]}"
"${tables[@]}"
