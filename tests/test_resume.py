"""Runs that survive: a run stopped by SIGTERM or killed with `kill -9` and continued with
--resume gives the uninterrupted run's metrics.csv and saved model, byte for byte; a bad
checkpoint is one line and exit 2 with the run directory untouched. And the evaluations: the
logged Snake evaluation equals an independent replay of the same games with the saved θ, and the
chain's exact expected return equals the saved policy's Monte-Carlo return."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, SUBPROCESS_ENV, metrics_rows, only_run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import bmg_chain
import bmg_snake
import common_envs
import common_run
import mg_chain
import mg_snake

pytestmark = pytest.mark.slow  # every test reads the runs of the module's fixture: the scripts, end to end

MODULES = {"mg_chain.py": mg_chain, "bmg_chain.py": bmg_chain, "mg_snake.py": mg_snake, "bmg_snake.py": bmg_snake}
# Budgets long enough (50-400 log points) that a stop lands mid-run; 2 seeds, so the checkpoint
# holds a vmapped state. Snake evaluates every 50 updates (512 games each time, sampled and greedy).
# The same flags as test_reliability's sharding test and gpu.sh's dry run: one compile for all.
FLAGS = {
    "mg_chain.py": ["--num-envs", "8", "--num-updates", "800", "--log-every", "2"],
    "bmg_chain.py": ["--num-envs", "8", "--num-updates", "800", "--log-every", "2"],
    "mg_snake.py": ["--num-envs", "8", "--total-timesteps", "4000", "--log-every", "2", "--eval-every", "50"],
    "bmg_snake.py": ["--num-envs", "8", "--total-timesteps", "4000", "--log-every", "2", "--eval-every", "50"],
}


def start(script, runs_dir, *flags):
    command = [
        sys.executable,
        os.path.join(ROOT, script),
        *FLAGS[script],
        "--num-seeds",
        "2",
        "--outer-critic",
        "--save-model",
        "--runs-dir",
        str(runs_dir),
        *flags,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=SUBPROCESS_ENV)


def resume(script, run_dir, *flags):
    command = [sys.executable, os.path.join(ROOT, script), "--resume", str(run_dir), *flags]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=SUBPROCESS_ENV)


def finished(process):
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def logged_steps(run_dir):
    """global_step of every metrics.csv row of seed 0."""
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return [int(line.split(",")[1]) for line in f.read().splitlines()[1:] if line.startswith("0,")]


def checkpoint_updates(run_dir):
    path = os.path.join(run_dir, "checkpoint.msgpack")
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return flax.serialization.msgpack_restore(f.read())["updates_done"]


def stop_when(process, runs_dir, ready, timeout=300):
    """Freezes the process (SIGSTOP) at the first moment `ready(run_dir)` holds and returns its run
    folder; the caller then delivers the real signal. Freezing first makes the state the test checked
    the state the process is stopped in."""
    deadline = time.time() + timeout
    while True:
        assert time.time() < deadline, "the run never reached the point to stop it"
        runs = [p for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.exists() else []
        if runs and os.path.exists(runs[0] / "metrics.csv"):
            process.send_signal(signal.SIGSTOP)
            if ready(runs[0]):
                return runs[0]
            process.send_signal(signal.SIGCONT)
            assert process.poll() is None, "the run ended before it could be stopped"
        time.sleep(0.01)


@pytest.fixture(scope="module", params=list(MODULES))
def runs(request, tmp_path_factory):
    """For one script: the uninterrupted run, and beside it one run cut three ways and continued each time:
    stopped by SIGTERM after a few log points, resumed and killed with SIGKILL while its log is ahead of its
    last checkpoint, resumed again (mg_snake.py: and stopped by a time limit of 1 s, the loop being the same in
    all four scripts), and resumed to the end. The cut run starts once the first has logged, i.e. compiled:
    every process after the first loads its program from the compilation cache."""
    script = request.param
    base = tmp_path_factory.mktemp(script[:-3])
    full = start(script, base / "full")
    deadline = time.time() + 300
    while not list((base / "full").glob("*/metrics.csv")):
        assert full.poll() is None and time.time() < deadline, full.communicate()
        time.sleep(0.05)

    stopped = start(script, base / "cut")
    cut_dir = stop_when(stopped, base / "cut", lambda run: len(logged_steps(run)) >= 3)
    stopped.send_signal(signal.SIGTERM)
    stopped.send_signal(signal.SIGCONT)
    stdout, stderr = stopped.communicate(timeout=300)
    accumulator = EventAccumulator(str(cut_dir / "seed0"))
    accumulator.Reload()
    sigterm = {
        "returncode": stopped.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "csv_steps": logged_steps(cut_dir),
        "tensorboard_points": len(accumulator.Scalars("meta/gamma")),
    }

    killed = resume(script, cut_dir, "--checkpoint-every-s", "0.05")
    stop_when(killed, base / "cut", lambda run: ahead_of_checkpoint(script, run))
    kill9 = {"steps_at_kill": logged_steps(cut_dir), "checkpoint_updates": checkpoint_updates(cut_dir)}
    killed.send_signal(signal.SIGKILL)
    kill9["stdout"] = killed.communicate(timeout=60)[0]

    time_limit = None
    if script == "mg_snake.py":
        result = finished(resume(script, cut_dir, "--time-limit-s", "1"))
        time_limit = {"result": result, "checkpoint_updates": checkpoint_updates(cut_dir), "csv_steps": logged_steps(cut_dir)}
    last = finished(resume(script, cut_dir, *(["--time-limit-s", "0"] if time_limit else [])))

    out, err = full.communicate(timeout=600)
    assert full.returncode == 0, err
    return {
        "script": script,
        "full": only_run(base / "full"),
        "cut_dir": cut_dir,
        "sigterm": sigterm,
        "kill9": kill9,
        "time_limit": time_limit,
        "last": last,
        "full_stdout": out,
    }


# Inner-batch steps per update in FLAGS: the chain's rollout is one 100-step episode per env.
STEP_UNIT = {"mg_chain.py": 8 * 100, "bmg_chain.py": 8 * 100, "mg_snake.py": 8 * 5, "bmg_snake.py": 8 * 5}


def ahead_of_checkpoint(script, run_dir):
    """The log holds a row after the last checkpoint: what a kill -9 between checkpoints leaves."""
    updates, steps = checkpoint_updates(run_dir), logged_steps(run_dir)
    return updates is not None and bool(steps) and steps[-1] > updates * STEP_UNIT[script]


def test_sigterm_keeps_every_log_point_and_resume_continues_bit_exactly(runs):
    sigterm = runs["sigterm"]
    assert sigterm["returncode"] == 130, sigterm["stderr"]
    assert "interrupted after" in sigterm["stderr"] and "--resume" in sigterm["stderr"]
    # The run ends after the chunk in progress; every progress line it printed is a log point on
    # disk, in metrics.csv and in TensorBoard.
    printed = sigterm["stdout"].count("| gamma ")
    assert printed == len(sigterm["csv_steps"]) == sigterm["tensorboard_points"] >= 3
    # The resume starts from there: the checkpoint is the last log point's.
    assert f"resumed at update {len(sigterm['csv_steps']) * 2}" in runs["kill9"]["stdout"]
    # Cut three times, the run ends with the uninterrupted run's log, models and TensorBoard.
    assert runs["last"].returncode == 0, runs["last"].stderr
    assert metrics_rows(runs["cut_dir"]) == metrics_rows(runs["full"])
    for seed in (0, 1):
        full = (runs["full"] / f"seed{seed}" / "model.msgpack").read_bytes()
        assert (runs["cut_dir"] / f"seed{seed}" / "model.msgpack").read_bytes() == full
    # TensorBoard shows each log point once: the steps logged after a checkpoint were purged on resume.
    accumulator = EventAccumulator(str(runs["cut_dir"] / "seed1"))
    accumulator.Reload()
    steps = [event.step for event in accumulator.Scalars("meta/gamma")]
    assert steps == logged_steps(runs["full"])


def test_kill_9_between_checkpoints_resumes_from_the_checkpoint(runs):
    kill9, unit = runs["kill9"], STEP_UNIT[runs["script"]]
    # The kill came while the log was ahead of the checkpoint: resume drops those rows first (the log
    # then equals the uninterrupted run's: the test above).
    assert kill9["steps_at_kill"][-1] > kill9["checkpoint_updates"] * unit
    after_kill = runs["time_limit"]["result"] if runs["time_limit"] else runs["last"]
    assert f"resumed at update {kill9['checkpoint_updates']}" in after_kill.stdout


def test_the_run_directory_holds_what_the_readme_says(runs):
    script = runs["script"]
    run_dir = runs["full"]
    args = json.loads((run_dir / "args.json").read_text())
    assert args["script"] == script and args["outer_critic"] is True and args["num_seeds"] == 2
    env_id = common_envs.CHAIN_ENV_ID if script.endswith("chain.py") else common_envs.SNAKE_ENV_ID
    assert run_dir.name.startswith(f"{env_id}__{script[:-3]}_oc__0__")  # the variant is in the name
    assert (run_dir / "seed0").is_dir() and (run_dir / "seed1").is_dir()
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    assert header[:2] == ["seed", "global_step"]
    for metric in [
        "charts/episodic_return",
        "charts/episodic_length",
        "charts/SPS",
        "charts/env_steps_total",
        "meta/gamma",
        "meta/meta_grad",
        "meta/outer_advantage",
        "meta/outer_advantage_inner_critic",
        "meta/outer_advantage_outer_critic",
        "losses/policy_loss",
        "losses/value_loss",
        "losses/outer_value_loss",
        "losses/entropy",
        "losses/meta_loss",
    ]:
        assert metric in header
    chain_only = [name for name in header if name.startswith("policy/") or name.endswith("_s0")]
    eval_columns = [name for name in header if name.startswith("eval/")]
    if script.endswith("chain.py"):
        assert "policy/p_chain3" in chain_only and eval_columns == ["eval/expected_return"]
    else:
        assert not chain_only and sorted(eval_columns) == [
            "eval/episodic_length",
            "eval/episodic_return",
            "eval/episodic_return_greedy",
            "eval/global_step",
        ]
    last = rows[-1]
    unit = STEP_UNIT[script]
    assert int(last["global_step"]) == (800 if script.endswith("chain.py") else 100) * unit
    batches = 3 if script == "bmg_snake.py" else 2  # inner + outer batches (BMG on Snake: and the matching batch)
    assert float(last["charts/env_steps_total"]) == batches * int(last["global_step"])
    assert float(last["meta/gamma"]) != pytest.approx(float(rows[0]["meta/gamma"]), abs=1e-7)  # γ moved
    # With --outer-critic the outer loss uses the outer head's advantage.
    assert float(last["meta/outer_advantage"]) == pytest.approx(float(last["meta/outer_advantage_outer_critic"]), rel=1e-4)


def test_tensorboard_holds_the_csv_and_plot_py_draws_the_run(runs):
    """The uninterrupted run: a progress line per log point, TensorBoard's γ of seed 1 at every logged step
    with the logged values, and plot.py's figure and table of it."""
    script, run_dir, rows = runs["script"], runs["full"], metrics_rows(runs["full"])
    updates = 800 if script.endswith("chain.py") else 100
    steps = logged_steps(run_dir)
    assert len(rows) == 2 * len(steps) == 2 * updates // 2  # 2 seeds, a log point every 2 updates
    assert runs["full_stdout"].count("| gamma ") == len(steps) and f"update {updates}/{updates} | gamma" in runs["full_stdout"]
    accumulator = EventAccumulator(str(run_dir / "seed1"))
    accumulator.Reload()
    gammas = accumulator.Scalars("meta/gamma")
    assert [event.step for event in gammas] == steps
    logged = [float(row["meta/gamma"]) for row in rows if row["seed"] == "1"]
    assert [event.value for event in gammas] == pytest.approx(logged, rel=1e-5)
    figure = run_dir.parent / "figure.png"
    command = [sys.executable, os.path.join(ROOT, "plot.py"), str(run_dir), "--out", str(figure)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert figure.stat().st_size > 10_000 and figure.read_bytes()[:4] == b"\x89PNG"
    assert f"+ outer critic | 2 | {updates} |" in result.stdout


def test_saved_model_reproduces_the_last_log_point(runs):
    script, module = runs["script"], MODULES[runs["script"]]
    # The run's last line says where its results are and how to look at them.
    run_dir = str(runs["full"])
    assert runs["full_stdout"].splitlines()[-1] == (
        f"done: {run_dir} | python plot.py {run_dir} | tensorboard --logdir {os.path.dirname(run_dir)}"
    )
    rows = metrics_rows(runs["full"])
    fns = module.make_train(module.Args(num_envs=8), all_parts=True)
    for seed in (0, 1):
        saved = flax.serialization.msgpack_restore((runs["full"] / f"seed{seed}" / "model.msgpack").read_bytes())
        last = [row for row in rows if row["seed"] == str(seed)][-1]
        assert float(module.gamma_fn(saved["meta_params"])) == pytest.approx(float(last["meta/gamma"]), rel=1e-5)
        params = jax.tree.map(np.asarray, saved["params"])
        fresh = fns.init(seed).params
        assert jax.tree.structure(params) == jax.tree.structure(fresh)
        if script.endswith("chain.py"):  # the saved actor gives the last logged π(· | s0)
            for k, p in enumerate(np.asarray(fns.pi_s0(params))):
                assert p == pytest.approx(float(last[f"policy/p_chain{k}"]), rel=1e-5)
        else:  # trained parameters, not the initial ones
            assert not np.allclose(jax.tree.leaves(params)[0], jax.tree.leaves(fresh)[0])


# --------------------------------------------------------------------------------------------
# Bad checkpoints: one line, exit 2, nothing in the run directory changes
# --------------------------------------------------------------------------------------------
def snapshot(run_dir):
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def main_exit(module, argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", argv)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        common_run.run_main(module.main)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return exit_info.value.code, lines[0]


def test_bad_checkpoints_exit_2_with_one_line_and_touch_nothing(runs, tmp_path, monkeypatch, capsys):
    script, module = runs["script"], MODULES[runs["script"]]
    run_dir = runs["full"]
    before = snapshot(run_dir)
    other = "bmg" + script[2:] if script.startswith("mg") else script[1:]
    cases = [
        ([script, "--resume", str(run_dir), "--no-outer-critic"], "error: --outer-critic must be the checkpoint's (True)"),
        ([script, "--resume", str(run_dir), "--seed", "1"], "error: --seed must be the checkpoint's (0)"),
        ([other, "--resume", str(run_dir)], f"its checkpoint was written by {script}, not {other}"),
        ([script, "--resume", str(tmp_path)], "cannot read"),
        ([script, "--resume", str(tmp_path / "typo")], f"--resume {tmp_path / 'typo'}: no such run folder"),
    ]
    for argv, message in cases:
        code, line = main_exit(MODULES[argv[0]], argv, monkeypatch, capsys)
        assert code == 2 and message in line and line.startswith("error: "), line
    # A checkpoint cut to half its bytes (a torn copy), in a copy of the run.
    torn = tmp_path / "torn"
    torn.mkdir()
    data = (run_dir / "checkpoint.msgpack").read_bytes()
    (torn / "checkpoint.msgpack").write_bytes(data[: len(data) // 2])
    code, line = main_exit(module, [script, "--resume", str(torn)], monkeypatch, capsys)
    assert code == 2 and "truncated or corrupt" in line, line
    assert [p.name for p in torn.iterdir()] == ["checkpoint.msgpack"]
    assert snapshot(run_dir) == before


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def replay_evaluation(actor_params, updates_done, greedy):
    """The evaluation protocol written again from the README, with plain jumanji: 512 fresh games
    from keys that depend on the update alone, each played to its end by the saved policy."""
    game, actor = common_envs.snake_game(), mg_snake.Actor(common_envs.SNAKE_NUM_ACTIONS)
    key = jax.random.fold_in(jax.random.PRNGKey(20220101), updates_done)
    reset_key, action_key = jax.random.split(key)
    state, timestep = jax.vmap(game.reset)(jax.random.split(reset_key, 512))

    @jax.jit
    def step(state, obs, t):
        logits = actor.apply(actor_params, obs)
        action = jnp.argmax(logits, -1) if greedy else jax.random.categorical(jax.random.fold_in(action_key, t), logits)
        state, timestep = jax.vmap(game.step)(state, action)
        return state, timestep.observation.grid, timestep.reward, timestep.last()

    obs, alive = timestep.observation.grid, np.ones(512, bool)
    returns, lengths = np.zeros(512), np.zeros(512)
    for t in range(common_envs.SNAKE_TIME_LIMIT):
        state, obs, reward, last = step(state, obs, t)
        returns += np.where(alive, reward, 0.0)
        lengths += alive
        alive &= ~np.asarray(last)
        if not alive.any():
            break
    return returns.mean(), lengths.mean()


def test_snake_evaluation_equals_an_independent_replay_on_the_same_boards(runs):
    if not runs["script"].endswith("snake.py"):
        pytest.skip("Snake only (the chain's evaluation is exact)")
    with open(runs["full"] / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    num_updates = 4000 // 40
    for seed in (0, 1):  # both seeds are scored on the boards the replay plays: keys from the update alone
        last = [row for row in rows if row["seed"] == str(seed)][-1]
        assert int(last["eval/global_step"]) == num_updates * 40  # evaluated after the last update
        saved = flax.serialization.msgpack_restore((runs["full"] / f"seed{seed}" / "model.msgpack").read_bytes())
        sampled_return, sampled_length = replay_evaluation(saved["params"]["actor"], num_updates, greedy=False)
        greedy_return, _ = replay_evaluation(saved["params"]["actor"], num_updates, greedy=True)
        assert float(last["eval/episodic_return"]) == pytest.approx(sampled_return, abs=1e-6)
        assert float(last["eval/episodic_length"]) == pytest.approx(sampled_length, rel=1e-6)
        assert float(last["eval/episodic_return_greedy"]) == pytest.approx(greedy_return, abs=1e-6)
    # Evaluations come every 50 updates, each logged at the step of the policy it scored (50 × 40
    # inner steps), in the row of the chunk that held it; the other rows hold nan.
    steps = [row["eval/global_step"] for row in rows if row["seed"] == "0"]
    assert steps[24] == "2000" and [s for s in steps if s != "nan"] == ["2000", "4000"]


def test_chain_expected_return_equals_the_monte_carlo_return_of_the_saved_policy(runs):
    if not runs["script"].endswith("chain.py"):
        pytest.skip("chain only")
    module = MODULES[runs["script"]]
    with open(runs["full"] / "metrics.csv") as f:
        last = [row for row in csv.DictReader(f) if row["seed"] == "1"][-1]
    saved = flax.serialization.msgpack_restore((runs["full"] / "seed1" / "model.msgpack").read_bytes())
    fns = module.make_train(module.Args(num_envs=4096), all_parts=True)
    runner = fns.init(7)
    _, _, batch = jax.jit(fns.rollout)(saved["params"], runner.env_state, runner.obs, jax.random.PRNGKey(3))
    returns = np.asarray(batch.traj.reward.sum(axis=0))  # one whole episode per env
    standard_error = returns.std() / np.sqrt(len(returns))
    assert standard_error > 0
    assert abs(float(last["eval/expected_return"]) - returns.mean()) < 3 * standard_error


def test_time_limit_ends_cleanly_with_a_checkpoint_and_resumes(runs):
    if runs["time_limit"] is None:
        pytest.skip("one script: the loop is the same in all four")
    result, updates = runs["time_limit"]["result"], runs["time_limit"]["checkpoint_updates"]
    assert result.returncode == common_run.EXIT_TIME_LIMIT == 3, result.stderr  # resumable: a cluster requeues it
    assert runs["kill9"]["checkpoint_updates"] < updates < 4000 // 40  # stopped early, at a log point, with a checkpoint
    run_dir = runs["cut_dir"]
    assert f"time limit reached after {updates} updates; continue with: python mg_snake.py --resume {run_dir}" in result.stdout
    assert runs["time_limit"]["csv_steps"][-1] == updates * STEP_UNIT["mg_snake.py"]
    # --resume keeps the checkpoint's time limit (a cluster job resubmitted as it was); 0 lifts it, and the
    # run ends as the uninterrupted one (test_sigterm_keeps_every_log_point_and_resume_continues_bit_exactly).
    assert runs["last"].returncode == 0 and "time limit" not in runs["last"].stdout
