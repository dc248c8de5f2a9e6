#!/usr/bin/env bash
# The paper's full Snake budget (Figures 3 and 5: five variants, 10 seeds, 75M inner steps each,
# evaluation on) on a GPU machine, in pieces. Call it again and again: each call continues where
# the last one stopped and ends within GPU_CALL_SECONDS of wall time (default 480 s, for a
# 10-minute command limit). Each call:
#   1. prints the versions and jax.devices(); if jax, jumanji, gymnax or tyro is not installed,
#      installs the wheels of GPU_WHEELS (experiments/gpu_wheels.sh made them) offline first;
#   2. the first call only: a few fast correctness tests and the benchmark (benchmark.py rows);
#   3. trains MG + outer critic, MG, BMG + outer critic, BMG, A2C in this order, each continued
#      with --resume from its checkpoint when it has one, with --time-limit-s set to what is left
#      of the call (less GPU_MARGIN_S for the start, the compile and the last chunk); a run cut
#      by its time limit ends the call;
#   4. leaves in OUT_DIR (at most 8 files, each < 16 MiB): progress.txt, results.tar.gz (per run
#      args.json, metrics.csv cut to the columns plot.py reads, every row, and the first seed's
#      model.msgpack once the run is finished; no checkpoints: 22 MB each), benchmark.md,
#      tests.txt, versions.txt and call.log (this call's whole output).
# The state (runs, markers, the compilation cache, installed wheels) lives in GPU_RUNS_DIR
# (default runs/gpu), which stays on the machine while it is warm; a fresh machine starts from zero.
#
# Usage: experiments/gpu.sh OUT_DIR
#   GPU_CALL_SECONDS=480   wall-time budget of this call, in seconds
#   GPU_MARGIN_S=60        seconds of a run that are not training: start, compile, last chunk, checkpoint
#   GPU_RUNS_DIR=runs/gpu  the state folder
#   GPU_WHEELS=wheels      the wheels folder (installed with pip --no-index into GPU_RUNS_DIR/site)
#   GPU_DRY_RUN=1          the same sequence with tiny budgets, on a CPU (tests/test_gpu_dry_run.py)
#   GPU_TIME_LIMIT_S=S     every run's --time-limit-s in this call (default: computed as above)
#   GPU_VARIANTS="..."     the variants, in order (default: mg_snake_oc mg_snake bmg_snake_oc bmg_snake a2c_snake)
set -euo pipefail
(( $# == 1 )) || { echo "error: give one argument, OUT_DIR (where this call's results go), got $#" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)  # the scripts are at the repository's root
out=$(realpath -m -- "$1")
state=$(realpath -m -- "${GPU_RUNS_DIR:-$root/runs/gpu}")
wheels=$(realpath -m -- "${GPU_WHEELS:-$root/wheels}")
call_seconds=${GPU_CALL_SECONDS:-480}
margin=${GPU_MARGIN_S:-60}
dry=${GPU_DRY_RUN:-0}
time_limit=${GPU_TIME_LIMIT_S:-}
for pair in "GPU_CALL_SECONDS=$call_seconds" "GPU_MARGIN_S=$margin"; do
  [[ ${pair#*=} =~ ^[0-9]+$ ]] || { echo "error: ${pair%%=*} must be a whole number of seconds, got '${pair#*=}'" >&2; exit 2; }
done
[[ $dry == 0 || $dry == 1 ]] || { echo "error: GPU_DRY_RUN must be 0 or 1, got '$dry'" >&2; exit 2; }
[[ -z $time_limit || $time_limit =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ && ! $time_limit =~ ^[0.]+$ ]] \
  || { echo "error: GPU_TIME_LIMIT_S must be a number of seconds > 0, got '$time_limit'" >&2; exit 2; }

declare -A COMMAND=([mg_snake_oc]="mg_snake.py --outer-critic" [mg_snake]="mg_snake.py"
                    [bmg_snake_oc]="bmg_snake.py --outer-critic" [bmg_snake]="bmg_snake.py"
                    [a2c_snake]="mg_snake.py --meta-lr 0")
all_variants="mg_snake_oc mg_snake bmg_snake_oc bmg_snake a2c_snake"  # the order of the runs
read -ra variants <<< "${GPU_VARIANTS:-$all_variants}"
for v in "${variants[@]}"; do
  [[ -v COMMAND[$v] ]] || { echo "error: GPU_VARIANTS: unknown variant '$v' (known: $all_variants)" >&2; exit 2; }
done
if (( dry )); then  # seconds on a CPU: 50 updates of 8 envs, 2 seeds, one evaluation (the flags of tests/test_resume.py)
  run_flags=(--num-envs 8 --total-timesteps 2000 --log-every 2 --eval-every 50 --num-seeds 2 --save-model)
  tests=(tests/test_snake.py -k gae_by_hand)
  bench=(--scripts mg_chain --num-seeds 1 --updates 2 --repeats 1)
  tests_max=120; bench_max=120; min_train=0
else  # the paper's budget; log every 20 updates and evaluate every 150 (the defaults)
  run_flags=(--total-timesteps 75000000 --num-seeds 10 --save-model --checkpoint-every-s 120)
  tests=(tests/test_snake.py tests/test_chain.py tests/test_reliability.py
         -k "finite_difference or haiku or first_meta_step or outer_head or matmuls_are_full")
  bench=(--scripts mg_snake bmg_snake --num-seeds 1 10 --updates 50 --repeats 3)
  tests_max=150; bench_max=240; min_train=30
fi
mkdir -p "$out" "$state" 2>/dev/null && [[ -w $out && -w $state ]] \
  || { echo "error: cannot write to OUT_DIR $out or GPU_RUNS_DIR $state" >&2; exit 2; }
python=${PYTHON:-}  # else the first of python3, python that has JAX (the GPU image's python3 has it)
for candidate in python3 python; do
  [[ -z $python ]] && command -v "$candidate" >/dev/null \
    && "$candidate" -c "import importlib.util as u, sys; sys.exit(u.find_spec('jax') is None)" 2>/dev/null \
    && python=$(command -v "$candidate")
done
[[ -n $python ]] || { echo "error: no python with JAX on PATH (set PYTHON=...)" >&2; exit 2; }
cd "$root"

remaining() { echo $(( call_seconds - SECONDS )); }

main() {
  local call=$(( $(cat "$state/calls" 2>/dev/null || echo 0) + 1 ))
  echo "$call" > "$state/calls"
  echo "== gpu.sh call $call, $(date -u '+%F %T') UTC: budget ${call_seconds}s, state $state$( (( dry )) && echo ', DRY RUN')"

  # 1. The packages: the image's, and what the wheels add (installed into the state folder).
  if [[ -d $state/site ]]; then export PYTHONPATH=$state/site${PYTHONPATH:+:$PYTHONPATH}; fi
  local packages=(jax jaxlib flax optax jumanji gymnax tyro tensorboard matplotlib msgpack)
  local imports="import $(IFS=,; echo "${packages[*]}")"
  # Found, not imported: importing them all costs seconds of every call; after an install they are imported.
  local found="import importlib.util as u, sys; sys.exit(any(u.find_spec(p) is None for p in sys.argv[1:]))"
  if ! "$python" -c "$found" "${packages[@]}" 2>/dev/null; then
    compgen -G "$wheels/*.whl" >/dev/null \
      || { echo "error: some packages are missing and $wheels holds no wheels (experiments/gpu_wheels.sh makes them)" >&2; return 2; }
    echo "installing the wheels of $wheels into $state/site (offline)"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$state/site" "$wheels"/*.whl
    export PYTHONPATH=$state/site${PYTHONPATH:+:$PYTHONPATH}
    "$python" -c "$imports" || { echo "error: the packages still do not import after installing $wheels (above: why)" >&2; return 2; }
  fi
  "$python" - <<'EOF' | tee "$out/versions.txt"
import importlib.metadata as md, platform, jax
names = ["jax", "jaxlib", "flax", "optax", "jumanji", "gymnax", "tyro", "numpy", "tensorboard"]
plugins = sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].startswith("jax-cuda"))
print(f"python {platform.python_version()} | " + " | ".join(f"{n} {md.version(n)}" for n in names + plugins))
print(f"jax.devices(): {jax.devices()}")
EOF
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$out/versions.txt" || true
  fi
  export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$state/jax_cache}  # a resumed run loads its program
  export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-0}

  # 2. The first call: tests and benchmark, once, each within its share of the budget.
  if [[ ! -e $state/first_call.done ]]; then
    local cap=$(( $(remaining) - margin )); (( cap > tests_max )) && cap=$tests_max
    echo "== tests (at most ${cap}s): pytest -q ${tests[*]}"  # some start processes: no GPU memory preallocated
    XLA_PYTHON_CLIENT_PREALLOCATE=false timeout -k 10 "$(( cap > 1 ? cap : 1 ))" "$python" -m pytest -q -p no:cacheprovider "${tests[@]}" 2>&1 \
      | tee "$state/tests.txt" || echo "tests: exit ${PIPESTATUS[0]} (124: out of time)" | tee -a "$state/tests.txt"
    cap=$(( $(remaining) - margin )); (( cap > bench_max )) && cap=$bench_max
    echo "== benchmark (at most ${cap}s): python benchmark.py ${bench[*]}"
    timeout -k 10 "$(( cap > 1 ? cap : 1 ))" "$python" benchmark.py "${bench[@]}" 2>&1 \
      | tee "$state/benchmark.md" || echo "benchmark: exit ${PIPESTATUS[0]} (124: out of time)" | tee -a "$state/benchmark.md"
    touch "$state/first_call.done"
  fi

  # 3. The runs, in order: finished ones are skipped, a stopped one continues.
  local v
  for v in "${variants[@]}"; do
    local folder=$state/snake/$v dir="" d
    [[ -e $folder/FAILED ]] && { echo "== $v: skipped, it failed before ($(cat "$folder/FAILED"))"; continue; }
    mkdir -p "$folder"
    for d in "$folder"/*/; do  # a run that died before its first checkpoint cannot continue: it goes
      [[ -d $d ]] || continue
      if [[ -f $d/checkpoint.msgpack ]]; then dir=${d%/}; else echo "== $v: removing $d (no checkpoint)"; rm -rf "$d"; fi
    done
    local before=0 total=""
    if [[ -n $dir ]]; then
      read -r before total < <("$python" experiments/gpu_results.py status "$dir")
      (( before >= total )) && { echo "== $v: finished ($total updates)"; continue; }
    fi
    local left=$(( $(remaining) - margin ))
    (( left > min_train )) || { echo "== $v: stopping this call, ${left}s of training left"; break; }
    local limit=${time_limit:-$left}
    local -a command
    if [[ -n $dir ]]; then
      command=(${COMMAND[$v]%% *} --resume "$dir" --time-limit-s "$limit")
    else
      command=(${COMMAND[$v]} "${run_flags[@]}" --exp-name "$v" --runs-dir "$folder" --time-limit-s "$limit")
    fi
    echo "== $v: python ${command[*]}"
    local start=$SECONDS rc=0
    # The time limit stops the run at a log point; SIGTERM (a chunk or a compile too long) stops it too, with a checkpoint.
    timeout -k 20 "$(( $(remaining) - 10 > 1 ? $(remaining) - 10 : 1 ))" "$python" "${command[@]}" || rc=$?
    [[ -z $dir ]] && dir=$(find "$folder" -mindepth 1 -maxdepth 1 -type d | sort | tail -n 1)
    local after=0
    [[ -n $dir && -f $dir/checkpoint.msgpack ]] && read -r after total < <("$python" experiments/gpu_results.py status "$dir")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$call" "$v" "$(date -u +%FT%TZ)" "$(( SECONDS - start ))" "$rc" "$before" "$after" \
      >> "$state/calls.tsv"
    if (( rc != 0 && rc != 124 && rc != 130 )); then
      echo "exit $rc after $after updates; see call.log" > "$folder/FAILED"
      echo "== $v: failed with exit $rc; the next calls skip it (delete $folder/FAILED to try again)"
      continue
    fi
    if [[ -z $total ]] || (( after < total )); then
      echo "== $v: stopped at update $after of ${total:-?} (exit $rc); the next call continues it"
      break
    fi
  done
}

pack() {  # 4. OUT_DIR: the results of every run so far, and this call's log
  cp "$state/tests.txt" "$out/tests.txt" 2>/dev/null || true
  cp "$state/benchmark.md" "$out/benchmark.md" 2>/dev/null || true
  "$python" experiments/gpu_results.py pack "$state" "$out" "${variants[@]}"
  echo "== progress after ${SECONDS}s ($out/progress.txt):"
  cat "$out/progress.txt"
}

# main runs in a subshell of its own so that `set -e` holds in it; the results are packed whatever it did.
{
  set +e
  (set -e; main); rc=$?
  (set -e; pack); packed=$?
  (( rc == 0 )) && rc=$packed
  exit "$rc"
} 2>&1 | tee "$out/call.log"
