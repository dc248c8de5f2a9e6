#!/usr/bin/env bash
# Figures 3 and 5: the five variants on Snake 6x6 (experiments/slurm/snake.txt), paper configuration,
# one after another, then the figure and the table. Each invocation trains into its own runs/snake_<time>/.
# Usage: experiments/snake.sh [TOTAL_TIMESTEPS=75000000] [NUM_SEEDS=10] [extra flags for every run...]
# The paper's budget in calls that stop and continue: experiments/paper_budget.sh RUNS_DIR experiments/slurm/snake.txt 1 10
set -euo pipefail
cd "$(dirname "$0")/.."  # the scripts and runs/ are at the repository's root
source experiments/variants.sh
steps=${1:-75000000}; seeds=${2:-10}
shift $(( $# < 2 ? $# : 2 ))  # what follows the two numbers goes to every run
for pair in "TOTAL_TIMESTEPS=$steps" "NUM_SEEDS=$seeds"; do
  [[ ${pair#*=} =~ ^[1-9][0-9]*$ ]] || { echo "error: ${pair%%=*} must be a positive integer, got '${pair#*=}'" >&2; exit 2; }
done
python -c "import jax, jumanji, gymnax" 2>/dev/null \
  || { echo "error: install the requirements first: pip install -r requirements.txt" >&2; exit 2; }
out=runs/snake_$(date +%Y%m%d-%H%M%S)
common=(--total-timesteps "$steps" --num-seeds "$seeds" --runs-dir "$out" "$@")
run_variants experiments/slurm/snake.txt "${common[@]}"
python plot.py "$out" --out "$out/snake.png"
