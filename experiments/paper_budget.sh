#!/usr/bin/env bash
# The paper's budget on one machine (a GPU, or many cores): every variant × seed group of a variants
# file, each run started, or continued from its checkpoint, until it is finished. Call it again with the
# same arguments as often as you like: finished runs are skipped, stopped ones continue in their own
# folder, missing ones start; with JOBS=N, N runs train side by side (and several calls of this script
# on one RUNS_DIR share the work: a run in training is locked).
#   RUNS_DIR/<NAME>_s<seed>/<run folder>   one folder per variant and seed group, as the SLURM array's
#                                          (experiments/slurm/), so `python plot.py RUNS_DIR` draws them
# Usage: experiments/paper_budget.sh RUNS_DIR VARIANTS_FILE NUM_GROUPS SEEDS_PER_GROUP
#   e.g. experiments/paper_budget.sh runs/snake_paper experiments/slurm/snake.txt 1 10   (Figures 3 and 5)
#        experiments/paper_budget.sh runs/chain_paper experiments/slurm/chain.txt 1 10   (Figure 2)
#   VARIANTS_FILE: lines NAME SCRIPT FLAGS... (experiments/slurm/*.txt); group g trains the seeds from
#     g × SEEDS_PER_GROUP (--seed, --num-seeds). It is copied to RUNS_DIR/variants.txt: a later call must
#     give the same list and numbers.
#   TIME_LIMIT_S=S   stop within about S seconds: each run gets --time-limit-s = what is left of S less
#                    MARGIN_S (default 300: a start, a compile, the last chunk and a checkpoint); unset,
#                    no limit
#   JOBS=1           runs trained at once      PYTHON=python   the interpreter
# Exit code: 0 every run finished; 3 stopped by TIME_LIMIT_S and 130 by Ctrl-C or SIGTERM (call again to
# continue); 1 some run failed (its folder holds FAILED with its exit code; delete it to try again);
# 2 bad arguments (one line; nothing started).
set -uo pipefail  # no -e: the runs' exit codes are read
fail() { echo "error: $*" >&2; exit 2; }
(($# == 4)) || fail "give RUNS_DIR VARIANTS_FILE NUM_GROUPS SEEDS_PER_GROUP, got $# arguments"
root=$(cd "$(dirname "$0")/.." && pwd)  # the training scripts are at the repository's root
source "$root/experiments/variants.sh"
runs=$(realpath -m -- "$1") variants=$2 groups=$3 per_group=$4
margin=${MARGIN_S:-300} jobs=${JOBS:-1} limit=${TIME_LIMIT_S:-}
for pair in "NUM_GROUPS=$groups" "SEEDS_PER_GROUP=$per_group" "JOBS=$jobs"; do
  [[ ${pair#*=} =~ ^[1-9][0-9]*$ ]] || fail "${pair%%=*} must be a positive integer, got '${pair#*=}'"
done
[[ $margin =~ ^[0-9]+$ ]] || fail "MARGIN_S must be a whole number of seconds, got '$margin'"
[[ -z $limit || $limit =~ ^[1-9][0-9]*$ ]] || fail "TIME_LIMIT_S must be a positive whole number of seconds, got '$limit'"
load_variants "$variants"
python=${PYTHON:-python}
"$python" -c "import jax, tyro" 2>/dev/null || fail "install the requirements first: pip install -r requirements.txt"
plan="$(cat "$variants")"$'\n'"# groups: $groups × $per_group seeds"
mkdir -p "$runs" 2>/dev/null && [[ -w $runs ]] || fail "cannot write to RUNS_DIR $runs"
if [[ -f $runs/variants.txt ]]; then
  [[ $(cat "$runs/variants.txt") == "$plan" ]] \
    || fail "$runs was started with other variants or seed groups ($runs/variants.txt)"
else
  printf '%s\n' "$plan" >"$runs/variants.txt"
fi
cd "$root" || exit 2
SECONDS=0  # TIME_LIMIT_S counts from here

tasks=()  # "NAME SEED SCRIPT FLAGS..." of every run, in order
for line in "${variant_lines[@]}"; do
  read -r -a words <<<"$line"
  for ((seed = 0; seed < groups * per_group; seed += per_group)); do tasks+=("${words[0]} $seed ${words[*]:1}"); done
done
result() {  # the summary line and the exit code: $1, else 1 if a run failed, 0 if all finished, else 3
  local task name finished=0 failed=0
  for task in "${tasks[@]}"; do
    read -r name seed _ <<<"$task"
    [[ -f $runs/${name}_s$seed/FINISHED ]] && finished=$((finished + 1))
    [[ -f $runs/${name}_s$seed/FAILED ]] && failed=$((failed + 1))
  done
  echo "== $finished of ${#tasks[@]} runs finished, $failed failed, in $runs; draw them with: python plot.py $runs"
  [[ -n $1 ]] && { echo "== stopped (exit $1); continue with the same command"; exit "$1"; }
  ((failed)) && exit 1
  ((finished == ${#tasks[@]})) && exit 0
  echo "== some runs are being trained by another call of this script"
  exit 3
}

if ((jobs > 1)); then  # N calls of this script side by side, each taking the next run nobody trains
  pids=() stop=
  for _ in $(seq "$jobs"); do JOBS=1 bash "$0" "$runs" "$variants" "$groups" "$per_group" & pids+=($!); done
  trap 'kill -TERM "${pids[@]}" 2>/dev/null' INT TERM
  for pid in "${pids[@]}"; do
    while wait "$pid"; rc=$?; ((rc > 128)) && kill -0 "$pid" 2>/dev/null; do :; done  # a trapped signal cut the wait
    ((rc == 130)) && stop=130
  done
  result "$stop"
fi

pid= stop=
trap 'stop=130; [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null' INT TERM
shopt -s nullglob
for task in "${tasks[@]}"; do
  [[ -n $stop ]] && break
  read -r name seed script flags <<<"$task"
  dir=$runs/${name}_s$seed
  [[ -f $dir/FINISHED ]] && continue
  [[ -f $dir/FAILED ]] && { echo "== $dir failed before ($(cat "$dir/FAILED")): delete $dir/FAILED to try again"; continue; }
  seconds=0  # --time-limit-s 0 is no limit (given even then: a resumed run would keep its checkpoint's)
  if [[ -n $limit ]]; then
    seconds=$((limit - SECONDS - margin))
    ((seconds > 0)) || { echo "== too little of TIME_LIMIT_S=$limit left to start $dir"; stop=3; break; }
  fi
  mkdir -p "$dir"
  exec {lock}>"$dir/.lock"
  flock -n "$lock" || { echo "== $dir: another call is training it"; exec {lock}>&-; continue; }
  [[ -f $dir/FINISHED || -f $dir/FAILED ]] && { exec {lock}>&-; continue; }  # done by another call meanwhile
  # A run folder without checkpoint.msgpack was cut before its first checkpoint: it cannot continue,
  # and plot.py would pool its partial log as a second run of the same seeds, so it goes.
  for run in "$dir"/*/; do [[ -f $run/checkpoint.msgpack ]] || rm -rf -- "$run"; done
  checkpoints=("$dir"/*/checkpoint.msgpack)
  if ((${#checkpoints[@]})); then
    command=("$python" "$script" --resume "${checkpoints[0]%/checkpoint.msgpack}")
  else
    read -r -a words <<<"$flags"
    command=("$python" "$script" "${words[@]}" --seed "$seed" --num-seeds "$per_group" --runs-dir "$dir")
  fi
  command+=(--time-limit-s "$seconds")
  echo "== ${command[*]}"
  "${command[@]}" &  # in the background: a signal to this script reaches it as SIGTERM (it holds the lock too)
  pid=$!
  while wait "$pid"; rc=$?; ((rc > 128)) && kill -0 "$pid" 2>/dev/null; do :; done  # a trapped signal cut the wait
  pid=
  case $rc in
    0) touch "$dir/FINISHED" ;;
    3) stop=3 ;;  # its time limit, which is this call's
    130) stop=130 ;;
    *) echo "exit $rc, $(date -u '+%F %T') UTC" >"$dir/FAILED" ;;
  esac
  exec {lock}>&-
done
result "$stop"
