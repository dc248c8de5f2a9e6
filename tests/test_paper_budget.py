"""experiments/gpu.sh in its dry run (GPU_DRY_RUN=1): the sequence it runs on a GPU machine, with
tiny budgets on the CPU, called three times in a temporary state folder. The first call runs the
test and the benchmark and starts MG + outer critic, whose time limit cuts it after one log point;
the second continues that run (--resume, the same run directory) and runs A2C; the third finds
nothing to do. The cut run ends as the same command run in one go. Two of the five variants, to
keep the test short (each variant compiles for ~20 s on 2 busy cores); `GPU_DRY_RUN=1
experiments/gpu.sh OUT` runs all five."""

import csv
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
from conftest import ROOT, SUBPROCESS_ENV

GPU_SH = os.path.join(ROOT, "experiments", "gpu.sh")
VARIANTS = ("mg_snake_oc", "a2c_snake")
DRY_FLAGS = [
    "--num-envs",
    "8",
    "--total-timesteps",
    "2000",
    "--log-every",
    "2",
    "--eval-every",
    "50",
    "--num-seeds",
    "2",
    "--save-model",
]  # gpu.sh's dry-run flags: 50 updates, 25 log points (those of test_resume.py: one compile for both)
MAX_BYTES = 16 * 2**20


def gpu_call(state, out, **env):
    env = {
        **SUBPROCESS_ENV,
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        "GPU_DRY_RUN": "1",
        "GPU_RUNS_DIR": str(state),
        "GPU_VARIANTS": " ".join(VARIANTS),
        **env,
    }
    result = subprocess.run(["bash", GPU_SH, str(out)], capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (out / "call.log").read_text() == result.stdout  # the whole call, stderr included
    return result.stdout


def rows_without_sps(path):
    text = path.read_text()
    assert text.endswith("\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        del row["charts/SPS"]  # wall-clock
    return rows


def only_run(folder):
    (run_dir,) = [p for p in folder.iterdir() if p.is_dir()]
    return run_dir


def progress_rows(out):
    """{variant label: the rest of its progress.txt line, split on 2+ spaces}."""
    lines = (out / "progress.txt").read_text().splitlines()
    table = [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in lines[1:] if line.strip()]
    return {row[0]: row[1:] for row in table if row[0] in ("MG + outer critic", "A2C")}, lines


@pytest.fixture
def background():
    """Starts processes (subprocess.Popen's arguments); those still running at the end are killed."""
    started = []
    yield lambda *args, **kwargs: started.append(subprocess.Popen(*args, **kwargs)) or started[-1]
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_dry_run_continues_call_after_call_and_ends_as_an_uninterrupted_run(tmp_path, background):
    state = tmp_path / "state"
    outs = [tmp_path / f"out{i}" for i in (1, 2, 3)]
    # The run that the first call cuts, in one go beside that call (which may then load the program it
    # compiled from the session's compilation cache: the numbers are the same).
    reference = tmp_path / "reference"
    uninterrupted = background(
        [
            sys.executable,
            os.path.join(ROOT, "mg_snake.py"),
            "--outer-critic",
            *DRY_FLAGS,
            "--exp-name",
            "mg_snake_oc",
            "--runs-dir",
            str(reference),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=SUBPROCESS_ENV,
    )

    # Call 1: the first call's test and benchmark, then MG + outer critic, cut after one log point.
    stdout = gpu_call(state, outs[0], GPU_TIME_LIMIT_S="0.001")
    assert "jax.devices(): [CpuDevice(id=0)]" in stdout
    assert "1 passed" in (state / "tests.txt").read_text()
    assert "| mg_chain | 1 | MG + oc |" in (state / "benchmark.md").read_text()
    run_dir = only_run(state / "snake" / "mg_snake_oc")
    assert "time limit reached after 2 updates" in stdout
    assert "== mg_snake_oc: stopped at update 2 of 50 (exit 0); the next call continues it" in stdout
    assert not (state / "snake" / "a2c_snake").exists()  # the cut run ended the call
    rows, _ = progress_rows(outs[0])
    assert rows["MG + outer critic"][0] == "2 / 50 (4.0%)" and rows["MG + outer critic"][-1] == "stopped, continues next call"
    assert rows["A2C"][0] == "0 / —" and rows["A2C"][-1] == "not started"

    # Call 2: continues it in the same run directory, then A2C from the start; no tests or benchmark again.
    stdout = gpu_call(state, outs[1])
    assert f"python mg_snake.py --resume {run_dir} --time-limit-s" in stdout
    assert "resumed at update 2" in stdout and "== tests" not in stdout and "== benchmark" not in stdout
    assert only_run(state / "snake" / "mg_snake_oc") == run_dir
    a2c_dir = only_run(state / "snake" / "a2c_snake")

    # Call 3: nothing left; no script runs.
    stdout = gpu_call(state, outs[2])
    assert "== mg_snake_oc: finished (50 updates)" in stdout and "== a2c_snake: finished (50 updates)" in stdout
    assert "python mg_snake.py" not in stdout
    calls = [line.split("\t") for line in (state / "calls.tsv").read_text().splitlines()]
    assert [(c[0], c[1], c[4], c[5], c[6]) for c in calls] == [
        ("1", "mg_snake_oc", "0", "0", "2"),
        ("2", "mg_snake_oc", "0", "2", "50"),
        ("2", "a2c_snake", "0", "0", "50"),
    ]

    # The run cut and continued equals the same command run in one go (the wall-clock SPS aside).
    _, stderr = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, stderr
    reference_dir = only_run(reference)
    ours, theirs = (json.loads((d / "args.json").read_text()) for d in (run_dir, reference_dir))
    for key in ("runs_dir", "time_limit_s", "resume"):
        ours.pop(key), theirs.pop(key)
    assert ours == theirs  # the same options
    assert rows_without_sps(run_dir / "metrics.csv") == rows_without_sps(reference_dir / "metrics.csv")
    assert len(rows_without_sps(run_dir / "metrics.csv")) == 25 * 2  # 25 log points of 2 seeds
    assert (run_dir / "seed0" / "model.msgpack").read_bytes() == (reference_dir / "seed0" / "model.msgpack").read_bytes()
    assert json.loads((a2c_dir / "args.json").read_text())["meta_lr"] == 0

    # What comes back: at most 8 files, each under 16 MiB, in every call.
    for out in outs:
        files = sorted(os.listdir(out))
        assert len(files) <= 8 and all((out / f).stat().st_size < MAX_BYTES for f in files), files
    assert sorted(os.listdir(outs[2])) == [
        "benchmark.md",
        "call.log",
        "progress.txt",
        "results.tar.gz",
        "tests.txt",
        "versions.txt",
    ]
    # results.tar.gz: per run args.json, the reduced metrics.csv (every row) and the finished run's first model.
    with tarfile.open(outs[2] / "results.tar.gz") as tar:
        names = sorted(tar.getnames())
        for variant, d in (("mg_snake_oc", run_dir), ("a2c_snake", a2c_dir)):
            prefix = f"snake/{variant}/{d.name}"
            assert {f"{prefix}/args.json", f"{prefix}/metrics.csv", f"{prefix}/seed0/model.msgpack"} <= set(names)
            packed = list(csv.DictReader(io.StringIO(tar.extractfile(f"{prefix}/metrics.csv").read().decode())))
            full = list(csv.DictReader(io.StringIO((d / "metrics.csv").read_text())))
            assert [{k: r[k] for k in packed[0]} for r in full] == packed
            assert tar.extractfile(f"{prefix}/seed0/model.msgpack").read() == (d / "seed0" / "model.msgpack").read_bytes()
    assert not any(n.endswith("checkpoint.msgpack") for n in names)
    # plot.py draws the figure and the table from what came back, as the README says.
    extracted = tmp_path / "docs_data_gpu"
    with tarfile.open(outs[2] / "results.tar.gz") as tar:
        tar.extractall(extracted, filter="data")
    figure = tmp_path / "snake_gpu.png"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "plot.py"), str(extracted), "--out", str(figure)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert "| A2C | 2 | 50 |" in result.stdout and "| MG + outer critic | 2 | 50 |" in result.stdout
    assert {
        "seed",
        "global_step",
        "meta/gamma",
        "eval/episodic_return",
        "meta/outer_advantage_outer_critic",
        "losses/meta_loss",
        "charts/SPS",
    } <= set(packed[0])
    # progress.txt: both finished, with the wall time their processes took (calls.tsv).
    rows, lines = progress_rows(outs[2])
    for label, variant in (("MG + outer critic", "mg_snake_oc"), ("A2C", "a2c_snake")):
        seconds = sum(int(c[3]) for c in calls if c[1] == variant)
        assert rows[label][0] == "50 / 50 (100.0%)" and rows[label][1] == f"{seconds} s" and rows[label][-1] == "finished"
    assert "calls so far: 3" in lines[-2] and lines[-1] == "next call: nothing left to train; the runs are finished"


@pytest.mark.parametrize(
    "arguments, env, message",
    [
        ([], {}, "error: give one argument, OUT_DIR (where this call's results go), got 0"),
        (["a", "b"], {}, "error: give one argument, OUT_DIR (where this call's results go), got 2"),
        (["OUT"], {"GPU_CALL_SECONDS": "8m"}, "error: GPU_CALL_SECONDS must be a whole number of seconds, got '8m'"),
        (["OUT"], {"GPU_MARGIN_S": "-5"}, "error: GPU_MARGIN_S must be a whole number of seconds, got '-5'"),
        (["OUT"], {"GPU_DRY_RUN": "yes"}, "error: GPU_DRY_RUN must be 0 or 1, got 'yes'"),
        (["OUT"], {"GPU_TIME_LIMIT_S": "0.0"}, "error: GPU_TIME_LIMIT_S must be a number of seconds > 0, got '0.0'"),
        (
            ["OUT"],
            {"GPU_VARIANTS": "mg_snake_oc mg"},
            "error: GPU_VARIANTS: unknown variant 'mg' (known: mg_snake_oc mg_snake bmg_snake_oc bmg_snake a2c_snake)",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(tmp_path, arguments, env, message):
    arguments = [str(tmp_path / "out") if a == "OUT" else a for a in arguments]
    result = subprocess.run(
        ["bash", GPU_SH, *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        env={**SUBPROCESS_ENV, "GPU_RUNS_DIR": str(tmp_path / "state"), **env},
    )
    assert (result.returncode, result.stderr, result.stdout) == (2, message + "\n", "")
    assert not (tmp_path / "state").exists() and not (tmp_path / "out").exists()
