import csv
import io
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import tempfile

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Tests that run the scripts start many processes with the same few configurations: a persistent
# compilation cache, inherited by every subprocess, lets each configuration compile once per test
# session. The numbers do not change: the same executable is loaded instead of rebuilt.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jax_cache_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
SUBPROCESS_ENV = dict(os.environ)
# This process (each pytest-xdist worker) reads and writes the same cache: tests that build the same program
# again (another make_train of the same options, the same rollout in another test, a program a subprocess
# compiled) load it instead of compiling it. Only programs that took over 0.2 s to compile are written.
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

# The programs that later tests' CLI runs compile, compiled ahead while the first test files run: a background
# process at nice 19 runs each command below for one chunk,
# and the cache serves the program to every test that starts the same configuration (the budget
# does not enter the program). A test that gets there first compiles it itself. Only for the whole
# suite (what CI runs): a single file has nothing to overlap with.
SNAKE_RUN = ["--num-envs", "8", "--log-every", "2", "--total-timesteps", "80"]  # 2 updates: one chunk
SEEDS_EVAL = ["--num-seeds", "2", "--eval-every", "50"]
# The first two files (FILE_SECONDS below) start with the chain's programs (test_resume.py's mg_chain.py run) and
# test_reliability.py's non-finite stops: those compile there at once, not here.
WARM_UP = [  # in the order the tests need them
    ["bmg_snake.py", *SNAKE_RUN, *SEEDS_EVAL, "--outer-critic"],  # test_reliability's sharding test, test_resume
    ["mg_snake.py", *SNAKE_RUN, *SEEDS_EVAL, "--outer-critic"],  # test_resume, test_watch, test_wandb
    # test_minatar's runs of the scripts on a MinAtar game
    ["mg_snake.py", *SNAKE_RUN, "--env-id", "Freeway-MinAtar", "--outer-critic", "--eval-every", "2"],
    ["bmg_snake.py", *SNAKE_RUN, "--env-id", "Breakout-MinAtar", "--outer-critic", "--eval-every", "2"],
]
_warm_up = []


# Each file runs in one pytest-xdist worker (--dist loadfile): handed out longest first (the longest-processing-time
# rule), the two workers end together instead of one finishing a long file alone. Rough seconds on an idle 2-core CPU:
# (the file's fast tier, its slow tests). A file not listed counts as short; the order within a file is kept.
FILE_SECONDS = {
    "test_resume.py": (0, 210),
    "test_reliability.py": (10, 140),
    "test_minatar.py": (23, 117),
    "test_chain.py": (94, 33),
    "test_snake.py": (75, 22),
    "test_benchmark.py": (0, 95),
    "test_run.py": (0, 56),
    "test_wandb.py": (0, 54),
    "test_paper_budget.py": (0, 47),
    "test_slurm.py": (0, 34),
    "test_watch.py": (0, 31),
    "test_bias_map.py": (4, 20),
    "test_experiments.py": (10, 0),
    "test_plot.py": (10, 0),
    "test_meta_grad_bias.py": (7, 0),
}


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist would order the files by their number of tests
        config.option.loadscopereorder = False


@pytest.hookimpl(trylast=True)  # after -m has deselected the slow tests (or not)
def pytest_collection_modifyitems(config, items):
    with_slow = {item.path.name for item in items if item.get_closest_marker("slow")}
    seconds = {name: fast + (slow if name in with_slow else 0) for name, (fast, slow) in FILE_SECONDS.items()}
    items.sort(key=lambda item: -seconds.get(item.path.name, 0))  # a stable sort: each file stays in one piece


def pytest_collection_finish(session):
    every_file = {f for f in os.listdir(os.path.dirname(__file__)) if f.startswith("test_") and f.endswith(".py")}
    if {item.path.name for item in session.items} != every_file:
        return
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":  # pytest -n 2: the first worker warms up for both
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


def run_with_stand_in_python(tmp_path, shell_script, *arguments, imports_ok=True, cwd=None, env=None):
    """Runs experiments/<shell_script> with a stand-in `python` on PATH that trains nothing and records
    its arguments (its import check fails if not imports_ok): (result, [argument lists of every call])."""

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "python"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$PYTHON_LOG"\n[[ $1 == -c ]] && exit "$IMPORT_RC"\nexit 0\n')
    fake.chmod(0o755)
    log = tmp_path / "python.log"
    log.write_text("")
    env = {**os.environ, **(env or {}), "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON_LOG": str(log)}
    env["IMPORT_RC"] = "0" if imports_ok else "1"
    command = ["bash", os.path.join(ROOT, "experiments", shell_script), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env, cwd=cwd)
    return result, [line.split() for line in log.read_text().splitlines()]


def run_main_in_process(main, argv, cwd=None):
    """What `python <argv[0]> <argv[1:]>` would return (a CompletedProcess: exit code, stdout, stderr), from the
    tool's main() called in this process: the tools' own checks without the ~1-2 s of a new interpreter. The
    working directory, sys.argv and the warning filters (the tools silence some) are restored after it, and
    matplotlib's figures closed."""
    import contextlib
    import warnings

    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    old_argv, old_cwd = sys.argv, os.getcwd()
    try:
        sys.argv = [str(a) for a in argv]
        if cwd is not None:
            os.chdir(cwd)
        with warnings.catch_warnings(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main()
            except SystemExit as stop:  # as the interpreter exits: None is 0, a message is printed and exits 1
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                if isinstance(stop.code, str):
                    print(stop.code, file=sys.stderr)
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def only_run(folder):
    """The one run folder (the one directory) in `folder`, as a Path."""
    (run_dir,) = [p for p in pathlib.Path(folder).iterdir() if p.is_dir()]
    return run_dir


def csv_rows(path):
    """A CSV file's rows (dicts of the text written), checked to hold whole rows only."""
    text = pathlib.Path(path).read_text()
    assert text.endswith("\n")  # whole rows only
    return list(csv.DictReader(io.StringIO(text)))


def metrics_rows(run_dir, *, wall_clock=False):
    """A run's metrics.csv rows (csv_rows); without the wall-clock charts/SPS unless asked, so that two
    runs' rows compare bit for bit."""
    rows = csv_rows(pathlib.Path(run_dir) / "metrics.csv")
    return rows if wall_clock else [{k: v for k, v in row.items() if k != "charts/SPS"} for row in rows]


def run_without_jax(script, *arguments, cwd=None):
    """Runs `python script arguments...` in a process that fails if the script imported JAX."""
    check = (
        f"import runpy, sys; sys.argv = [{script!r}, *{list(map(str, arguments))!r}]; "
        f"sys.path.insert(0, {os.path.dirname(script)!r}); "
        f"runpy.run_path({script!r}, run_name='__main__'); assert 'jax' not in sys.modules, 'imported JAX'"
    )
    return subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, env=SUBPROCESS_ENV, cwd=cwd
    )


# Synthetic run folders as the scripts write them (args.json, metrics.csv), for plot.py and
# experiments/reference_tables.py: no training.
import json  # noqa: E402  (imported with the helpers that use it)

SNAKE_BATCH = 512 * 5


def gamma_at(update, outer_critic):
    """γ of the synthetic Snake runs: linear in the update, so window means have a closed form."""
    return 0.8 + (2e-4 if outer_critic else 1e-4) * update


def write_snake_run(
    folder,
    exp_name,
    *,
    outer_critic=False,
    meta_lr=3e-3,
    script="mg_snake.py",
    seeds=(0, 1),
    updates=1460,
    log_every=20,
    eval_every=150,
    eval_bonus=None,
    offsets=None,
    gamma_init=0.8,
    env_id="Snake-6x6-v0",
):
    """A run directory as mg_snake.py writes it, with evaluations every `eval_every` updates
    (return u / 100 + seed at update u, plus eval_bonus[i] for the i-th seed); offsets[metric][i] is
    added to every log point's `metric` of the i-th seed."""
    run_dir = folder / f"{env_id}__{exp_name}__{seeds[0]}__1"
    run_dir.mkdir(parents=True)
    args = {
        "script": script,
        "exp_name": exp_name,
        "seed": seeds[0],
        "num_seeds": len(seeds),
        "runs_dir": str(folder),
        "total_timesteps": updates * SNAKE_BATCH,
        "log_every": log_every,
        "eval_every": eval_every,
        "num_envs": 512,
        "num_steps": 5,
        "outer_critic": outer_critic,
        "normalize_advantage": False,
        "meta_lr": meta_lr,
        "gamma_init": gamma_init,
        "env_id": env_id,
    }
    (run_dir / "args.json").write_text(json.dumps(args))
    eval_names = ["eval/episodic_return", "eval/episodic_return_greedy", "eval/episodic_length", "eval/global_step"]
    header = [
        "seed",
        "global_step",
        "charts/episodic_return",
        "meta/gamma",
        "meta/outer_advantage",
        "meta/outer_advantage_inner_critic",
        "meta/outer_advantage_outer_critic",
        *eval_names,
    ]
    lines = [",".join(header)]
    for end in range(log_every, updates + 1, log_every):
        evaluated = [u for u in range(end - log_every + 1, end + 1) if u % eval_every == 0]
        for seed in seeds:
            gamma = gamma_at(end, outer_critic) if meta_lr else gamma_init
            row = [seed, end * SNAKE_BATCH, 1 + end / 1000, gamma, 0.0 if outer_critic else 0.4, 0.4, 0.0]
            if evaluated:  # the return of the evaluation at update u: u / 100 + seed (+ the bonus)
                u = evaluated[-1]
                bonus = eval_bonus[seeds.index(seed)] if eval_bonus else 0
                row += [u / 100 + seed + bonus, u / 100 + seed + 0.5, 50, u * SNAKE_BATCH]
            else:
                row += ["nan"] * 4
            for metric, added in (offsets or {}).items():
                row[header.index(metric)] += added[seeds.index(seed)]
            lines.append(",".join(map(str, row)))
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    (run_dir / f"seed{seeds[0]}").mkdir()  # TensorBoard folders sit below a run: not runs themselves
    return run_dir


def write_chain_run(folder, exp_name, *, outer_critic=False, updates=40, log_every=10, p_paying=None, gammas=None):
    """A chain run of one seed (mapping seed 3); p_paying(u) and gammas(u) give π(chain 3 | s0) and γ
    at update u (by default 0.2 and 0.95)."""
    run_dir = folder / f"DiscountingChain-bsuite__{exp_name}__0__1"
    run_dir.mkdir(parents=True)
    args = {
        "script": "mg_chain.py",
        "exp_name": exp_name,
        "seed": 0,
        "num_seeds": 1,
        "num_updates": updates,
        "log_every": log_every,
        "num_envs": 128,
        "mapping_seed": 3,
        "outer_critic": outer_critic,
        "normalize_advantage": False,
        "true_value": True,
        "meta_lr": 0.1,
    }
    (run_dir / "args.json").write_text(json.dumps(args))
    header = [
        "seed",
        "global_step",
        "charts/episodic_return",
        "eval/expected_return",
        "meta/gamma",
        "meta/outer_advantage",
        "meta/outer_advantage_s0",
        *[f"policy/p_chain{k}" for k in range(5)],
    ]
    lines = [",".join(header)]
    for end in range(log_every, updates + 1, log_every):
        paying = p_paying(end) if p_paying else 0.2
        gamma = gammas(end) if gammas else 0.95
        chains = [(1 - paying) / 4] * 3 + [paying, (1 - paying) / 4]
        lines.append(",".join(map(str, [0, end * 128 * 100, 1.0, 1.0 + end / 1000, gamma, 0.0, 0.01, *chains])))
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    return run_dir


def markdown_rows(stdout, first_cell):
    """The cells of the markdown rows whose first cell starts with `first_cell`."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in stdout.splitlines() if line.startswith("|")]
    return [r for r in rows if r[0].startswith(first_cell)]
