#!/usr/bin/env bash
# Figure 6 (paper Appendix D.2): the inner and outer advantages normalised (--normalize-advantage), with
# and without the outer critic: MG and BMG on the chain, MG on Snake (as the paper's figure), each the
# variant of experiments/slurm/*.txt with the flag, named <variant>_norm. Trains into its own
# runs/ablation_<time>/{chain,snake}/ and draws the figures there from exactly these runs (docs/ is left
# alone). On the 2-core CPU about 7 minutes per run at the defaults.
# Usage: experiments/ablation.sh [CHAIN_UPDATES=10000] [CHAIN_SEEDS=10] [SNAKE_TIMESTEPS=3840000] [SNAKE_SEEDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."  # the scripts and runs/ are at the repository's root
source experiments/variants.sh
(( $# <= 4 )) \
  || { echo "error: at most 4 arguments (CHAIN_UPDATES CHAIN_SEEDS SNAKE_TIMESTEPS SNAKE_SEEDS), got $#" >&2; exit 2; }
updates=${1:-10000}; chain_seeds=${2:-10}; steps=${3:-3840000}; snake_seeds=${4:-3}
for pair in "CHAIN_UPDATES=$updates" "CHAIN_SEEDS=$chain_seeds" "SNAKE_TIMESTEPS=$steps" "SNAKE_SEEDS=$snake_seeds"; do
  [[ ${pair#*=} =~ ^[1-9][0-9]*$ ]] || { echo "error: ${pair%%=*} must be a positive integer, got '${pair#*=}'" >&2; exit 2; }
done
python -c "import jax, jumanji, gymnax" 2>/dev/null \
  || { echo "error: install the requirements first: pip install -r requirements.txt" >&2; exit 2; }
out=runs/ablation_$(date +%Y%m%d-%H%M%S)
chain=(--normalize-advantage --num-updates "$updates" --num-seeds "$chain_seeds" --runs-dir "$out/chain")
snake=(--normalize-advantage --total-timesteps "$steps" --num-seeds "$snake_seeds" --runs-dir "$out/snake")
for name in mg_chain mg_chain_oc bmg_chain bmg_chain_oc; do
  run_variant experiments/slurm/chain.txt "$name" --exp-name "${name}_norm" "${chain[@]}"
done
for name in mg_snake mg_snake_oc; do
  run_variant experiments/slurm/snake.txt "$name" --exp-name "${name}_norm" "${snake[@]}"
done
python plot.py "$out/chain" --out "$out/chain_normalized.png"
python plot.py "$out/snake" --out "$out/snake_normalized.png" --window 146 --mark-updates 146 292 438 1460
echo "figures in $out (docs/data/README.md says how the docs' figures are drawn from the logs there)"
