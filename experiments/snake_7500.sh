#!/usr/bin/env bash
# Snake to 7,500 updates (19.2M inner steps): the five variants (A2C, MG, MG + outer critic, BMG, BMG +
# outer critic) × 3 seeds, evaluated every 150 updates, drawn against the reference's curves (10 seeds)
# with γ and the outer advantages as means over its 146-update epochs, and the tables at updates 1,460
# and 7,446 (experiments/reference_tables.py: each seed's values, and with − without the outer critic seed
# by seed), printed and written to <the runs' folder>/snake_7500.md.
# Usage: experiments/snake_7500.sh [RUNS_DIR]
#   without RUNS_DIR: trains the five variants from scratch into runs/snake_7500_<time>/
#   with RUNS_DIR, a folder holding runs (e.g. runs/snake_early_<time>/ stopped at 1,500 updates, or a
#   stopped runs/snake_7500_<time>/): continues each run there from its checkpoint to 19.2M steps
#   (mg_snake.py or bmg_snake.py, as its args.json says; a run already there is left as it is), and
#   trains any of the five variants (exp names mg_snake, mg_snake_oc, bmg_snake, bmg_snake_oc,
#   a2c_snake) that has no run there, e.g. those a stopped experiments/snake_7500.sh had not started.
# Each run writes a checkpoint every 5 minutes: after a stop, run this again with its folder.
set -euo pipefail
steps=19200000; seeds=3; updates=7500  # 19,200,000 inner steps = 7,500 updates of 512 envs × 5 steps
(( $# <= 1 )) || { echo "error: at most 1 argument (RUNS_DIR), got $#" >&2; exit 2; }
variants=("mg_snake mg_snake.py" "mg_snake_oc mg_snake.py --outer-critic" "bmg_snake bmg_snake.py"
          "bmg_snake_oc bmg_snake.py --outer-critic" "a2c_snake mg_snake.py --meta-lr 0")  # exp name, script, flags
out=; runs=(); scripts=(); names=()  # with RUNS_DIR: that folder, its run directories, the script and exp name of each
if (( $# == 1 )); then
  [[ -d $1 ]] || { echo "error: RUNS_DIR '$1' is not a directory" >&2; exit 2; }
  out=$(CDPATH= cd -- "$1" && pwd)  # absolute: the scripts run from the repository's root
  while IFS= read -r -d '' file; do runs+=("$(dirname "$file")"); done < <(find "$out" -name args.json -print0 | LC_ALL=C sort -z)
  (( ${#runs[@]} )) || { echo "error: no run (a directory with args.json) in $out" >&2; exit 2; }
  for run in "${runs[@]}"; do  # every run checked before any trains
    script=$(grep -o '"script": *"[^"]*"' "$run/args.json" | head -n 1 | cut -d '"' -f 4 || true)
    [[ $script == mg_snake.py || $script == bmg_snake.py ]] \
      || { echo "error: $run is not a Snake run (its args.json names the script '$script', not mg_snake.py or bmg_snake.py)" >&2; exit 2; }
    [[ -f $run/checkpoint.msgpack ]] \
      || { echo "error: $run has no checkpoint.msgpack to continue from (it stopped before its first one); move it out of $out" >&2; exit 2; }
    scripts+=("$script")
    names+=("$(grep -o '"exp_name": *"[^"]*"' "$run/args.json" | head -n 1 | cut -d '"' -f 4 || true)")
  done
fi
cd "$(dirname "$0")/.."  # the scripts and runs/ are at the repository's root
python -c "import jax, jumanji, gymnax" 2>/dev/null \
  || { echo "error: install the requirements first: pip install -r requirements.txt" >&2; exit 2; }
out=${out:-runs/snake_7500_$(date +%Y%m%d-%H%M%S)}
plot=(python plot.py "$out" --out "$out/snake_7500.png" --window 146 --mark-updates 438 1460 7446)
tables=(python experiments/reference_tables.py "$out" --at-updates 1460 7446 --out "$out/snake_7500.md")
if (( ${#runs[@]} )); then echo "continuing the runs in $out to $updates updates"; else echo "training into $out"; fi
echo "after a stop, continue with: experiments/snake_7500.sh $out"
echo "then draw the figure and the tables with: ${plot[*]}; ${tables[*]}"
new_run() {  # EXP_NAME SCRIPT [FLAGS...]: trains the variant from scratch into $out
  local name=$1; shift
  python "$@" --exp-name "$name" --total-timesteps "$steps" --num-seeds "$seeds" --runs-dir "$out" --checkpoint-every-s 300
}
for i in "${!runs[@]}"; do
  logged=0  # the last log point in metrics.csv: global_step (column 2), inner steps of one seed
  [[ -f ${runs[i]}/metrics.csv ]] \
    && logged=$(awk -F, 'NR > 1 && $2 + 0 > last { last = $2 + 0 } END { print last + 0 }' "${runs[i]}/metrics.csv")
  if (( logged >= steps )); then
    echo "already at $updates updates: ${runs[i]}"
  else
    python "${scripts[i]}" --resume "${runs[i]}" --total-timesteps "$steps"
  fi
done
for variant in "${variants[@]}"; do
  read -r -a words <<< "$variant"
  if [[ " ${names[*]} " != *" ${words[0]} "* ]]; then
    (( ${#runs[@]} == 0 )) || echo "no ${words[0]} run in $out: training it"
    new_run "${words[@]}"
  fi
done
"${plot[@]}"
"${tables[@]}"
