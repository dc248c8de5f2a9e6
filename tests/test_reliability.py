"""What every run of every script guarantees: bad input stops before anything is compiled or
written, interrupts and NaNs lose nothing that was logged, the same command gives the same numbers
on one device or several, and --save-model writes what was trained."""

import os
import re
import subprocess
import sys

import jax.monitoring
import numpy as np
import pytest
import tyro
from conftest import ROOT, metrics_rows, only_run

import bmg_chain
import bmg_snake
import common_run
import mg_chain
import mg_snake

# Tiny budgets: one compile and a few seconds per run; every guarantee is run on all four scripts.
CHAIN, SNAKE = ["mg_chain.py", "bmg_chain.py"], ["mg_snake.py", "bmg_snake.py"]
TINY = {script: ["--num-envs", "8", "--log-every", "2"] for script in CHAIN + SNAKE}
BUDGET = {**{s: ["--num-updates", "4"] for s in CHAIN}, **{s: ["--total-timesteps", "160"] for s in SNAKE}}
ENDLESS = {**{s: ["--num-updates", "1000000"] for s in CHAIN}, **{s: ["--total-timesteps", "10000000"] for s in SNAKE}}


def command(script, *flags):
    return [sys.executable, os.path.join(ROOT, script), *TINY[script], *flags]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["mg_chain.py", "mg_snake.py"])
def test_non_finite_values_stop_the_run_with_a_message(script, tmp_path):
    # One script per environment: the finiteness check (make_train's diagnostics) and main are the
    # same code in MG and BMG (tests/test_shared_code.py), and each run here compiles a program of its own.
    # An absurd inner learning rate sends the learned critic's weights to ±inf within one update. (Snake
    # without its evaluation: the check reads θ, η and the meta-gradient, and the program compiles faster.)
    flags = ["--no-true-value"] if script in CHAIN else ["--eval-every", "0"]
    result = subprocess.run(
        command(script, *BUDGET[script], *flags, "--learning-rate", "1e38", "--runs-dir", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert re.search(r"non-finite .* at update \d+ of seed 0", result.stderr), result.stderr
    assert os.path.exists(os.path.join(only_run(tmp_path), "args.json"))


# --------------------------------------------------------------------------------------------
# Bad input: every bounded option of every script, one line on stderr and exit code 2
# --------------------------------------------------------------------------------------------
BAD_EVERYWHERE = [
    ["--seed", "-1"],
    ["--num-seeds", "0"],
    ["--num-seeds", "-2"],
    ["--log-every", "0"],
    ["--num-envs", "0"],
    ["--learning-rate", "0"],
    ["--learning-rate", "-1"],
    ["--gae-lambda", "1.5"],
    ["--gae-lambda", "-0.1"],
    ["--ent-coef", "-0.01"],
    ["--vf-coef", "-1"],
    ["--gamma-init", "nan"],
    ["--meta-lr", "-0.1"],
    ["--max-meta-grad-norm", "0"],
    ["--max-meta-grad-norm", "-1"],
    ["--max-meta-grad-norm", "nan"],
    ["--outer-gamma", "0"],
    ["--outer-gamma", "1.5"],
    ["--outer-gae-lambda", "2"],
    ["--outer-ent-coef", "-1"],
    ["--num-seeds", "2", "--seed", "2147483647"],
    ["--seed", "99999999999"],
    ["--checkpoint-every-s", "-1"],
    ["--checkpoint-every-s", "nan"],
    ["--time-limit-s", "-5"],
]
BAD_CHAIN = [
    ["--mapping-seed", "5"],
    ["--mapping-seed", "-1"],
    ["--num-updates", "0"],
    ["--gamma-init", "0.9"],
    ["--gamma-init", "1.0"],
    ["--gamma-init", "1.5"],
]
BAD_SNAKE = [
    ["--eval-every", "-1"],
    ["--num-steps", "0"],
    ["--total-timesteps", "2559"],  # less than one 512 × 5 batch
    ["--num-envs", "8", "--total-timesteps", "39"],
    ["--gamma-init", "0"],
    ["--gamma-init", "1.0"],
    ["--env-id", "Pong-MinAtar"],  # not one of the games
]
MODULES = {"mg_chain.py": mg_chain, "bmg_chain.py": bmg_chain, "mg_snake.py": mg_snake, "bmg_snake.py": bmg_snake}
BAD_INPUT = [
    (script, flags) for script in CHAIN + SNAKE for flags in BAD_EVERYWHERE + (BAD_CHAIN if script in CHAIN else BAD_SNAKE)
]


@pytest.mark.parametrize("script, flags", BAD_INPUT, ids=[f"{s}:{' '.join(f)}" for s, f in BAD_INPUT])
def test_every_bad_value_is_rejected_with_one_line(script, flags):
    module = MODULES[script]
    args = tyro.cli(module.Args, args=flags)
    with pytest.raises(common_run.BadInput) as error:
        common_run.check_args(args, module.arg_rules(args))
    option = [flag for flag in flags if flag.startswith("--")][-1]
    assert str(error.value).startswith(f"{option} ") and ", got " in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("script", CHAIN + SNAKE)
def test_defaults_are_accepted(script):
    args = MODULES[script].Args()
    common_run.check_args(args, MODULES[script].arg_rules(args))


GAMMA_INIT_ERROR = r"error: --gamma-init must be in \(0\.?9?, 1(\.0)?\)( for the chain)?, got 1\.5\n"


@pytest.mark.parametrize("script", CHAIN + SNAKE)
def test_bad_input_to_main_exits_2_before_compiling_or_writing_anything(script, tmp_path, monkeypatch, capsys):
    """main() in this process, as the command line calls it: an out-of-range value and a typo'd option end in
    one line and exit 2 before JAX traces or compiles anything (nor loads it from the compilation cache); a
    runs directory that cannot be made, before the training program is compiled. Nothing is written."""

    def main_exit(*flags):
        monkeypatch.setattr(sys, "argv", [script, *TINY[script], *flags])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            common_run.run_main(MODULES[script].main)
        out, err = capsys.readouterr()
        assert "compiling" not in out, out
        return exit_info.value.code, err

    runs = tmp_path / "runs"
    compiled = []
    listener = lambda event, duration, **kwargs: compiled.append(event) if "compil" in event else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        code, err = main_exit("--gamma-init", "1.5", "--runs-dir", str(runs))
        assert code == 2 and re.fullmatch(GAMMA_INIT_ERROR, err), err
        code, err = main_exit("--outer-critc", "--runs-dir", str(runs))  # tyro's own message
        assert code == 2 and "--outer-critc" in err
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiled == []
    blocker = tmp_path / "a_file"  # a runs directory that cannot be created (even as root)
    blocker.write_text("")
    code, err = main_exit("--runs-dir", str(blocker / "runs"))
    assert code == 2 and re.fullmatch(r"error: --runs-dir .* is not writable \(.*\)\n", err), err
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


@pytest.mark.parametrize("script", ["mg_chain.py", "bmg_snake.py"])
def test_cli_bad_input_exits_2_before_compiling_or_writing_anything(script, tmp_path):
    # End to end, one script per environment (the rules and main() of all four are checked in process above):
    # the one line, and the run stops before it says it compiles.
    result = subprocess.run(
        command(script, "--gamma-init", "1.5", "--runs-dir", str(tmp_path)), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert re.fullmatch(GAMMA_INIT_ERROR, result.stderr), result.stderr
    assert "compiling" not in result.stdout and not any(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# Seeds across devices (two CPU devices stand in for two GPUs)
# --------------------------------------------------------------------------------------------
TWO_DEVICES = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


@pytest.mark.slow
@pytest.mark.parametrize("script", ["mg_chain.py", "bmg_snake.py"])
def test_seeds_sharded_over_two_devices_give_the_single_device_numbers(script, tmp_path):
    # The flags of test_resume.py's runs: the one-device run compiles their program once for both.
    flags = [*BUDGET[script], "--num-seeds", "2", "--outer-critic", *(["--eval-every", "50"] if script in SNAKE else [])]
    # XLA writes the chunk main() compiles, as optimised for the two devices, to hlo/.
    dump = {
        "XLA_FLAGS": f"{TWO_DEVICES['XLA_FLAGS']} --xla_dump_to={tmp_path / 'hlo'} --xla_dump_hlo_as_text "
        "--xla_dump_hlo_module_re=jit_train"
    }
    rows = []
    # No compilation cache for the two devices: XLA dumps only what it compiles.
    uncached = {
        k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT_CACHE") and k != "JAX_COMPILATION_CACHE_DIR"
    }
    for name, env in (("one", os.environ), ("two", {**uncached, **TWO_DEVICES, **dump})):
        result = subprocess.run(
            command(script, *flags, "--runs-dir", str(tmp_path / name)), env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("CpuDevice") == (1 if name == "one" else 2)
        rows.append(metrics_rows(only_run(tmp_path / name), wall_clock=True))
    single, sharded = rows
    assert len(single) == len(sharded) == 4  # 2 seeds × 2 log points
    for a, b in zip(single, sharded):
        assert a.keys() == b.keys() and (a["seed"], a["global_step"]) == (b["seed"], b["global_step"])
        # The same episodes and updates; only float32 rounding may differ, as XLA picks other
        # kernels for a batch of one seed than for two (a vmapped pair on one device differs from
        # single-seed runs in the same way). Two sums cancel, so their rounding is absolute, not
        # relative: BMG's meta-loss, a KL of ~1e-5 made of log-probabilities of size ~1.4 (rounding
        # ~1e-7); the chain's meta-gradient, ~2e-8 here, a dot product of ∇θ′L with ∂θ′/∂η over all
        # weights (a single-seed run and the pair on one device differ in it by 2e-13).
        atols = {"losses/meta_loss": 1e-7, "meta/meta_grad": 1e-12}
        for name in a:
            if name != "charts/SPS":
                atol = atols.get(name, 0.0)
                np.testing.assert_allclose(float(b[name]), float(a[name]), rtol=1e-5, atol=atol, err_msg=name)
    # Each device runs its own seed and nothing crosses between them: the partitioned chunk holds
    # one seed per device and no collective, and no host
    # callback (jax.debug.print and friends would be one): the host sees a chunk's metrics only at its end.
    (hlo,) = (tmp_path / "hlo").glob("*jit_train.cpu_after_optimizations.txt")
    text = hlo.read_text()
    assert "num_partitions=2" in text
    assert re.search(r"ENTRY %\S+ \(param[.\d]*: f32\[1,", text)  # the seed axis, 2 seeds, is 1 per device
    assert not re.findall(r"\b(all-gather|all-reduce|reduce-scatter|all-to-all|collective-permute)\b", text)
    assert "callback" not in text


def test_seeds_not_divisible_by_the_devices_is_an_error(tmp_path):
    result = subprocess.run(
        command("mg_chain.py", "--num-seeds", "3", "--runs-dir", str(tmp_path)),
        env=TWO_DEVICES,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == "error: --num-seeds must be a multiple of the 2 devices the seeds are split over, got 3\n"
    assert not any(tmp_path.iterdir())


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(common_run.time, "time", lambda: 1_800_000_000.0)
    first, second, third = (common_run.make_run_dir(str(tmp_path), "Snake-6x6-v0__mg_snake__0") for _ in range(3))
    assert second == first + "-1" and third == first + "-2"
    assert all(os.path.isdir(d) for d in (first, second, third))
