#!/usr/bin/env bash
# The bias of the meta-gradient, measured along training: MG, MG + outer critic, BMG and BMG +
# outer critic, with the oracle values (the paper's setting) and with the learned critic (--no-true-value),
# on the chains whose better reward is 30 (the paper's, --mapping-seed 3), 10 and 100 steps away
# (--mapping-seed 2 and 4): 24 runs, every one with --measure-bias, into runs/meta_grad_bias_<time>/;
# then the figure and the table (experiments/meta_grad_bias.py, into the same folder).
# Usage: experiments/meta_grad_bias.sh [NUM_UPDATES=5000] [NUM_SEEDS=5] [extra flags for every run...]
#        experiments/meta_grad_bias.sh --continue runs/meta_grad_bias_<time>
#   Extra flags go to every run (e.g. --log-every 100); `--runs-dir DIR` puts the grid's folder in DIR
#   instead of runs/. The options that define the grid (variant, critic, mapping, budget) are its own.
#   --continue: a stopped grid goes on with the options it was started with (grid.args in its folder):
#   finished runs are skipped, stopped ones continue from their checkpoint (python <script> --resume
#   <run dir> --num-updates NUM_UPDATES), missing ones are started; then the figure and the table.
# Time: ≈ 88 min on an idle 2-core CPU at 5 seeds × 5,000 updates (77–98 min; per update, 5 seeds with
# --measure-bias: MG 18–26 ms and BMG 22–31 ms with the oracle, 51–67 ms with the learned critic, timed
# in alternation with benchmark.py's 10-seed MG + outer critic update, 35.5 ms idle; + ~8 s per run to
# start and compile). Each run writes a checkpoint every 5 minutes, and timings.txt in the grid's folder
# records every run's wall time.
set -euo pipefail
fail() { echo "error: $*" >&2; exit 2; }
variants=("mg mg_chain.py" "mg_oc mg_chain.py --outer-critic" "bmg bmg_chain.py" "bmg_oc bmg_chain.py --outer-critic")
critics=("oracle --true-value" "learned --no-true-value")
mappings=(3 2 4)  # the better reward 30 (the paper's chain), 10 and 100 steps away
own_flags=" --exp-name --runs-dir --mapping-seed --outer-critic --no-outer-critic --true-value --no-true-value --num-seeds "
own_flags+="--num-updates --measure-bias --no-measure-bias --resume --continue "
out=; parent=runs
if [[ ${1:-} == --continue ]]; then
  (( $# == 2 )) \
    || fail "--continue takes one folder and nothing else: experiments/meta_grad_bias.sh --continue runs/meta_grad_bias_<time>"
  [[ -d $2 ]] || fail "'$2' is not a directory"
  [[ -f $2/grid.args ]] || fail "$2 has no grid.args: not a folder made by experiments/meta_grad_bias.sh"
  out=$(CDPATH= cd -- "$2" && pwd)  # absolute: the scripts run from the repository's root
  mapfile -t saved < "$out/grid.args"
  set -- "${saved[@]}"
fi
updates=${1:-5000}; seeds=${2:-5}
shift $(( $# < 2 ? $# : 2 ))  # what follows the two numbers goes to every run
for pair in "NUM_UPDATES=$updates" "NUM_SEEDS=$seeds"; do
  [[ ${pair#*=} =~ ^[1-9][0-9]*$ ]] || fail "${pair%%=*} must be a positive integer, got '${pair#*=}'"
done
extra=()
while (( $# )); do
  flag=${1%%=*}; flag=${flag//_/-}
  if [[ $flag == --runs-dir ]]; then
    [[ -z $out ]] || fail "--runs-dir: the grid's folder is already $out"
    if [[ $1 == *=* ]]; then
      parent=${1#*=}
      shift
    else
      (( $# >= 2 )) || fail "--runs-dir needs a folder"
      parent=$2
      shift 2
    fi
    [[ -n $parent ]] || fail "--runs-dir needs a folder"
    [[ $parent == /* ]] || parent=$PWD/$parent  # the caller's folder: the scripts run from the repository's root
    continue
  fi
  [[ $own_flags != *" $flag "* ]] || fail "$flag is set by the grid itself; give NUM_UPDATES and NUM_SEEDS as numbers"
  extra+=("$1"); shift
done
runs=(); names=()  # with --continue: the grid's run directories and the exp name of each
if [[ -n $out ]]; then
  while IFS= read -r -d '' file; do
    runs+=("$(dirname "$file")")
  done < <(find "$out" -mindepth 2 -maxdepth 2 -name args.json -print0 | LC_ALL=C sort -z)
  for run in "${runs[@]}"; do  # every run checked before any trains
    name=$(grep -o '"exp_name": *"[^"]*"' "$run/args.json" | head -n 1 | cut -d '"' -f 4 || true)
    script=$(grep -o '"script": *"[^"]*"' "$run/args.json" | head -n 1 | cut -d '"' -f 4 || true)
    expected=
    for v in "${variants[@]}"; do
      read -r -a words <<< "$v"
      [[ $name =~ ^${words[0]}_(oracle|learned)_m[234]$ ]] && expected=${words[1]}
    done
    [[ -n $expected ]] || fail "$run (exp name '$name') is not one of this grid's runs; move it out of $out"
    [[ $script == "$expected" ]] || fail "$run ran $script, not $expected as its exp name '$name' says; move it out of $out"
    [[ " ${names[*]} " != *" $name "* ]] || fail "two runs named $name in $out; move one out"
    [[ -f $run/checkpoint.msgpack ]] \
      || fail "$run has no checkpoint.msgpack to continue from (it stopped within its first 5 minutes);" \
        "delete it and continue again"
    names+=("$name")
  done
fi
cd "$(dirname "$0")/.."  # the scripts and runs/ are at the repository's root
python -c "import jax, gymnax, matplotlib" 2>/dev/null \
  || fail "install the requirements first: pip install -r requirements.txt"
if [[ -z $out ]]; then
  out=$parent/meta_grad_bias_$(date +%Y%m%d-%H%M%S)
  mkdir -p -- "$parent" && mkdir -- "$out" 2>/dev/null || fail "cannot create $out (it exists, or $parent is not writable)"
  printf '%s\n' "$updates" "$seeds" ${extra[@]+"${extra[@]}"} > "$out/grid.args"
  echo "training into $out: 4 variants × 2 critics × 3 chains, $seeds seeds × $updates updates each"
  if (( seeds == 5 )); then
    estimate=$(( updates * 1018 / 1000 + 24 * 8 ))  # seconds: Σ ms per update of the 24 runs at 5 seeds, idle
    echo "estimated time on an idle 2-core CPU: ≈ $(( (estimate + 30) / 60 )) min" \
      "(measured at 5 seeds; see the script's header)"
  fi
else
  echo "continuing the grid in $out: $seeds seeds × $updates updates each, ${#runs[@]} of 24 runs there"
fi
draw=(python experiments/meta_grad_bias.py "$out")
echo "after a stop, continue with: experiments/meta_grad_bias.sh --continue $out"
echo "then draw the figure and the table with: ${draw[*]}"
start=$SECONDS
for critic in "${critics[@]}"; do
  read -r -a c <<< "$critic"
  for mapping in "${mappings[@]}"; do
    for variant in "${variants[@]}"; do
      read -r -a v <<< "$variant"
      name=${v[0]}_${c[0]}_m$mapping
      begin=$SECONDS
      run=
      for i in "${!names[@]}"; do [[ ${names[i]} == "$name" ]] && run=${runs[i]}; done
      if [[ -n $run ]]; then
        envs=$(grep -o '"num_envs": *[0-9]*' "$run/args.json" | head -n 1 | grep -o '[0-9]*$' || echo 128)
        logged=0  # the last log point in metrics.csv: global_step (column 2) = updates × 100 × num_envs
        [[ -f $run/metrics.csv ]] \
          && logged=$(awk -F, 'NR > 1 && $2 + 0 > last { last = $2 + 0 } END { print last + 0 }' "$run/metrics.csv")
        if (( logged >= updates * 100 * envs )); then
          echo "already done: $run"
          continue
        fi
        echo "continuing $name: $run"
        python "${v[1]}" --resume "$run" --num-updates "$updates"
      else
        python "${v[@]:1}" ${c[1]} --mapping-seed "$mapping" --measure-bias --num-seeds "$seeds" --num-updates "$updates" \
          --log-every 50 --checkpoint-every-s 300 --runs-dir "$out" --exp-name "$name" ${extra[@]+"${extra[@]}"}
      fi
      echo "$name $(( SECONDS - begin ))s" >> "$out/timings.txt"
    done
  done
done
took=$(( SECONDS - start ))
echo "all runs of this invocation: $took s" >> "$out/timings.txt"
echo "grid done in $(( took / 60 )) min $(( took % 60 )) s (run times in $out/timings.txt)"
"${draw[@]}"
echo "redraw the figure and the table: ${draw[*]} [--window N] [--out PNG]"
