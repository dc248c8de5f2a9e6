"""watch.py: the GIF of trained Snake agents. From a tiny trained run's two seeds, the GIF has the frames its
options imply, and every score it shows equals an independent replay of the same evaluation keys
without rendering (written here with plain jumanji and the saved θ); the mean over the evaluation's
boards equals the logged evaluation. Bad input is one line and exit 2 before anything is compiled."""

import csv
import functools
import json
import os
import subprocess
import sys
import time

import flax.serialization
import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, SUBPROCESS_ENV
from PIL import Image

import common_envs
import mg_snake
import watch

# test_resume.py's Snake flags (the same program: it compiles once per session through the
# persistent compilation cache of conftest.py). One run, seeds 0 and 1: the two panels.
FLAGS = "--num-envs 8 --total-timesteps 4000 --log-every 2 --eval-every 50 --num-seeds 2 --outer-critic --save-model".split()
UPDATES = 4000 // (8 * 5)  # 100; evaluated at 50 and 100


def train(runs_dir, *flags):
    command = [sys.executable, os.path.join(ROOT, "mg_snake.py"), *FLAGS, "--runs-dir", str(runs_dir), *flags]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=SUBPROCESS_ENV)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny MG + outer critic run, seeds 0 and 1, with test_resume.py's flags: its program comes
    from the compilation cache. Its two seeds are the two panels."""
    base = tmp_path_factory.mktemp("watch")
    process = train(base)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    (run_dir,) = base.iterdir()
    return str(run_dir)


# --------------------------------------------------------------------------------------------
# The replay: the evaluation's games again, from the README's description, with plain jumanji
# --------------------------------------------------------------------------------------------
GAME = common_envs.snake_game()
ACTOR = mg_snake.Actor(common_envs.SNAKE_NUM_ACTIONS)


@functools.partial(jax.jit, static_argnames="greedy")
def replay_step(actor_params, state, obs, action_key, t, greedy):
    logits = ACTOR.apply(actor_params, obs)
    action = jnp.argmax(logits, -1) if greedy else jax.random.categorical(jax.random.fold_in(action_key, t), logits)
    return jax.vmap(GAME.step)(state, action)


def replay(actor_params, update, greedy):
    """The 512 games of the evaluation after `update` updates: game i starts from
    reset(split(reset_key, 512)[i]), step t samples with fold_in(action_key, t) (or takes the
    argmax). Returns the running score of every game after each step [steps + 1, 512] (frozen once
    the game is over) and each game's length."""
    reset_key, action_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(20220101), update))
    state, timestep = jax.vmap(GAME.reset)(jax.random.split(reset_key, 512))
    obs, alive, lengths, scores = timestep.observation.grid, np.ones(512, bool), np.zeros(512, int), [np.zeros(512)]
    for t in range(common_envs.SNAKE_TIME_LIMIT):
        state, timestep = replay_step(actor_params, state, obs, action_key, t, greedy)
        obs = timestep.observation.grid
        scores.append(scores[-1] + np.where(alive, np.asarray(timestep.reward), 0.0))
        lengths += alive
        alive &= ~np.asarray(timestep.last())
        if not alive.any():
            break
    return np.array(scores), lengths


def saved_actor(run_dir, seed):
    with open(os.path.join(run_dir, f"seed{seed}", "model.msgpack"), "rb") as f:
        return flax.serialization.msgpack_restore(f.read())["params"]["actor"]


def logged_evaluation(run_dir, seed, metric):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = [row for row in csv.DictReader(f) if row["seed"] == str(seed) and row["eval/global_step"] != "nan"]
    assert int(rows[-1]["eval/global_step"]) == UPDATES * 40  # the last update was evaluated
    return float(rows[-1][metric])


def check_gif(result, sources, out, max_frames, greedy):
    """The frames written, their step and score per panel, against the replay of each source."""
    panels, plays, shown, frames = result
    replays = [replay(saved_actor(run_dir, seed), UPDATES, greedy) for run_dir, seed in sources]
    ends = [[int(lengths[b]) for b in shown] for _, lengths in replays]
    # A game of n steps takes n + 1 frames (its starting board, then one per step), for the longest
    # panel's game; the games follow each other; --max-frames cuts the rest.
    expected = min(max_frames, sum(max(panel[g] for panel in ends) + 1 for g in range(len(shown))))
    with Image.open(out) as gif:
        assert gif.n_frames == len(frames) == expected
        assert gif.info["duration"] == 100  # --fps 10
    for frame in frames:
        for p, (scores, _) in enumerate(replays):
            end = ends[p][frame.game]
            assert frame.steps[p] == min(frame.step, end)
            assert frame.scores[p] == scores[min(frame.steps[p], len(scores) - 1), shown[frame.game]]
    metric = "eval/episodic_return_greedy" if greedy else "eval/episodic_return"
    for panel, play, (run_dir, seed), (scores, lengths) in zip(panels, plays, sources, replays):
        assert (panel.run_dir, panel.seed, panel.update, panel.label) == (run_dir, seed, UPDATES, "MG + outer critic")
        np.testing.assert_array_equal(play.returns, scores[-1])  # every board, not only those shown
        np.testing.assert_array_equal(play.lengths, lengths)
        # The boards of the evaluation after the run's last update: the logged evaluation's games.
        assert play.returns.mean() == pytest.approx(logged_evaluation(run_dir, seed, metric), abs=1e-6)
    return replays


@pytest.mark.slow
def test_gif_of_two_runs_shows_the_scores_of_a_replay_of_the_same_games(run, tmp_path, capsys):
    out = str(tmp_path / "watch.gif")
    start = time.time()
    result = watch.run(watch.Args(runs=(run, run), seed=(0, 1), board_index=5, games=3, out=out))
    elapsed = time.time() - start
    # By default θ comes from each run's checkpoint; the replay uses the models --save-model wrote.
    assert [panel.source for panel in result[0]] == ["checkpoint", "checkpoint"]
    check_gif(result, [(run, 0), (run, 1)], out, max_frames=500, greedy=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"wrote {out}: {len(result[3])} frames")
    for line, play in zip(lines[1:], result[1]):  # each panel's final scores on the boards shown
        assert f"score on boards 5..7: {', '.join(str(int(play.returns[b])) for b in (5, 6, 7))} |" in line
    print(f"watch.run: {elapsed:.1f}s for {len(result[3])} frames")


@pytest.mark.slow
def test_greedy_gif_from_saved_models_stops_at_max_frames(run, tmp_path):
    a = run
    out = str(tmp_path / "greedy.gif")
    # One run twice, its two seeds, θ from seed<N>/model.msgpack. Two games take at least 2 + 2
    # frames: --max-frames 3 cuts the second.
    result = watch.run(watch.Args(runs=(a, a), seed=(0, 1), params="model", greedy=True, games=2, max_frames=3, out=out))
    assert [panel.source for panel in result[0]] == ["model", "model"]
    check_gif(result, [(a, 0), (a, 1)], out, max_frames=3, greedy=True)
    assert len(result[3]) == 3


# --------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2, nothing compiled or written
# --------------------------------------------------------------------------------------------
def fake_run(path, **args):
    """A run directory with only args.json (and what the case adds)."""
    path.mkdir()
    (path / "args.json").write_text(
        json.dumps({"script": "mg_snake.py", "seed": 0, "num_seeds": 2, "meta_lr": 3e-3, "outer_critic": True, **args})
    )
    return str(path)


def test_bad_input_exits_2_with_one_line_before_compiling(tmp_path, monkeypatch, capsys):
    snake = fake_run(tmp_path / "snake")
    chain = fake_run(tmp_path / "chain", script="mg_chain.py")
    torn = fake_run(tmp_path / "torn")
    (tmp_path / "torn" / "checkpoint.msgpack").write_bytes(b"\x93\x01")  # not a checkpoint
    with_model = fake_run(tmp_path / "with_model")
    (tmp_path / "with_model" / "seed1").mkdir()
    (tmp_path / "with_model" / "seed1" / "model.msgpack").write_bytes(b"")
    out = str(tmp_path / "w.gif")
    cases = [
        ([], "error: give one or more Snake run directories"),
        ([snake, "--max-frames", "0"], "error: --max-frames must be in 1..1000, got 0"),
        ([snake, "--max-frames", "1001"], "error: --max-frames must be in 1..1000, got 1001"),
        ([snake, "--games", "0"], "error: --games must be >= 1, got 0"),
        ([snake, "--board-index", "-1"], "error: --board-index must be >= 0, got -1"),
        (
            [with_model, "--seed", "1", "--board-index", "510", "--games", "3"],
            "error: --board-index + --games must be <= 512 (the evaluation's boards), got 510 + 3",
        ),
        ([snake, "--fps", "0"], "error: --fps must be in 1..50, got 0"),
        ([snake, "--dpi", "1000"], "error: --dpi must be in 20..150, got 1000"),
        ([snake, "--eval-update", "-2"], "error: --eval-update must be >= 0 (or -1: the first run's update), got -2"),
        ([snake, snake, "--seed", "0", "1", "2"], "error: --seed takes one value for every run or one per run (2 runs)"),
        ([snake, "--out", str(tmp_path / "w.png")], "error: --out must end in .gif"),
        ([snake, "--out", str(tmp_path / "torn" / "args.json" / "w.gif")], "args.json is not a writable directory"),
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tmp_path)], "is not a run directory (no args.json)"),
        ([chain], "is a run of mg_chain.py, not a Snake run"),
        ([snake, "--seed", "2"], "error: --seed 2 is not a seed of"),
        ([snake], "has no seed0/model.msgpack (saved by --save-model) nor checkpoint.msgpack"),
        ([snake, "--params", "checkpoint"], "has no checkpoint.msgpack"),
        ([torn], "checkpoint.msgpack is truncated or corrupt"),
        ([with_model, "--seed", "1", "--params", "model"], "is not a model saved by --save-model"),
    ]
    compiled = []
    # Any lowering or compile, or a program loaded from the compilation cache (tests share one).
    listener = lambda event, duration, **kwargs: compiled.append(event) if "compil" in event else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for flags, message in cases:
            monkeypatch.setattr(sys, "argv", ["watch.py", *flags, *(["--out", out] if "--out" not in flags else [])])
            capsys.readouterr()
            with pytest.raises(SystemExit) as exit_info:
                watch.main()
            lines = capsys.readouterr().err.strip().splitlines()
            assert exit_info.value.code == 2 and len(lines) == 1, (flags, lines)
            assert lines[0].startswith("error: ") and message in lines[0], (flags, lines[0])
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert not compiled and not os.path.exists(out)
    monkeypatch.setattr(sys, "argv", ["watch.py", snake, "--max-frame", "3"])
    with pytest.raises(SystemExit) as exit_info:  # an unknown option: tyro's own message
        watch.main()
    assert exit_info.value.code == 2 and "--max-frame" in capsys.readouterr().err
