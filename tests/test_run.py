"""The run machinery (common_run.py), tested once for all four scripts: a stop during the first
minute (while the program compiles) is one line and leaves a resumable run or no folder, a second
Ctrl-C ends it at once, the budget option of the other environment gets a hint, the variant is in
the run folder's name, an option added after a checkpoint was written does not make that checkpoint
unresumable, args.json is strict JSON that reads back as the run's options, and TensorBoard holds no
nan (metrics.csv keeps them)."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import flax.serialization
import jax
import pytest
from conftest import ROOT, metrics_rows
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import bmg_chain
import common_run
import mg_chain
import mg_snake

TINY_CHAIN = ["--num-envs", "8", "--log-every", "2"]
# No compilation cache: these tests need a compile long enough to be interrupted.
UNCACHED = {
    k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT_CACHE") and k != "JAX_COMPILATION_CACHE_DIR"
}


def start(*flags):
    command = [sys.executable, os.path.join(ROOT, "mg_chain.py"), *TINY_CHAIN, *flags]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=UNCACHED)


def interrupt_while_compiling(process, times=1):
    """SIGINT (Ctrl-C) `times` times as soon as the run says it compiles; (exit code, stdout, stderr)."""
    seen = ""
    deadline = time.time() + 120
    while "compiling" not in seen:
        assert time.time() < deadline and process.poll() is None, seen + process.stderr.read()
        seen += process.stdout.readline()
    process.send_signal(signal.SIGINT)
    for _ in range(times - 1):
        time.sleep(0.5)  # a signal sent before the last one reached the process would merge with it
        process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, seen + stdout, stderr


@pytest.mark.slow
def test_ctrl_c_while_a_new_run_compiles_leaves_no_folder_and_one_line(tmp_path):
    code, stdout, stderr = interrupt_while_compiling(start("--num-updates", "4", "--runs-dir", str(tmp_path)))
    assert code == common_run.EXIT_INTERRUPTED == 130
    assert stderr == "stopped before the first update: nothing trained, no run folder left\n"
    assert "| gamma " not in stdout  # no chunk ran
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_second_ctrl_c_while_compiling_ends_the_run_at_once(tmp_path):
    process = start("--num-updates", "2", "--runs-dir", str(tmp_path))
    code, stdout, stderr = interrupt_while_compiling(process, times=2)
    assert code == common_run.EXIT_INTERRUPTED
    assert "compiled in" not in stdout  # it did not wait for the compile to end
    assert stderr == "stopped at once by a second Ctrl-C: nothing trained, no run folder left\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_while_a_resume_compiles_leaves_the_checkpoint_untouched(tmp_path):
    first = subprocess.run(
        [sys.executable, os.path.join(ROOT, "mg_chain.py"), *TINY_CHAIN, "--num-updates", "2", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    (run_dir,) = tmp_path.iterdir()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "mg_chain.py"), "--resume", str(run_dir), "--num-updates", "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=UNCACHED,
    )
    code, _, stderr = interrupt_while_compiling(process)
    assert code == 130
    assert stderr == (
        f"stopped before the first update: the checkpoint in {run_dir} is untouched; "
        f"continue with: python mg_chain.py --resume {run_dir}\n"
    )
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


@pytest.mark.parametrize(
    "script, module, flag, hint",
    [
        ("mg_chain.py", mg_chain, "--total-timesteps", "its budget is --num-updates (meta-updates)"),
        ("mg_snake.py", mg_snake, "--num-updates=10", "its budget is --total-timesteps (inner-batch environment steps)"),
    ],
)
def test_the_other_environments_budget_option_gets_a_hint(script, module, flag, hint, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, flag, "1000"] if "=" not in flag else [script, flag])
    with pytest.raises(SystemExit) as exit_info:
        common_run.run_main(module.main)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {script} has no {flag.split('=')[0]}: {hint}\n"


@pytest.mark.parametrize(
    "script, flags, name",
    [
        ("mg_chain.py", [], "mg_chain"),
        ("mg_chain.py", ["--outer-critic"], "mg_chain_oc"),
        ("bmg_chain.py", ["--outer-critic", "--no-true-value"], "bmg_chain_oc_learned"),
        ("mg_snake.py", ["--meta-lr", "0", "--outer-critic"], "a2c_snake"),  # A2C has no outer loss to choose for
        ("mg_snake.py", ["--normalize-advantage", "--outer-critic"], "mg_snake_oc_norm"),
        ("mg_snake.py", ["--exp-name", "mine", "--outer-critic"], "mine"),
    ],
)
def test_the_variant_is_in_the_run_folders_name(script, flags, name, monkeypatch):
    module = {"mg_chain.py": mg_chain, "bmg_chain.py": bmg_chain, "mg_snake.py": mg_snake}[script]
    monkeypatch.setattr(sys, "argv", [script, *flags])
    args, _ = common_run.parse_args(module.Args, script, module.arg_rules)
    assert args.exp_name == name


def test_a_checkpoint_from_before_an_option_existed_resumes_with_its_default(tmp_path, monkeypatch):
    # Checkpoints hold every option; one written before --track existed (and with the meta-gradient
    # clip under its old name) must still resume, the new options at their defaults.
    args = mg_chain.Args(exp_name="old", runs_dir=str(tmp_path), num_envs=8, num_updates=4)
    runner = jax.jit(mg_chain.make_train(args, all_parts=True).init)(0)
    old_args = {k: v for k, v in vars(args).items() if k not in ("track", "wandb_project_name", "wandb_entity")}
    old_args["max_grad_norm"] = old_args.pop("max_meta_grad_norm")
    run_dir = tmp_path / "old_run"
    run_dir.mkdir()
    common_run.write_checkpoint(str(run_dir), "mg_chain.py", args, [0], 2, runner)
    path = run_dir / "checkpoint.msgpack"
    checkpoint = flax.serialization.msgpack_restore(path.read_bytes())
    checkpoint["args"] = old_args
    path.write_bytes(flax.serialization.msgpack_serialize(checkpoint))
    monkeypatch.setattr(sys, "argv", ["mg_chain.py", "--resume", str(run_dir), "--num-updates", "6"])
    resumed, checkpoint = common_run.parse_args(mg_chain.Args, "mg_chain.py", mg_chain.arg_rules)
    assert resumed.max_meta_grad_norm == args.max_meta_grad_norm and resumed.track is False
    assert resumed.num_updates == 6 and checkpoint["updates_done"] == 2
    # An option the script no longer knows is refused: its numbers could not be reproduced.
    checkpoint["args"] = old_args | {"retired_option": 1}
    path.write_bytes(flax.serialization.msgpack_serialize(checkpoint | {"leaves": []}))
    with pytest.raises(common_run.BadInput, match="options this version of mg_chain.py lacks: \\['retired_option'\\]"):
        common_run.parse_args(mg_chain.Args, "mg_chain.py", mg_chain.arg_rules)


def refuse(constant):
    raise ValueError(f"{constant} is not JSON")


@pytest.mark.slow
def test_args_json_is_strict_json_and_tensorboard_gets_no_nan(tmp_path):
    # A2C: the chain's default meta-gradient clip is inf, and with no outer batch meta/outer_advantage is nan.
    command = [sys.executable, os.path.join(ROOT, "mg_chain.py"), *TINY_CHAIN, "--meta-lr", "0", "--num-updates", "4"]
    command += ["--gamma-init", "0.97"]
    result = subprocess.run([*command, "--runs-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.iterdir()
    args = json.loads((run_dir / "args.json").read_text(), parse_constant=refuse)
    assert args.pop("script") == "mg_chain.py"
    assert float(args["max_meta_grad_norm"]) == math.inf
    # Read back by the rule (float() for the float options), args.json holds the options the run trained with.
    defaults = mg_chain.Args()
    read_back = {name: float(value) if isinstance(getattr(defaults, name), float) else value for name, value in args.items()}
    checkpoint = flax.serialization.msgpack_restore((run_dir / "checkpoint.msgpack").read_bytes())
    assert mg_chain.Args(**read_back) == mg_chain.Args(**checkpoint["args"])

    rows = [row for row in metrics_rows(run_dir, wall_clock=True) if row["seed"] == "0"]
    assert all(math.isnan(float(row["meta/outer_advantage"])) for row in rows)  # the csv keeps its nan cells
    # A2C counts the inner steps alone (no outer batch), and γ stays at --gamma-init.
    assert (
        [float(row["charts/env_steps_total"]) for row in rows] == [float(row["global_step"]) for row in rows] == [1600, 3200]
    )
    assert all(float(row["meta/gamma"]) == pytest.approx(0.97, abs=1e-6) for row in rows)
    accumulator = EventAccumulator(str(run_dir / "seed0"))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    assert "meta/outer_advantage" not in tags and "meta/gamma" in tags
    assert set(tags) <= set(rows[0])
    # Each metric is in TensorBoard at exactly the log points where the csv has a number.
    for name in set(rows[0]) - {"seed", "global_step"}:
        logged = [int(row["global_step"]) for row in rows if not math.isnan(float(row[name]))]
        events = accumulator.Scalars(name) if name in tags else []
        assert [event.step for event in events] == logged, name
        assert not any(math.isnan(event.value) for event in events), name
