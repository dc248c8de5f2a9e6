"""experiments/paper_budget.sh, call after call on one folder: a tiny chain variant (two seeds) stopped by
SIGTERM, then by the call's time limit, then trained to its end, has the metrics.csv of the same command
run in one go; a finished run is not started again; a failing variant is marked and skipped; bad
arguments stop the script before anything runs."""

import math
import os
import re
import signal
import subprocess
import sys
import tarfile
import time

import pytest
from conftest import ROOT, SUBPROCESS_ENV, metrics_rows, only_run, run_with_stand_in_python

SCRIPT = os.path.join(ROOT, "experiments", "paper_budget.sh")
# test_resume.py's mg_chain.py program (compiled once per session); 2,000 updates are ~6 s of
# training on an idle 2-core CPU, so a 1-2 s time limit cuts the run.
FLAGS = ["--num-envs", "8", "--log-every", "2", "--num-updates", "2000", "--outer-critic"]
ENV = {**SUBPROCESS_ENV, "PATH": f"{os.path.dirname(sys.executable)}:{SUBPROCESS_ENV['PATH']}"}  # its `python`


def call(runs, variants, **env):
    command = ["bash", SCRIPT, str(runs), str(variants), "1", "2"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**ENV, **env})


@pytest.mark.slow
def test_calls_stopped_and_continued_end_as_one_uninterrupted_run(tmp_path):
    variants = tmp_path / "variants.txt"
    variants.write_text(f"# NAME SCRIPT FLAGS...\noc mg_chain.py {' '.join(FLAGS)}\nbad mg_chain.py --num-envs 0\n")
    runs = tmp_path / "runs"
    reference = subprocess.Popen(  # the same seeds in one go, meanwhile
        [sys.executable, os.path.join(ROOT, "mg_chain.py"), *FLAGS, "--num-seeds", "2", "--runs-dir", str(tmp_path / "ref")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=SUBPROCESS_ENV,
    )

    # Call 1: SIGTERM once the run trains; the script passes it on, the run stops with a checkpoint.
    first = subprocess.Popen(
        ["bash", SCRIPT, str(runs), str(variants), "1", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    lines = []
    while not (lines and lines[-1].startswith("update ")):
        lines.append(first.stdout.readline())
        assert lines[-1] or first.poll() is None, "".join(lines)
    first.send_signal(signal.SIGTERM)
    output = "".join(lines) + first.communicate(timeout=120)[0]
    assert first.returncode == 130, output
    run_dir = only_run(runs / "oc_s0")
    assert (run_dir / "checkpoint.msgpack").is_file() and not (runs / "bad_s0").exists()
    assert "== stopped (exit 130); continue with the same command" in output

    # Call 2: 40 s less a 38 s margin leave the resumed run a time limit of 1-2 s, which cuts it.
    result = call(runs, variants, TIME_LIMIT_S="40", MARGIN_S="38")
    assert result.returncode == 3, result.stdout + result.stderr
    assert re.search(rf"^== python mg_chain.py --resume {run_dir} --time-limit-s [12]$", result.stdout, re.M)
    assert "time limit reached after" in result.stdout and not (runs / "bad_s0").exists()

    # Call 3, two runs at a time: the run continues to its end; the bad variant fails (exit 2) and is marked.
    result = call(runs, variants, JOBS="2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert only_run(runs / "oc_s0") == run_dir and (runs / "oc_s0" / "FINISHED").exists()
    assert (runs / "bad_s0" / "FAILED").read_text().startswith("exit 2, ")
    assert "== 1 of 2 runs finished, 1 failed" in result.stdout

    # Call 4: nothing left to try; no run starts.
    result = call(runs, variants)
    assert result.returncode == 1 and "== python" not in result.stdout, result.stdout + result.stderr
    assert f"== {runs}/bad_s0 failed before (exit 2, " in result.stdout

    _, stderr = reference.communicate(timeout=300)
    assert reference.returncode == 0, stderr
    rows = metrics_rows(run_dir)
    assert rows == metrics_rows(only_run(tmp_path / "ref")) and len(rows) == 2 * 2000 // 2


@pytest.mark.parametrize(
    "arguments, env, message",
    [
        ([], {}, "give RUNS_DIR VARIANTS_FILE NUM_GROUPS SEEDS_PER_GROUP, got 0 arguments"),
        (["RUNS", "VARIANTS", "0", "2"], {}, "NUM_GROUPS must be a positive integer, got '0'"),
        (
            ["RUNS", "VARIANTS", "1", "2"],
            {"TIME_LIMIT_S": "1h"},
            "TIME_LIMIT_S must be a positive whole number of seconds, got '1h'",
        ),
        (["RUNS", "VARIANTS", "1", "2"], {"JOBS": "0"}, "JOBS must be a positive integer, got '0'"),
        (["RUNS", "no/such.txt", "1", "2"], {}, "VARIANTS_FILE 'no/such.txt' is not a file"),
        (["RUNS", "PLOT", "1", "2"], {}, "variant 'a': 'plot.py' is not one of the training scripts"),
        (["RUNS", "TWICE", "1", "2"], {}, "variant name 'a' is not unique or not a plain name"),
    ],
)
def test_bad_arguments_stop_before_anything_is_written(tmp_path, arguments, env, message):
    files = {"VARIANTS": "a mg_chain.py\n", "PLOT": "a plot.py\n", "TWICE": "a mg_chain.py\na bmg_chain.py\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    arguments = [str(tmp_path / a) if a in (*files, "RUNS") else a for a in arguments]
    result = subprocess.run(["bash", SCRIPT, *arguments], capture_output=True, text=True, timeout=30, env={**ENV, **env})
    assert (result.returncode, result.stderr, result.stdout) == (2, f"error: {message}\n", "")
    assert not (tmp_path / "RUNS").exists()


def test_a_folder_started_with_other_variants_or_seeds_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("a mg_chain.py --meta-lr 0\n")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "variants.txt").write_text("a mg_chain.py --meta-lr 0\n# groups: 1 × 10 seeds\n")
    for groups, per_group in (("2", "10"), ("1", "5")):
        arguments = (str(tmp_path / "runs"), str(tmp_path / "a.txt"), groups, per_group)
        result, calls = run_with_stand_in_python(tmp_path, "paper_budget.sh", *arguments)
        assert result.returncode == 2 and "was started with other variants or seed groups" in result.stderr
        assert sorted(os.listdir(tmp_path / "runs")) == ["variants.txt"] and not [c for c in calls if c[0] != "-c"]


def test_gpu_sh_continues_the_snake_budget_within_its_call_and_packs_small_results(tmp_path):
    """experiments/gpu.sh with a stand-in `python` that trains nothing (every run ends at once)."""
    runs = tmp_path / "state"
    env = {"GPU_RUNS_DIR": str(runs), "GPU_CALL_SECONDS": "480", "PYTHON": "python"}
    start = time.time()
    result, calls = run_with_stand_in_python(tmp_path, "gpu.sh", str(tmp_path / "out"), env=env)
    elapsed = math.ceil(time.time() - start)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "call.log").read_text() == result.stdout
    trained = [call for call in calls if call[0].endswith(".py")]
    with open(os.path.join(ROOT, "experiments", "slurm", "snake.txt")) as f:
        names = [line.split()[0] for line in f if line[0] != "#"]
    assert [call[call.index("--runs-dir") + 1] for call in trained] == [f"{runs}/snake/{name}_s0" for name in names]
    for call in trained:  # one group of 10 seeds; 480 s less 30 s to pack, the 60 s margin and the time gone
        assert call[call.index("--seed") :][:4] == ["--seed", "0", "--num-seeds", "10"]
        assert call[-2] == "--time-limit-s" and 390 - elapsed <= int(call[-1]) <= 390
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as tar:
        assert {f"./{name}_s0/FINISHED" for name in names} | {"./variants.txt"} <= set(tar.getnames())
    # The next call finds every run finished: none starts.
    result, calls = run_with_stand_in_python(tmp_path, "gpu.sh", str(tmp_path / "out"), env=env)
    assert result.returncode == 0 and not [call for call in calls if call[0].endswith(".py")], result.stdout


def test_without_the_requirements_nothing_is_written(tmp_path):
    (tmp_path / "v.txt").write_text("a mg_chain.py\n")
    result, calls = run_with_stand_in_python(
        tmp_path, "paper_budget.sh", str(tmp_path / "runs"), str(tmp_path / "v.txt"), "1", "2", imports_ok=False
    )
    assert (result.returncode, result.stderr) == (
        2,
        "error: install the requirements first: pip install -r requirements.txt\n",
    )
    assert len(calls) == 1 and not (tmp_path / "runs").exists()  # the import check only
