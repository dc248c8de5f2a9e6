"""--track (Weights & Biases), offline: one W&B run per seed in one group, whose logged values are
metrics.csv's, on global_step (Snake's evaluations on eval/global_step); --resume continues the same
runs; a W&B that fails while training stops the tracking, not the run; without wandb installed, or
without an API key online, --track is one line and exit 2. The runs are read back from W&B's own
offline files (run-<id>.wandb)."""

import glob
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time

import pytest
from conftest import ROOT, SUBPROCESS_ENV, metrics_rows, only_run

import common_run

pytestmark = pytest.mark.slow  # every test runs a script with --track

# The tests' shared configurations (conftest's warm-up): each program compiles once per test session.
CHAIN = ["--num-envs", "8", "--log-every", "2", "--num-seeds", "2", "--outer-critic"]
SNAKE = ["--num-envs", "8", "--log-every", "2", "--num-seeds", "2", "--outer-critic", "--eval-every", "50"]
W_AND_B_STEPS = ("_step", "_timestamp", "_runtime")


def wandb_env(tmp_path, mode="offline"):
    """No network, and nothing written outside tmp_path (W&B's settings, cache and credentials)."""
    env = {k: v for k, v in SUBPROCESS_ENV.items() if not k.startswith("WANDB_")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env |= {"HOME": str(home), "WANDB_CONFIG_DIR": str(home / "config"), "WANDB_CACHE_DIR": str(home / "cache")}
    env |= {"WANDB_DATA_DIR": str(home / "data"), "WANDB_DIR": str(tmp_path)}
    if mode:
        env["WANDB_MODE"] = mode
    return env


def run(script, *flags, env, timeout=600):
    command = [sys.executable, os.path.join(ROOT, script), *flags]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def wandb_records(path):
    """The records of a W&B run file: a 7-byte header (":W&B", magic, version), then LevelDB's log
    format (32 KiB blocks of chunks, each with a 7-byte header: CRC, length, type FULL/FIRST/MIDDLE/
    LAST), each record a wandb.proto Record."""
    from wandb.proto import wandb_internal_pb2

    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a chunk header is padding
            position += 32768 - position % 32768
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL, LAST
            yield wandb_internal_pb2.Record.FromString(pending)
            pending = b""


def read_wandb(run_dir):
    """{file: {run_id, group, config, metrics (name or glob -> step metric), history [{name: value}]}}
    for each W&B run file in the run folder."""
    files = {}
    # (offline-)run-<time>-<id> folders, not their link latest-run
    for path in sorted(glob.glob(os.path.join(run_dir, "wandb", "*run-*", "run-*.wandb"))):
        found = {"history": [], "metrics": {}}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                found["run_id"], found["group"] = record.run.run_id, record.run.run_group
                found["config"] = {item.key: json.loads(item.value_json) for item in record.run.config.update}
            elif kind == "metric":
                found["metrics"][record.metric.name or record.metric.glob_name] = record.metric.step_metric
            elif kind == "history":
                items = record.history.item
                found["history"].append({"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in items})
        files[path] = found
    return files


def assert_logged_as_in_csv(history, rows):
    """Each W&B history row holds its metrics.csv row: the same numbers (to the csv's 6 significant
    digits), none of its nan cells, nothing else, on W&B's step global_step."""
    assert len(history) == len(rows)
    for logged, row in zip(history, rows):
        assert logged["_step"] == logged["global_step"] == int(row["global_step"])
        expected = {k: float(v) for k, v in row.items() if k != "seed" and not math.isnan(float(v))}
        assert set(logged) - set(W_AND_B_STEPS) == set(expected)
        for name, value in expected.items():
            assert logged[name] == pytest.approx(value, rel=5e-6, abs=1e-30), name


def runs_by_id(files):
    by_id = {}
    for found in files.values():
        by_id.setdefault(found["run_id"], []).append(found)
    return by_id


def test_two_seeds_are_two_runs_in_one_group_and_resume_continues_them(tmp_path):
    pytest.importorskip("wandb")
    env = wandb_env(tmp_path)
    first = run("mg_chain.py", *CHAIN, "--num-updates", "4", "--track", "--runs-dir", str(tmp_path / "runs"), env=env)
    assert first.returncode == 0, first.stderr
    run_dir = only_run(tmp_path / "runs")
    before = read_wandb(run_dir)
    by_id = runs_by_id(before)
    assert len(before) == len(by_id) == 2  # one run per seed
    args = json.loads((run_dir / "args.json").read_text())
    rows = metrics_rows(run_dir, wall_clock=True)
    for seed in (0, 1):
        (found,) = by_id[common_run.wandb_run_id(str(run_dir), seed)]
        assert found["group"] == run_dir.name
        assert found["config"].pop("_wandb", {}) == {}
        assert found["config"] == {k: v for k, v in args.items() if k != "script"} | {"seed": seed}
        # The chain's evaluation (the exact expected return) is of the policy now: on global_step.
        assert found["metrics"] == {"global_step": "", "*": "global_step"}
        assert_logged_as_in_csv(found["history"], [r for r in rows if r["seed"] == str(seed)])
        assert [h["global_step"] for h in found["history"]] == [1600, 3200]

    resumed = run("mg_chain.py", "--resume", str(run_dir), "--num-updates", "8", env=env)  # --track is the checkpoint's
    assert resumed.returncode == 0, resumed.stderr
    after = read_wandb(run_dir)
    new = {path: found for path, found in after.items() if path not in before}
    assert set(runs_by_id(new)) == set(by_id) and len(new) == 2  # the same two runs, continued
    rows = metrics_rows(run_dir, wall_clock=True)
    assert len(rows) == 8
    for found in new.values():
        seed = found["config"]["seed"]
        assert found["config"]["num_updates"] == 8 and found["group"] == run_dir.name
        assert [h["global_step"] for h in found["history"]] == [4800, 6400]  # the steps go on
        assert_logged_as_in_csv(found["history"], [r for r in rows if r["seed"] == str(seed)][2:])


def test_snake_evaluations_step_on_the_step_of_the_policy_they_scored(tmp_path):
    pytest.importorskip("wandb")
    # 52 updates of 40 steps: an evaluation at update 50, logged with the chunk of updates 51-52.
    flags = [*SNAKE, "--total-timesteps", "2080", "--track", "--runs-dir", str(tmp_path / "runs")]
    result = run("mg_snake.py", *flags, env=wandb_env(tmp_path))
    assert result.returncode == 0, result.stderr
    run_dir = only_run(tmp_path / "runs")
    rows = metrics_rows(run_dir, wall_clock=True)
    evaluated = [r for r in rows if r["eval/global_step"] != "nan"]
    assert {r["eval/global_step"] for r in evaluated} == {str(50 * 40)}
    for found in read_wandb(run_dir).values():
        assert found["metrics"]["eval/*"] == "eval/global_step" and found["metrics"]["*"] == "global_step"
        assert_logged_as_in_csv(found["history"], [r for r in rows if r["seed"] == str(found["config"]["seed"])])


def test_a_failing_wandb_stops_the_tracking_not_the_run(tmp_path):
    """W&B's service process killed with the job (SIGTERM to every process, as a cluster does): the run
    still stops cleanly with a checkpoint, and --resume continues it."""
    pytest.importorskip("wandb")
    command = [sys.executable, os.path.join(ROOT, "mg_chain.py"), *CHAIN, "--num-updates", "100000", "--track"]
    command += ["--runs-dir", str(tmp_path / "runs")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=wandb_env(tmp_path))
    seen, deadline = "", time.time() + 300
    while "update " not in seen:
        assert time.time() < deadline and process.poll() is None, seen + process.stderr.read()
        seen += process.stdout.readline()
    service = subprocess.run(["pgrep", "-P", str(process.pid), "-f", "wandb-core"], capture_output=True, text=True)
    for pid in [*map(int, service.stdout.split()), process.pid]:
        os.kill(pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert service.stdout.split(), "no W&B service process found"
    assert process.returncode == common_run.EXIT_INTERRUPTED, stderr
    assert "W&B tracking stopped" in stderr and "continue with" in stderr
    run_dir = only_run(tmp_path / "runs")
    assert os.path.exists(run_dir / "checkpoint.msgpack")


def test_track_needs_wandb_installed_and_online_a_key(tmp_path):
    """Bad input, one line and exit 2 without a run folder: wandb not installed (hidden from the
    script), or online mode without an API key (after the compile: W&B says so only then)."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\n\nsys.modules['wandb'] = None  # as if not installed\n")
    env = wandb_env(tmp_path) | {"PYTHONPATH": os.pathsep.join([str(hide), ROOT])}
    runs_dir = tmp_path / "runs"
    result = run("mg_chain.py", *CHAIN, "--num-updates", "4", "--track", "--runs-dir", str(runs_dir), env=env)
    assert result.returncode == common_run.EXIT_BAD_INPUT, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "requirements-wandb.txt" in result.stderr
    assert not runs_dir.exists()
    untracked = run("mg_chain.py", *CHAIN, "--num-updates", "2", "--runs-dir", str(runs_dir), env=env)
    assert untracked.returncode == 0, untracked.stderr  # only --track needs it

    pytest.importorskip("wandb")
    runs_dir = tmp_path / "runs_online"
    online = run(
        "mg_chain.py", *CHAIN, "--num-updates", "4", "--track", "--runs-dir", str(runs_dir), env=wandb_env(tmp_path, None)
    )
    assert online.returncode == common_run.EXIT_BAD_INPUT, online.stderr
    errors = [line for line in online.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "WANDB_MODE=offline" in errors[0], online.stderr
    assert list(runs_dir.iterdir()) == []
