"""experiments/*.sh: the commands each script runs, read from a stand-in `python` that records its
arguments and trains nothing; bad arguments and a missing JAX stop the script with one line."""

import os
import re
import subprocess

import pytest

from conftest import ROOT


def run_experiment(tmp_path, script, *arguments, imports_ok=True):
    """(result, [argument lists of every python call])."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "python"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$PYTHON_LOG"\n'
                    '[[ $1 == -c ]] && exit "$IMPORT_RC"\nexit 0\n')
    fake.chmod(0o755)
    log = tmp_path / "python.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON_LOG": str(log),
           "IMPORT_RC": "0" if imports_ok else "1"}
    result = subprocess.run(["bash", os.path.join(ROOT, "experiments", script), *arguments],
                            capture_output=True, text=True, timeout=30, env=env)
    return result, [line.split() for line in log.read_text().splitlines()]


def test_chain_with_one_argument_passes_nothing_extra(tmp_path):
    result, calls = run_experiment(tmp_path, "chain.sh", "100")
    assert result.returncode == 0, result.stderr
    assert calls[0] == ["-c", "import", "jax,", "jumanji,", "gymnax"]
    out = calls[1][calls[1].index("--runs-dir") + 1]
    assert re.fullmatch(r"runs/chain_\d{8}-\d{6}", out)
    common = ["--num-updates", "100", "--num-seeds", "10", "--runs-dir", out]
    assert calls[1:6] == [["mg_chain.py", "--meta-lr", "0", "--exp-name", "a2c_chain", *common],
                          ["mg_chain.py", "--exp-name", "mg_chain", *common],
                          ["mg_chain.py", "--outer-critic", "--exp-name", "mg_chain_oc", *common],
                          ["bmg_chain.py", "--exp-name", "bmg_chain", *common],
                          ["bmg_chain.py", "--outer-critic", "--exp-name", "bmg_chain_oc", *common]]
    assert calls[6:] == [["plot.py", out, "--out", f"{out}/chain.png"]]
    # Flags after the two numbers go to every run.
    _, calls = run_experiment(tmp_path, "chain.sh", "100", "2", "--log-every", "5")
    assert all(call[-2:] == ["--log-every", "5"] and "2" in call for call in calls[1:6])


def test_snake_scripts_pass_their_numbers_and_flags(tmp_path):
    result, calls = run_experiment(tmp_path, "snake.sh", "3840000")
    assert result.returncode == 0, result.stderr
    budgets = [call[call.index("--total-timesteps") + 1:call.index("--runs-dir")] for call in calls[1:6]]
    assert budgets == [["3840000", "--num-seeds", "10"]] * 5
    result, calls = run_experiment(tmp_path, "snake_early.sh")
    assert result.returncode == 0, result.stderr
    out = calls[1][calls[1].index("--runs-dir") + 1]
    assert re.fullmatch(r"runs/snake_early_\d{8}-\d{6}", out)
    assert f"training into {out}" in result.stdout and "python mg_snake.py --resume <run dir>" in result.stdout
    common = ["--total-timesteps", "3840000", "--num-seeds", "3", "--runs-dir", out, "--checkpoint-every-s", "300"]
    assert calls[1:6] == [["mg_snake.py", "--exp-name", "mg_snake", *common],
                          ["mg_snake.py", "--outer-critic", "--exp-name", "mg_snake_oc", *common],
                          ["bmg_snake.py", "--exp-name", "bmg_snake", *common],
                          ["bmg_snake.py", "--outer-critic", "--exp-name", "bmg_snake_oc", *common],
                          ["mg_snake.py", "--meta-lr", "0", "--exp-name", "a2c_snake", *common]]
    assert calls[6:] == [["plot.py", out, "--out", f"{out}/snake_early.png", "--window", "146", "--mark-updates",
                          "438", "584", "1460", "--at-updates", "438", "584", "1460"]]


def test_ablation_plots_exactly_its_own_runs_and_leaves_docs_alone(tmp_path):
    result, calls = run_experiment(tmp_path, "ablation.sh", "20", "2", "25600", "1")
    assert result.returncode == 0, result.stderr
    out = calls[1][calls[1].index("--runs-dir") + 1].removesuffix("/chain")
    assert re.fullmatch(r"runs/ablation_\d{8}-\d{6}", out)
    runs_dirs = [call[call.index("--runs-dir") + 1] for call in calls[1:9]]
    assert runs_dirs == [f"{out}/chain"] * 4 + [f"{out}/snake"] * 4
    assert calls[9:] == [["plot.py", f"{out}/chain", "--out", f"{out}/chain_normalized.png"],
                         ["plot.py", f"{out}/snake", "--out", f"{out}/snake_normalized.png"]]
    assert not any("docs" in " ".join(call) for call in calls)


@pytest.mark.parametrize("script, arguments, message", [
    ("chain.sh", ["abc"], "error: NUM_UPDATES must be a positive integer, got 'abc'"),
    ("chain.sh", ["100", "0"], "error: NUM_SEEDS must be a positive integer, got '0'"),
    ("chain.sh", ["--outer-critic"], "error: NUM_UPDATES must be a positive integer, got '--outer-critic'"),
    ("snake.sh", ["3.84e6"], "error: TOTAL_TIMESTEPS must be a positive integer, got '3.84e6'"),
    ("snake_early.sh", ["3840000", "-1"], "error: NUM_SEEDS must be a positive integer, got '-1'"),
    ("ablation.sh", ["100", "2", "x"], "error: SNAKE_TIMESTEPS must be a positive integer, got 'x'"),
    ("ablation.sh", ["1", "1", "1", "1", "1"],
     "error: at most 4 arguments (CHAIN_UPDATES CHAIN_SEEDS SNAKE_TIMESTEPS SNAKE_SEEDS), got 5"),
])
def test_bad_numbers_stop_before_python_runs(tmp_path, script, arguments, message):
    result, calls = run_experiment(tmp_path, script, *arguments)
    assert (result.returncode, result.stderr, calls) == (2, message + "\n", [])


@pytest.mark.parametrize("script", ["chain.sh", "snake.sh", "snake_early.sh", "ablation.sh"])
def test_without_the_requirements_the_scripts_say_what_to_install(tmp_path, script):
    result, calls = run_experiment(tmp_path, script, imports_ok=False)
    assert result.returncode == 2
    assert result.stderr == "error: install the requirements first: pip install -r requirements.txt\n"
    assert len(calls) == 1  # the import check, no training
