#!/usr/bin/env bash
# Figure 2: the five variants on the Discounting Chain (experiments/slurm/chain.txt), paper configuration,
# one after another, then the figure and the tables (the paper's side: experiments/reference_tables.py).
# Each invocation trains into its own runs/chain_<time>/.
# Usage: experiments/chain.sh [NUM_UPDATES=50000] [NUM_SEEDS=10] [extra flags for every run...]
# The paper's budget in calls that stop and continue: experiments/paper_budget.sh RUNS_DIR experiments/slurm/chain.txt 1 10
set -euo pipefail
cd "$(dirname "$0")/.."  # the scripts and runs/ are at the repository's root
source experiments/variants.sh
updates=${1:-50000}; seeds=${2:-10}
shift $(( $# < 2 ? $# : 2 ))  # what follows the two numbers goes to every run
for pair in "NUM_UPDATES=$updates" "NUM_SEEDS=$seeds"; do
  [[ ${pair#*=} =~ ^[1-9][0-9]*$ ]] || { echo "error: ${pair%%=*} must be a positive integer, got '${pair#*=}'" >&2; exit 2; }
done
python -c "import jax, jumanji, gymnax" 2>/dev/null \
  || { echo "error: install the requirements first: pip install -r requirements.txt" >&2; exit 2; }
out=runs/chain_$(date +%Y%m%d-%H%M%S)
common=(--num-updates "$updates" --num-seeds "$seeds" --runs-dir "$out" "$@")
run_variants experiments/slurm/chain.txt "${common[@]}"
python plot.py "$out" --out "$out/chain.png"
python experiments/reference_tables.py "$out"
