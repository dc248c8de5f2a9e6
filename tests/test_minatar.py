"""MinAtar through the Snake scripts (--env-id): the games' facts, the cut and its time channel, the
auto-reset's bookkeeping, and the evaluation protocol."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, SUBPROCESS_ENV, metrics_rows, only_run

import common_envs

# id: (gymnax's channels, actions, the cut)
GAMES = {
    "Breakout-MinAtar": (4, 3, 1000),
    "Asterix-MinAtar": (4, 5, 1000),
    "Freeway-MinAtar": (7, 3, 2500),
    "SpaceInvaders-MinAtar": (6, 4, 1000),
    "Seaquest-MinAtar": (10, 6, 1000),
}


def play(env, policy, num_steps, seed=0):
    """Steps `env` with policy(key) -> actions; returns the first obs and the per-step
    (obs after the step, reward, done, info) stacked over time."""

    def step(carry, key):
        obs, state = carry
        action_key, env_key = jax.random.split(key)
        next_obs, state, reward, done, info = env.step(env_key, state, policy(action_key))
        return (next_obs, state), (next_obs, reward, done, info)

    @jax.jit  # the reset and the steps in one program
    def run():
        obs, state = env.reset(jax.random.PRNGKey(seed))
        keys = jax.random.split(jax.random.PRNGKey(seed + 1), num_steps)
        return obs, jax.lax.scan(step, (obs, state), keys)[1]

    obs, out = run()
    return obs, jax.device_get(out)


@pytest.mark.parametrize("env_id", list(GAMES))
def test_each_game_has_its_shape_actions_and_a_time_channel_at_zero(env_id):
    channels, actions, _ = GAMES[env_id]
    env = common_envs.make_env(env_id, 3)
    obs, state = env.reset(jax.random.PRNGKey(0))
    assert env.obs_shape == (10, 10, channels + 1) and env.num_actions == actions
    assert obs.shape == (3, *env.obs_shape) and obs.dtype == jnp.float32
    assert set(np.unique(obs[..., :-1])) <= {0.0, 1.0}  # the game's own channels: 0/1 grids
    np.testing.assert_array_equal(obs[..., -1], 0.0)  # no time has passed


def test_freeway_is_cut_at_2500_steps_the_time_channel_counting_up_to_it():
    num_envs = 4
    env = common_envs.make_env("Freeway-MinAtar", num_envs)
    up = lambda key: jnp.ones(num_envs, jnp.int32)  # gymnax's action 1: up
    _, (next_obs, reward, done, info) = play(env, up, 2501)
    # Freeway never ends by itself: the 2,500th step is the cut, for every env at once.
    assert not done[:2499].any() and done[2499].all() and not done[2500].any()
    np.testing.assert_array_equal(info["episode_length"][2499], 2500)
    np.testing.assert_array_equal(info["episode_return"][2499], reward[:2500].sum(axis=0))
    assert np.all(reward[:2500].sum(axis=0) >= 1)  # going up crosses the road, cars permitting
    # After step t the time channel reads t / 2500; after the cut the environment has reset: 0.
    time_channel = next_obs[..., -1]
    assert np.all(time_channel.min(axis=(2, 3)) == time_channel.max(axis=(2, 3)))  # one value a plane
    np.testing.assert_allclose(time_channel[:2499, :, 0, 0], np.arange(1, 2500)[:, None] / 2500 * np.ones(num_envs))
    np.testing.assert_array_equal(time_channel[2499], 0.0)
    np.testing.assert_allclose(time_channel[2500], 1 / 2500)


def test_breakout_game_over_ends_the_episode_and_resets_before_the_cut():
    num_envs = 8
    env = common_envs.make_env("Breakout-MinAtar", num_envs)
    random = lambda key: jax.random.randint(key, (num_envs,), 0, 3)
    _, (next_obs, reward, done, info) = play(env, random, 400)
    assert done.any(axis=0).all()  # a random paddle loses the ball within 400 steps
    for env_index in range(num_envs):
        first = int(np.argmax(done[:, env_index]))
        assert first + 1 < 1000  # a game over, not the cut
        assert info["episode_length"][first, env_index] == first + 1
        assert info["episode_return"][first, env_index] == reward[: first + 1, env_index].sum()
        assert np.all(next_obs[first, env_index, ..., -1] == 0.0)  # the next game starts at time 0
    # Where no episode ended, the bookkeeping reports nothing.
    assert np.all(info["episode_length"][~done] == 0) and np.all(info["episode_return"][~done] == 0)


def test_evaluation_plays_the_same_games_sampled_and_greedy_and_replays_independently():
    num_games = 8
    env, env_params = common_envs.minatar_game("Breakout-MinAtar")
    evaluate = common_envs.minatar_evaluator("Breakout-MinAtar", num_games)
    # A policy that always moves right (action 2 of gymnax's minimal set): sampled = greedy, so a
    # sampled and a greedy game on the same board and keys must score the same.
    right = lambda obs: jnp.where(jnp.arange(3) == 2, 50.0, -50.0) * jnp.ones((obs.shape[0], 1))
    metrics = jax.jit(evaluate, static_argnums=0)(right, 150)
    assert float(metrics["eval/episodic_return"]) == float(metrics["eval/episodic_return_greedy"])
    assert set(metrics) == set(common_envs.EVAL_METRICS)  # the metrics no_evaluation makes nan at the other updates
    # Replayed game by game with gymnax's own (auto-resetting) step, stopped at the first end.
    reset_key, _, env_key = jax.random.split(common_envs.fold_eval_key(150), 3)

    @jax.jit  # game `game`'s step t, with the t-th key of the evaluation's split, as one program
    def step(state, t, game):
        key = jax.random.split(jax.random.fold_in(env_key, t), num_games)[game]
        return env.step_env(key, state, 2, env_params)

    returns, lengths = [], []
    for game in range(num_games):
        obs, state = jax.jit(env.reset_env)(jax.random.split(reset_key, num_games)[game], env_params)
        total, t, done = 0.0, 0, False
        while not done:
            obs, state, reward, done, _ = step(state, t, game)
            total, t = total + float(reward), t + 1
            done = bool(done) or t == env_params.max_steps_in_episode
        returns.append(total)
        lengths.append(t)
    np.testing.assert_allclose(metrics["eval/episodic_return_greedy"], np.mean(returns), rtol=1e-6)
    np.testing.assert_allclose(metrics["eval/episodic_length"], np.mean(lengths), rtol=1e-6)
    # Every seed and variant plays the same games: the same update gives the same numbers, another does not.
    again = jax.jit(evaluate, static_argnums=0)(right, 150)
    assert jax.tree.map(float, again) == jax.tree.map(float, metrics)


# --------------------------------------------------------------------------------------------
# The scripts on a MinAtar game: they train, log, evaluate, stop and resume as on Snake.
# --------------------------------------------------------------------------------------------
def run_script(script, runs_dir, *flags):
    command = [sys.executable, os.path.join(ROOT, script), *flags, "--runs-dir", str(runs_dir)]
    return subprocess.run(command, capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("script, env_id", [("mg_snake.py", "Freeway-MinAtar"), ("bmg_snake.py", "Breakout-MinAtar")])
def test_a_script_on_minatar_logs_evaluates_and_resumes_bit_exactly(script, env_id, tmp_path):
    flags = ["--env-id", env_id, "--outer-critic", "--num-envs", "8", "--log-every", "2", "--eval-every", "2"]
    full = run_script(script, tmp_path / "full", *flags, "--total-timesteps", "160")  # 4 updates, 2 chunks
    assert full.returncode == 0, full.stderr
    half = run_script(script, tmp_path / "half", *flags, "--total-timesteps", "80")
    assert half.returncode == 0, half.stderr
    resumed = run_script(script, tmp_path, "--resume", str(only_run(tmp_path / "half")), "--total-timesteps", "160")
    assert resumed.returncode == 0, resumed.stderr
    rows = metrics_rows(only_run(tmp_path / "full"))
    assert metrics_rows(only_run(tmp_path / "half")) == rows
    assert only_run(tmp_path / "full").name.startswith(f"{env_id}__")
    assert [row["global_step"] for row in rows] == ["80", "160"]
    episodes = ("charts/episodic_return", "charts/episodic_length")  # of the training episodes that ended
    for row in rows:  # every metric of the variant is there and finite, the evaluation's included
        assert all(np.isfinite(float(value)) for name, value in row.items() if name not in episodes), row
        # Freeway's episodes all last 2,500 steps: none ends in these 20 (nan: no episode to report).
        assert all(np.isnan(float(row[name])) for name in episodes) == (env_id == "Freeway-MinAtar")
    batches = 2 if script == "mg_snake.py" else 3  # BMG's matching batch counts too
    assert rows[-1]["charts/env_steps_total"] == str(4 * 8 * 5 * batches)
