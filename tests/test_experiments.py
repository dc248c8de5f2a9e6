"""experiments/*.sh: the commands each script runs, read from a stand-in `python` that records its
arguments and trains nothing; bad arguments and a missing JAX stop the script with one line."""

import json
import os
import re

import pytest
from conftest import run_with_stand_in_python


def run_experiment(tmp_path, script, *arguments, imports_ok=True):
    """(result, [argument lists of every python call])."""
    return run_with_stand_in_python(tmp_path, script, *arguments, imports_ok=imports_ok)


def test_chain_with_one_argument_passes_nothing_extra(tmp_path):
    result, calls = run_experiment(tmp_path, "chain.sh", "100")
    assert result.returncode == 0, result.stderr
    assert calls[0] == ["-c", "import", "jax,", "jumanji,", "gymnax"]
    out = calls[1][calls[1].index("--runs-dir") + 1]
    assert re.fullmatch(r"runs/chain_\d{8}-\d{6}", out)
    common = ["--num-updates", "100", "--num-seeds", "10", "--runs-dir", out]
    assert calls[1:6] == [
        ["mg_chain.py", "--meta-lr", "0", "--exp-name", "a2c_chain", *common],
        ["mg_chain.py", "--exp-name", "mg_chain", *common],
        ["mg_chain.py", "--outer-critic", "--exp-name", "mg_chain_oc", *common],
        ["bmg_chain.py", "--exp-name", "bmg_chain", *common],
        ["bmg_chain.py", "--outer-critic", "--exp-name", "bmg_chain_oc", *common],
    ]
    assert calls[6:] == [["plot.py", out, "--out", f"{out}/chain.png"]]
    # Flags after the two numbers go to every run.
    _, calls = run_experiment(tmp_path, "chain.sh", "100", "2", "--log-every", "5")
    assert all(call[-2:] == ["--log-every", "5"] and "2" in call for call in calls[1:6])


def test_snake_scripts_pass_their_numbers_and_flags(tmp_path):
    result, calls = run_experiment(tmp_path, "snake.sh", "3840000")
    assert result.returncode == 0, result.stderr
    budgets = [call[call.index("--total-timesteps") + 1 : call.index("--runs-dir")] for call in calls[1:6]]
    assert budgets == [["3840000", "--num-seeds", "10"]] * 5
    result, calls = run_experiment(tmp_path, "snake_early.sh")
    assert result.returncode == 0, result.stderr
    out = calls[1][calls[1].index("--runs-dir") + 1]
    assert re.fullmatch(r"runs/snake_early_\d{8}-\d{6}", out)
    assert f"training into {out}" in result.stdout and "python mg_snake.py --resume <run dir>" in result.stdout
    common = ["--total-timesteps", "3840000", "--num-seeds", "3", "--runs-dir", out, "--checkpoint-every-s", "300"]
    assert calls[1:6] == [
        ["mg_snake.py", "--exp-name", "mg_snake", *common],
        ["mg_snake.py", "--outer-critic", "--exp-name", "mg_snake_oc", *common],
        ["bmg_snake.py", "--exp-name", "bmg_snake", *common],
        ["bmg_snake.py", "--outer-critic", "--exp-name", "bmg_snake_oc", *common],
        ["mg_snake.py", "--meta-lr", "0", "--exp-name", "a2c_snake", *common],
    ]
    assert calls[6:] == [
        [
            "plot.py",
            out,
            "--out",
            f"{out}/snake_early.png",
            "--window",
            "146",
            "--mark-updates",
            "438",
            "584",
            "1460",
            "--at-updates",
            "438",
            "584",
            "1460",
        ]
    ]


def test_ablation_plots_exactly_its_own_runs_and_leaves_docs_alone(tmp_path):
    result, calls = run_experiment(tmp_path, "ablation.sh", "20", "2", "25600", "1")
    assert result.returncode == 0, result.stderr
    out = calls[1][calls[1].index("--runs-dir") + 1].removesuffix("/chain")
    assert re.fullmatch(r"runs/ablation_\d{8}-\d{6}", out)
    runs_dirs = [call[call.index("--runs-dir") + 1] for call in calls[1:9]]
    assert runs_dirs == [f"{out}/chain"] * 4 + [f"{out}/snake"] * 4
    assert calls[9:] == [
        ["plot.py", f"{out}/chain", "--out", f"{out}/chain_normalized.png"],
        ["plot.py", f"{out}/snake", "--out", f"{out}/snake_normalized.png"],
    ]
    assert not any("docs" in " ".join(call) for call in calls)


@pytest.mark.parametrize(
    "script, arguments, message",
    [
        ("chain.sh", ["abc"], "error: NUM_UPDATES must be a positive integer, got 'abc'"),
        ("chain.sh", ["100", "0"], "error: NUM_SEEDS must be a positive integer, got '0'"),
        ("chain.sh", ["--outer-critic"], "error: NUM_UPDATES must be a positive integer, got '--outer-critic'"),
        ("snake.sh", ["3.84e6"], "error: TOTAL_TIMESTEPS must be a positive integer, got '3.84e6'"),
        ("snake_early.sh", ["3840000", "-1"], "error: NUM_SEEDS must be a positive integer, got '-1'"),
        ("ablation.sh", ["100", "2", "x"], "error: SNAKE_TIMESTEPS must be a positive integer, got 'x'"),
        (
            "ablation.sh",
            ["1", "1", "1", "1", "1"],
            "error: at most 4 arguments (CHAIN_UPDATES CHAIN_SEEDS SNAKE_TIMESTEPS SNAKE_SEEDS), got 5",
        ),
        ("snake_7500.sh", ["runs", "3"], "error: at most 1 argument (RUNS_DIR), got 2"),
        ("snake_7500.sh", ["no/such/folder"], "error: RUNS_DIR 'no/such/folder' is not a directory"),
    ],
)
def test_bad_numbers_stop_before_python_runs(tmp_path, script, arguments, message):
    result, calls = run_experiment(tmp_path, script, *arguments)
    assert (result.returncode, result.stderr, calls) == (2, message + "\n", [])


@pytest.mark.parametrize("script", ["chain.sh", "snake.sh", "snake_early.sh", "ablation.sh", "snake_7500.sh"])
def test_without_the_requirements_the_scripts_say_what_to_install(tmp_path, script):
    result, calls = run_experiment(tmp_path, script, imports_ok=False)
    assert result.returncode == 2
    assert result.stderr == "error: install the requirements first: pip install -r requirements.txt\n"
    assert len(calls) == 1  # the import check, no training


SNAKE_7500_PLOT = ["--window", "146", "--mark-updates", "438", "1460", "7446", "--at-updates", "1460", "7446"]


def test_snake_7500_trains_the_five_variants_then_draws_and_writes_the_tables(tmp_path):
    result, calls = run_experiment(tmp_path, "snake_7500.sh")
    assert result.returncode == 0, result.stderr
    out = calls[1][calls[1].index("--runs-dir") + 1]
    assert re.fullmatch(r"runs/snake_7500_\d{8}-\d{6}", out)
    assert f"training into {out}" in result.stdout
    assert f"after a stop, continue with: experiments/snake_7500.sh {out}" in result.stdout
    common = ["--total-timesteps", "19200000", "--num-seeds", "3", "--runs-dir", out, "--checkpoint-every-s", "300"]
    assert calls[1:6] == [
        ["mg_snake.py", "--exp-name", "mg_snake", *common],
        ["mg_snake.py", "--outer-critic", "--exp-name", "mg_snake_oc", *common],
        ["bmg_snake.py", "--exp-name", "bmg_snake", *common],
        ["bmg_snake.py", "--outer-critic", "--exp-name", "bmg_snake_oc", *common],
        ["mg_snake.py", "--meta-lr", "0", "--exp-name", "a2c_snake", *common],
    ]
    plot = ["plot.py", out, "--out", f"{out}/snake_7500.png", *SNAKE_7500_PLOT, "--tables-out", f"{out}/snake_7500.md"]
    assert calls[6:] == [plot]
    assert f"then draw the figure and the tables with: python {' '.join(plot)}" in result.stdout


def write_run(folder, name, script, global_step=None, checkpoint=True, compact=False):
    """A run directory with args.json (as the scripts write it, or on one line), a checkpoint, and a
    metrics.csv whose last log point is at `global_step`."""
    run = folder / name
    run.mkdir(parents=True)
    args = {"script": script, "exp_name": name.split("__")[1], "total_timesteps": 3840000}
    (run / "args.json").write_text(json.dumps(args, indent=None if compact else 2))
    if checkpoint:
        (run / "checkpoint.msgpack").write_bytes(b"\x00")
    if global_step is not None:
        rows = [f"{seed},{step},1.0" for step in (2560, global_step) for seed in (0, 1, 2)]
        (run / "metrics.csv").write_text("seed,global_step,meta/gamma\n" + "\n".join(rows) + "\n")
    (run / "seed0").mkdir()
    return run


def test_snake_7500_continues_each_run_of_a_folder_with_its_script(tmp_path):
    runs = tmp_path / "snake_early_1"
    mg = write_run(runs, "Snake-6x6-v0__mg_snake__0__1", "mg_snake.py", 3840000)
    bmg = write_run(runs, "Snake-6x6-v0__bmg_snake_oc__0__2", "bmg_snake.py", 10240000, compact=True)
    done = write_run(runs, "Snake-6x6-v0__mg_snake_oc__0__3", "mg_snake.py", 19200000)
    unlogged = write_run(runs / "more", "Snake-6x6-v0__a2c_snake__0__4", "mg_snake.py")  # a checkpoint, no log point
    # A relative RUNS_DIR is the caller's, although the script runs from the repository's root.
    result, calls = run_experiment(tmp_path, "snake_7500.sh", os.path.relpath(runs))
    assert result.returncode == 0, result.stderr
    out = str(runs)
    assert f"continuing the runs in {out} to 7500 updates" in result.stdout
    assert f"after a stop, continue with: experiments/snake_7500.sh {out}" in result.stdout
    assert f"already at 7500 updates: {done}" in result.stdout
    budget = ["--total-timesteps", "19200000"]
    # bmg_snake, the one variant without a run there, is trained from scratch into the folder.
    assert f"no bmg_snake run in {out}: training it" in result.stdout
    assert calls[1:] == [
        ["bmg_snake.py", "--resume", str(bmg), *budget],
        ["mg_snake.py", "--resume", str(mg), *budget],
        ["mg_snake.py", "--resume", str(unlogged), *budget],
        [
            "bmg_snake.py",
            "--exp-name",
            "bmg_snake",
            *budget,
            "--num-seeds",
            "3",
            "--runs-dir",
            out,
            "--checkpoint-every-s",
            "300",
        ],
        ["plot.py", out, "--out", f"{out}/snake_7500.png", *SNAKE_7500_PLOT, "--tables-out", f"{out}/snake_7500.md"],
    ]


def test_snake_7500_checks_every_run_before_training_any(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    write_run(tmp_path / "chain", "DiscountingChain-bsuite__mg_chain__0__1", "mg_chain.py", 100)
    write_run(tmp_path / "dead", "Snake-6x6-v0__bmg_snake__0__1", "bmg_snake.py", 3840000)
    write_run(tmp_path / "dead", "Snake-6x6-v0__mg_snake__0__2", "mg_snake.py", checkpoint=False)
    for folder, message in [
        (empty, f"error: no run (a directory with args.json) in {empty}"),
        (
            tmp_path / "chain",
            f"error: {tmp_path}/chain/DiscountingChain-bsuite__mg_chain__0__1 is not a Snake run "
            "(its args.json names the script 'mg_chain.py', not mg_snake.py or bmg_snake.py)",
        ),
        (
            tmp_path / "dead",
            f"error: {tmp_path}/dead/Snake-6x6-v0__mg_snake__0__2 has no checkpoint.msgpack to "
            f"continue from (it stopped before its first one); move it out of {tmp_path}/dead",
        ),
    ]:
        result, calls = run_experiment(tmp_path, "snake_7500.sh", str(folder))
        assert (result.returncode, result.stderr, calls) == (2, message + "\n", [])
