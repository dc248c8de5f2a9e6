import os
import shlex
import signal
import subprocess
import sys
import tempfile

import jax  # noqa: F401  (imported before the cache is set: this process compiles its own functions once anyway)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Tests that run the scripts start many processes with the same few configurations: a persistent
# compilation cache, inherited by every subprocess, lets each configuration compile once per test
# session. The numbers do not change: the same executable is loaded instead of rebuilt.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jax_cache_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
SUBPROCESS_ENV = dict(os.environ)

# The programs that later tests' CLI runs compile, compiled ahead while the first test files (mostly
# in-process, one core) run: a background process at nice 19 runs each command below for one chunk,
# and the cache serves the program to every test that starts the same configuration (the budget
# does not enter the program). A test that gets there first compiles it itself. Only for the whole
# suite (what CI runs): a single file has nothing to overlap with.
SNAKE_RUN = ["--num-envs", "8", "--log-every", "2", "--total-timesteps", "80"]  # 2 updates: one chunk
CHAIN_RUN = ["--num-envs", "8", "--log-every", "2", "--num-updates", "2"]
SEEDS_EVAL = ["--num-seeds", "2", "--eval-every", "50"]
WARM_UP = [  # in the order the tests need them
    ["mg_chain.py", *CHAIN_RUN, "--num-seeds", "2", "--outer-critic"],  # test_chain's CLI runs, test_reliability, test_resume
    ["bmg_chain.py", *CHAIN_RUN, "--num-seeds", "2", "--outer-critic"],
    ["mg_snake.py", *SNAKE_RUN, *SEEDS_EVAL, "--outer-critic"],  # test_gpu_dry_run, test_resume, test_watch
    ["mg_snake.py", *SNAKE_RUN, *SEEDS_EVAL, "--meta-lr", "0"],  # test_gpu_dry_run's A2C
    ["bmg_snake.py", *SNAKE_RUN, *SEEDS_EVAL, "--outer-critic"],  # test_reliability's sharding test, test_resume
    ["mg_snake.py", *SNAKE_RUN, "--learning-rate", "1e38"],  # test_reliability's non-finite stop (exits 1)
    ["mg_chain.py", *CHAIN_RUN, "--no-true-value", "--learning-rate", "1e38"],
]
_warm_up = []


def pytest_collection_finish(session):
    every_file = {f for f in os.listdir(os.path.dirname(__file__)) if f.startswith("test_") and f.endswith(".py")}
    if {item.path.name for item in session.items} != every_file:
        return
    runs_dir = tempfile.mkdtemp(prefix="warm_up_")
    commands = [
        shlex.join(["nice", "-n", "19", sys.executable, os.path.join(ROOT, c[0]), *c[1:], "--runs-dir", runs_dir])
        for c in WARM_UP
    ]
    _warm_up.append(
        subprocess.Popen(
            ["bash", "-c", "; ".join(commands)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=SUBPROCESS_ENV,
            start_new_session=True,
        )
    )


def pytest_sessionfinish(session):
    for process in _warm_up:  # done long before the end; stopped if not
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_with_stand_in_python(tmp_path, shell_script, *arguments, imports_ok=True, cwd=None):
    """Runs experiments/<shell_script> with a stand-in `python` on PATH that trains nothing and records
    its arguments (its import check fails if not imports_ok): (result, [argument lists of every call])."""

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "python"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$PYTHON_LOG"\n[[ $1 == -c ]] && exit "$IMPORT_RC"\nexit 0\n')
    fake.chmod(0o755)
    log = tmp_path / "python.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON_LOG": str(log)}
    env["IMPORT_RC"] = "0" if imports_ok else "1"
    command = ["bash", os.path.join(ROOT, "experiments", shell_script), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env, cwd=cwd)
    return result, [line.split() for line in log.read_text().splitlines()]
