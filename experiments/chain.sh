#!/usr/bin/env bash
# Figure 2: the five variants on the Discounting Chain, paper configuration, one after another,
# then the figure and the table. Each invocation trains into its own runs/chain_<time>/.
# Usage: experiments/chain.sh [NUM_UPDATES] [NUM_SEEDS] [extra flags for every run...]
set -euo pipefail
updates=${1:-50000}; seeds=${2:-10}; shift 2 || true
out=runs/chain_$(date +%Y%m%d-%H%M%S)
common=(--num-updates "$updates" --num-seeds "$seeds" --runs-dir "$out" "$@")
python mg_chain.py  --meta-lr 0      --exp-name a2c_chain    "${common[@]}"
python mg_chain.py                   --exp-name mg_chain     "${common[@]}"
python mg_chain.py  --outer-critic   --exp-name mg_chain_oc  "${common[@]}"
python bmg_chain.py                  --exp-name bmg_chain    "${common[@]}"
python bmg_chain.py --outer-critic   --exp-name bmg_chain_oc "${common[@]}"
python plot.py "$out"/*/ --out "$out/chain.png"
