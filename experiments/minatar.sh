#!/usr/bin/env bash
# Beyond the paper (docs/minatar.md): does the outer critic matter on a MinAtar game? Four arms on one
# game, SEEDS seeds each, 5M inner steps of 128 environments × 5 steps (7,812 updates), entropy coefficient
# 0.001 (docs/minatar.md says why): MG and MG + outer critic from γ0 = 0.8, then A2C with γ fixed at 0.8
# and at 0.99. Each arm's seeds train together, started or continued from their checkpoint by
# experiments/paper_budget.sh: call it again with the same arguments after a stop and it goes on.
# Usage: experiments/minatar.sh GAME [RUNS_DIR=runs/minatar_<game>]
#   GAME: Breakout, Asterix, Freeway, SpaceInvaders or Seaquest
#   SEEDS=5   seeds per arm      JOBS=1, TIME_LIMIT_S, PYTHON: as experiments/paper_budget.sh
# Then: python plot.py RUNS_DIR --out RUNS_DIR/minatar.png; python experiments/reference_tables.py RUNS_DIR --reference none
set -euo pipefail
fail() { echo "error: $*" >&2; exit 2; }
(($# >= 1 && $# <= 2)) || fail "give GAME [RUNS_DIR], got $# arguments"
[[ $1 =~ ^(Breakout|Asterix|Freeway|SpaceInvaders|Seaquest)$ ]] \
  || fail "GAME must be Breakout, Asterix, Freeway, SpaceInvaders or Seaquest, got '$1'"
seeds=${SEEDS:-5}
[[ $seeds =~ ^[1-9][0-9]*$ ]] || fail "SEEDS must be a positive integer, got '$seeds'"
game=$1-MinAtar
runs=${2:-runs/minatar_${1,,}}
mkdir -p "$runs" 2>/dev/null || fail "cannot create RUNS_DIR $runs"
# The arms, as a variants file of paper_budget.sh (NAME SCRIPT FLAGS...); written into RUNS_DIR, where
# paper_budget.sh checks that a later call trains the same list.
common="--env-id $game --num-envs 128 --ent-coef 0.001 --total-timesteps 5000000 --eval-every 250"
cat >"$runs/arms.txt" <<EOF
mg        mg_snake.py                               --exp-name mg        $common
mg_oc     mg_snake.py --outer-critic                --exp-name mg_oc     $common
a2c_g0.8  mg_snake.py --meta-lr 0 --gamma-init 0.8  --exp-name a2c_g0.8  $common
a2c_g0.99 mg_snake.py --meta-lr 0 --gamma-init 0.99 --exp-name a2c_g0.99 $common
EOF
exec "$(dirname "$0")/paper_budget.sh" "$runs" "$runs/arms.txt" 1 "$seeds"
