#!/usr/bin/env bash
# The paper's Snake budget (Figures 3 and 5: five variants, 10 seeds, 75M inner steps each) on a GPU
# machine that gives each command a few minutes, returns only a few small files, and has no PyPI: a
# wrapper over experiments/paper_budget.sh. Call it again and again with the same GPU_RUNS_DIR (it must
# stay on the machine); each call
#   1. installs the wheels of GPU_WHEELS offline (experiments/gpu_wheels.sh downloads them elsewhere)
#      when jax, jumanji, gymnax or tyro does not import;
#   2. continues experiments/paper_budget.sh GPU_RUNS_DIR experiments/slurm/snake.txt 1 10, stopped
#      within GPU_CALL_SECONDS;
#   3. leaves in OUT_DIR: results.tar.gz (each run's args.json and metrics.csv, and seed 0's
#      model.msgpack; no checkpoints, no TensorBoard logs), versions.txt and call.log.
# Usage: experiments/gpu.sh OUT_DIR
#   GPU_CALL_SECONDS=480   this call's wall time, packing included
#   GPU_RUNS_DIR=runs/gpu  the runs (and the installed wheels in GPU_RUNS_DIR/site)
#   GPU_WHEELS=wheels      the wheels folder
#   MARGIN_S=60            paper_budget.sh's: a start, a compile, the last chunk and a checkpoint
# Exit code: paper_budget.sh's (0 all finished, 3 call again, 1 a run failed), or 2 for bad input.
set -uo pipefail
fail() { echo "error: $*" >&2; exit 2; }
(($# == 1)) || fail "give one argument, OUT_DIR (where this call's results go), got $#"
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m -- "$1")
runs=$(realpath -m -- "${GPU_RUNS_DIR:-$root/runs/gpu}")
wheels=$(realpath -m -- "${GPU_WHEELS:-$root/wheels}")
seconds=${GPU_CALL_SECONDS:-480}
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds > 30)) \
  || fail "GPU_CALL_SECONDS must be a whole number of seconds > 30, got '$seconds'"
mkdir -p "$out" "$runs" 2>/dev/null && [[ -w $out && -w $runs ]] || fail "cannot write to OUT_DIR $out or GPU_RUNS_DIR $runs"
python=${PYTHON:-$(command -v python3 || command -v python)}
export PYTHON=$python MARGIN_S=${MARGIN_S:-60}
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$runs/jax_cache}  # a resumed run loads its program

call() {
  if [[ -d $runs/site ]]; then export PYTHONPATH=$runs/site${PYTHONPATH:+:$PYTHONPATH}; fi
  if ! "$python" -c "import jax, jumanji, gymnax, tyro" 2>/dev/null; then
    compgen -G "$wheels/*.whl" >/dev/null || fail "jax, jumanji, gymnax or tyro is missing and $wheels holds no wheels"
    echo "== installing the wheels of $wheels into $runs/site (offline)"
    "$python" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$runs/site" "$wheels"/*.whl || exit 2
    export PYTHONPATH=$runs/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  local versions="print('python', platform.python_version(), '| jax', jax.__version__, '|', jax.devices())"
  "$python" -c "import jax, platform; $versions" | tee "$out/versions.txt"
  local left=$((seconds - 30 - SECONDS)) rc=3  # the last 30 s pack the results
  if ((left > 0)); then
    TIME_LIMIT_S=$left bash "$root/experiments/paper_budget.sh" "$runs/snake" "$root/experiments/slurm/snake.txt" 1 10
    rc=$?
  fi
  (cd "$runs/snake" && tar czf "$out/results.tar.gz.tmp" --exclude='checkpoint.msgpack*' --exclude='events.out.tfevents.*' \
    --exclude='seed[1-9]*/model.msgpack' --exclude='.lock' .) && mv "$out/results.tar.gz.tmp" "$out/results.tar.gz"
  echo "== $out/results.tar.gz: $(du -h "$out/results.tar.gz" | cut -f1); unpack with: tar xzf results.tar.gz -C DIR"
  return "$rc"
}

call 2>&1 | tee "$out/call.log"
exit "${PIPESTATUS[0]}"
