#!/usr/bin/env bash
# Figure 6 (paper Appendix D.2): MG and BMG, with and without the outer critic, with the outer-loss
# advantage normalised, on the chain and on Snake. A2C is left out: normalisation only touches
# the outer loss, which A2C does not have.
# Usage: experiments/ablation.sh [CHAIN_UPDATES] [CHAIN_SEEDS] [SNAKE_TIMESTEPS] [SNAKE_SEEDS]
set -euo pipefail
updates=${1:-10000}; chain_seeds=${2:-10}; steps=${3:-3840000}; snake_seeds=${4:-2}
chain=(--normalize-advantage --num-updates "$updates" --num-seeds "$chain_seeds")
snake=(--normalize-advantage --total-timesteps "$steps" --num-seeds "$snake_seeds")
python mg_chain.py                  --exp-name mg_chain_norm     "${chain[@]}"
python mg_chain.py  --outer-critic  --exp-name mg_chain_oc_norm  "${chain[@]}"
python bmg_chain.py                 --exp-name bmg_chain_norm    "${chain[@]}"
python bmg_chain.py --outer-critic  --exp-name bmg_chain_oc_norm "${chain[@]}"
python mg_snake.py                  --exp-name mg_snake_norm     "${snake[@]}"
python mg_snake.py  --outer-critic  --exp-name mg_snake_oc_norm  "${snake[@]}"
python bmg_snake.py                 --exp-name bmg_snake_norm    "${snake[@]}"
python bmg_snake.py --outer-critic  --exp-name bmg_snake_oc_norm "${snake[@]}"
python plot.py runs/*_chain*_norm__* --out docs/chain_normalized.png
python plot.py runs/*_snake*_norm__* --out docs/snake_normalized.png
