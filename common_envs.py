"""Environment facts shared by the four scripts: construction, auto-reset with episode
bookkeeping, the Discounting Chain's true value function, the evaluation of a Snake or MinAtar
policy, and Conv2x2, the convolution that reads their grids (written for speed on a CPU).

Every environment here is batched over `num_envs` and exposes the same two pure functions,
so the training scripts differ only in which one they build:

    obs, state = env.reset(key)
    next_obs, state, reward, done, info = env.step(key, state, action)

`done` marks the end of an episode (no bootstrapping past it); after it the environment has
already reset and `next_obs` is the first observation of the next episode. `info` carries
the return and length of the episodes that ended at this step (zero elsewhere).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

# gymnax and jumanji are imported where an environment is built, not here: each imports every
# environment it has (with seaborn, scipy and pandas behind gymnax), 1-2 s per process, and a
# script needs only one of them.


class EpisodeStats(NamedTuple):
    """Running return and length of the current episode of each env (inside lax.scan)."""

    episode_return: jax.Array
    episode_length: jax.Array


class EnvState(NamedTuple):
    env_state: Any
    stats: EpisodeStats


def record_episodes(stats: EpisodeStats, reward, done):
    """Adds this step to the running episodes; returns the new stats and the info of the
    episodes that ended here (their return and length, zero for envs still running)."""
    episode_return = stats.episode_return + reward
    episode_length = stats.episode_length + 1
    info = {
        "episode_return": jnp.where(done, episode_return, 0.0),
        "episode_length": jnp.where(done, episode_length, 0),
    }
    new_stats = EpisodeStats(
        episode_return=jnp.where(done, 0.0, episode_return),
        episode_length=jnp.where(done, 0, episode_length),
    )
    return new_stats, info


def strong_types(tree):
    """gymnax starts `time` as a Python int: weak-typed, it changes type after one step and
    makes every jitted chunk after the first recompile. Pin each leaf's dtype."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


def _empty_stats(num_envs):
    return EpisodeStats(jnp.zeros(num_envs), jnp.zeros(num_envs, jnp.int32))


class BatchedEnv(NamedTuple):
    reset: Any
    step: Any
    num_actions: int
    obs_shape: tuple


# ---------------------------------------------------------------------------------------
# Discounting Chain (bsuite, via gymnax): paper Section 5.1, Figure 2.
# The first action picks chain c; chain c pays CHAIN_REWARDS[c] once, after
# CHAIN_DELAYS[c] steps; every episode lasts exactly CHAIN_EPISODE_LENGTH steps.
# Observation: [c, t / 100], with c = -1 at the decision state s0 (t = 0).
# ---------------------------------------------------------------------------------------
CHAIN_ENV_ID = "DiscountingChain-bsuite"
CHAIN_NUM_ACTIONS = 5
CHAIN_DELAYS = (1, 3, 10, 30, 100)
CHAIN_EPISODE_LENGTH = 100
CHAIN_BEST_REWARD = 1.1
CHAIN_S0_OBS = (-1.0, 0.0)


def check_mapping_seed(mapping_seed: int):
    # For callers of this module (the scripts check their --mapping-seed first): gymnax neither
    # validates the mapping seed nor takes it modulo 5, and 7 would silently make every chain pay 1.0.
    if not 0 <= mapping_seed < CHAIN_NUM_ACTIONS:
        raise ValueError(f"mapping_seed must be in 0..{CHAIN_NUM_ACTIONS - 1}, got {mapping_seed}")


def chain_rewards(mapping_seed: int) -> jax.Array:
    """ρ: every chain pays 1.0, except chain `mapping_seed`, which pays 1.1."""
    check_mapping_seed(mapping_seed)
    return jnp.ones(CHAIN_NUM_ACTIONS).at[mapping_seed].set(CHAIN_BEST_REWARD)


def make_chain(mapping_seed: int, num_envs: int) -> BatchedEnv:
    """`num_envs` Discounting Chains, auto-resetting, with episode bookkeeping.

    The 100th step ends the episode. gymnax calls it a *truncation* (discount 1) and returns
    the next episode's s0; here it is terminal, because the time is part of the state and
    nothing follows it (V = 0 at t = 1.0). So `done` = terminated | truncated, and a learner
    must never bootstrap from the `next_obs` returned there.
    """
    import gymnax

    check_mapping_seed(mapping_seed)
    # Pass mapping_seed explicitly: gymnax's default (0) makes chain 0, the myopic choice,
    # also the best one, and the problem trivial.
    env, env_params = gymnax.make(CHAIN_ENV_ID, mapping_seed=mapping_seed)
    return _gymnax_batched(env, env_params, num_envs, lambda obs, time: obs, CHAIN_NUM_ACTIONS, (2,))


def _gymnax_batched(env, env_params, num_envs, observe, num_actions, obs_shape) -> BatchedEnv:
    """`num_envs` copies of a gymnax environment (which auto-resets), with episode bookkeeping;
    `done` = terminated | truncated, and the observation is observe(gymnax's, the state's time)."""

    def reset(key):
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), env_params)
        return observe(obs, env_state.time), EnvState(strong_types(env_state), _empty_stats(num_envs))

    def step(key, state, action):
        obs, env_state, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(key, num_envs), state.env_state, action, env_params
        )
        done = jnp.logical_or(terminated, truncated)
        stats, info = record_episodes(state.stats, reward, done)
        return observe(obs, env_state.time), EnvState(env_state, stats), reward, done, info

    return BatchedEnv(reset, step, num_actions, obs_shape)


def chain_true_value(obs, pi_s0, gamma, rewards):
    """V^{π,γ}(s) of the Discounting Chain for a batch of observations [..., 2].

    After the choice (t ≥ 1) the value does not depend on the policy:
        V(c, t) = ρ_c γ^(d_c − 1 − t) if t < d_c else 0.
    At s0 the reward of chain a arrives d_a steps later, i.e. discounted d_a − 1 times:
        V(s0) = Σ_a π(a | s0) ρ_a γ^(d_a − 1).
    (The 2022 reference used γ^(d_a) at s0, an off-by-one.)
    """
    delays = jnp.asarray(CHAIN_DELAYS, dtype=jnp.result_type(gamma, float))
    chain = obs[..., 0].astype(jnp.int32)
    t = jnp.round(obs[..., 1] * CHAIN_EPISODE_LENGTH)
    d = delays[jnp.maximum(chain, 0)]
    # The exponent is clipped at 0 where no reward is left, so γ^(negative) never appears.
    v_chain = jnp.where(t < d, rewards[jnp.maximum(chain, 0)] * gamma ** jnp.maximum(d - 1 - t, 0), 0.0)
    v_s0 = jnp.sum(pi_s0 * rewards * gamma ** (delays - 1))
    return jnp.where(chain < 0, v_s0, v_chain)


# ---------------------------------------------------------------------------------------
# Snake 6×6 (jumanji): paper Section 5.2, Figure 3.
# One fruit on the board at a time; eating it pays 1 and grows the snake. The episode ends
# when the snake leaves the board or bites itself, fills the board (return 35), or reaches
# the time limit. Observation: the `grid` feature maps (6, 6, 5): body, head, tail, fruit,
# and the body's order from head to tail.
# ---------------------------------------------------------------------------------------
SNAKE_ENV_ID = "Snake-6x6-v0"  # the paper's name for it
SNAKE_NUM_ROWS = SNAKE_NUM_COLS = 6
SNAKE_TIME_LIMIT = 500  # the paper's; jumanji's default is 4000
SNAKE_NUM_ACTIONS = 4  # up, right, down, left
SNAKE_OBS_SHAPE = (SNAKE_NUM_ROWS, SNAKE_NUM_COLS, 5)


class Conv2x2(nn.Module):
    """nn.Conv(features, (2, 2), strides=stride, padding="SAME", kernel_init=kernel_init), the same numbers
    (tests/test_snake.py) computed as one matmul over 2×2 patches: under the scripts' vmap over seeds,
    nn.Conv becomes a grouped convolution, slow on CPU; a batched matmul is not."""

    features: int
    stride: int  # 1 or 2
    kernel_init: Callable

    @nn.compact
    def __call__(self, x):  # [..., H, W, C]
        *batch, height, width, channels = x.shape
        kernel = self.param("kernel", self.kernel_init, (2, 2, channels, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.stride == 2:  # H, W even: SAME pads nothing and the patches do not overlap
            patches = x.reshape(*batch, height // 2, 2, width // 2, 2, channels).swapaxes(-4, -3)
        else:  # SAME with an even kernel pads one row at the bottom and one column on the right
            x = jnp.pad(x, [(0, 0)] * len(batch) + [(0, 1), (0, 1), (0, 0)])
            rows = [[x[..., i : i + height, j : j + width, :] for j in (0, 1)] for i in (0, 1)]
            patches = jnp.stack([jnp.stack(row, axis=-2) for row in rows], axis=-3)
        # patches: [..., H / stride, W / stride, 2, 2, C]
        return jnp.einsum("...hwijc,ijcf->...hwf", patches, kernel) + bias


def snake_game():
    """One Snake 6×6 game as jumanji defines it (no auto-reset): what evaluation plays."""
    import jumanji

    return jumanji.make("Snake-v1", num_rows=SNAKE_NUM_ROWS, num_cols=SNAKE_NUM_COLS, time_limit=SNAKE_TIME_LIMIT)


def make_snake(num_envs: int) -> BatchedEnv:
    """`num_envs` Snake 6×6 games, auto-resetting, with episode bookkeeping.

    Every episode end is terminal, the time limit included: jumanji ends it with discount 0
    (not a truncation), so `done` = timestep.last() and a learner never bootstraps past it.
    After it, `next_obs` is already the first observation of the next episode. No action
    masking (as in the paper): a move into a wall or the body ends the episode.
    """
    env = snake_game()

    def step_one(key, env_state, action):
        env_state, timestep = env.step(env_state, action)
        done = timestep.last()
        # Under vmap a branch on `done` computes both sides anyway: reset every env and keep the
        # reset where the episode ended (a select). The reset is cheap (a few small ops on 6×6).
        reset_state, reset_timestep = env.reset(key)
        env_state, obs = jax.tree.map(
            lambda reset_leaf, leaf: jnp.where(done, reset_leaf, leaf),
            (reset_state, reset_timestep.observation.grid),
            (env_state, timestep.observation.grid),
        )
        return obs, env_state, timestep.reward, done

    def reset(key):
        env_state, timestep = jax.vmap(env.reset)(jax.random.split(key, num_envs))
        return timestep.observation.grid, EnvState(strong_types(env_state), _empty_stats(num_envs))

    def step(key, state, action):
        obs, env_state, reward, done = jax.vmap(step_one)(jax.random.split(key, num_envs), state.env_state, action)
        stats, info = record_episodes(state.stats, reward, done)
        return obs, EnvState(env_state, stats), reward, done, info

    return BatchedEnv(reset, step, SNAKE_NUM_ACTIONS, SNAKE_OBS_SHAPE)


# The reference's evaluation of a Snake policy (its `evaluator.py`): fresh games played to their
# end (death, a full board or the time limit), once with sampled actions and once greedily, on the
# same boards. The keys depend on the update alone: every seed and variant plays the same boards.
SNAKE_EVAL_GAMES = 512  # the reference's total_num_eval
EVAL_SEED = 20220101  # evaluation keys: fold_in(PRNGKey(EVAL_SEED), updates done), for Snake and MinAtar
EVAL_METRICS = ("eval/episodic_return", "eval/episodic_return_greedy", "eval/episodic_length")


def snake_evaluator():
    """evaluate(policy_logits, updates_done): scores `policy_logits` (obs → logits) on
    SNAKE_EVAL_GAMES games, sampled and greedy, the boards those of evaluation `updates_done`.

    It plays a fixed number of steps (the time limit) with finished games masked: a loop that
    stopped when every game had ended would wait for every seed, a reduction across devices."""
    game, n = snake_game(), SNAKE_EVAL_GAMES
    return lambda policy_logits, updates_done: _evaluate(game, n, policy_logits, updates_done)


def snake_eval_boards(game, updates_done, num_games=SNAKE_EVAL_GAMES):
    """The evaluation's games after `updates_done` updates: (starting states, their observations, the
    action key). Game i starts from reset(split(reset_key, num_games)[i]); step t samples with
    fold_in(action_key, t)."""
    reset_key, action_key = jax.random.split(fold_eval_key(updates_done))
    boards, first = jax.vmap(game.reset)(jax.random.split(reset_key, num_games))
    return boards, first.observation.grid, action_key


def play_snake_games(game, policy_logits, boards, obs, choose_actions, record=None):
    """Plays the games from `boards` for SNAKE_TIME_LIMIT steps, finished games masked; the actions
    are choose_actions(policy_logits(obs), t). Returns each game's return and length, and what
    record(state, action, next_state, timestep, alive) gives at each step, stacked over steps."""

    def play(carry, t):
        state, obs, alive, episode_return, episode_length = carry
        action = choose_actions(policy_logits(obs), t)
        next_state, timestep = jax.vmap(game.step)(state, action)
        recorded = None if record is None else record(state, action, next_state, timestep, alive)
        episode_return += jnp.where(alive, timestep.reward, 0.0)
        episode_length += alive
        alive &= ~timestep.last()  # a finished game plays on unseen: its moves count for nothing
        return (next_state, timestep.observation.grid, alive, episode_return, episode_length), recorded

    n = obs.shape[0]
    start = (boards, obs, jnp.ones(n, bool), jnp.zeros(n), jnp.zeros(n, jnp.int32))
    (*_, episode_return, episode_length), records = jax.lax.scan(play, start, jnp.arange(SNAKE_TIME_LIMIT))
    return episode_return, episode_length, records


def _evaluate(game, n, policy_logits, updates_done):
    boards, obs, action_key = snake_eval_boards(game, updates_done, n)
    both = lambda x: jnp.concatenate([x, x])  # each board twice: sampled actions, then greedy ones

    def choose_actions(logits, t):
        sampled = jax.random.categorical(jax.random.fold_in(action_key, t), logits[:n])
        return jnp.concatenate([sampled, jnp.argmax(logits[n:], axis=-1)])

    episode_return, episode_length, _ = play_snake_games(
        game, policy_logits, jax.tree.map(both, boards), both(obs), choose_actions
    )
    return {
        "eval/episodic_return": jnp.mean(episode_return[:n]),
        "eval/episodic_return_greedy": jnp.mean(episode_return[n:]),
        "eval/episodic_length": jnp.mean(episode_length[:n].astype(jnp.float32)),
    }


def fold_eval_key(updates_done):
    """The key of evaluation `updates_done`: the same for every seed and variant."""
    return jax.random.fold_in(jax.random.PRNGKey(EVAL_SEED), updates_done)


def no_evaluation(policy_logits, updates_done):
    """The evaluation's metrics at an update that is not evaluated: nan (the log keeps the chunk's last evaluation)."""
    return {name: jnp.nan for name in EVAL_METRICS}


# ---------------------------------------------------------------------------------------
# MinAtar (gymnax): five Atari games on a 10×10 grid (Young & Tian, 2019), beyond the paper.
# The minimal action sets and no sticky actions (gymnax's; the MinAtar paper's protocol uses
# 0.1). Every episode is cut at gymnax's time limit (Freeway's at 2,500 steps, and only there:
# it never terminates); the observation gets one more channel, the fraction of that limit
# elapsed, so that the cut is terminal in a state that shows it. Without it, the return to the
# cut, and so V^{π,γ′=1}, is not a function of the observation (docs/minatar.md measures it).
# ---------------------------------------------------------------------------------------
MINATAR_ENV_IDS = ("Breakout-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar", "Seaquest-MinAtar")
ENV_IDS = (SNAKE_ENV_ID, *MINATAR_ENV_IDS)  # what mg_snake.py and bmg_snake.py take as --env-id
MINATAR_EVAL_GAMES = 64  # fresh games per evaluation (each played sampled and greedy, to the cut at most)


def minatar_game(env_id):
    """(gymnax environment, its parameters) of a MinAtar game, e.g. "Freeway-MinAtar"."""
    import gymnax

    if env_id not in MINATAR_ENV_IDS:
        raise ValueError(f"not a MinAtar game: {env_id} (one of {', '.join(MINATAR_ENV_IDS)})")
    return gymnax.make(env_id)


def observe_time(time_limit):
    """obs, time → obs with a last channel filled with time / time_limit (1.0 at the cut)."""

    def observe(obs, time):
        elapsed = jnp.asarray(time, obs.dtype) / time_limit
        plane = jnp.broadcast_to(elapsed[..., None, None, None], (*obs.shape[:-1], 1))
        return jnp.concatenate([obs, plane], axis=-1)

    return observe


def make_minatar(env_id: str, num_envs: int) -> BatchedEnv:
    """`num_envs` copies of a MinAtar game, auto-resetting, with episode bookkeeping; `done` is a
    game over or the cut (terminal in both: the time channel shows the cut coming)."""
    env, env_params = minatar_game(env_id)
    observe = observe_time(env_params.max_steps_in_episode)
    rows, cols, channels = env.observation_space(env_params).shape
    return _gymnax_batched(env, env_params, num_envs, observe, env.num_actions, (rows, cols, channels + 1))


def make_env(env_id: str, num_envs: int) -> BatchedEnv:
    """The environments of mg_snake.py and bmg_snake.py: Snake 6×6 or a MinAtar game."""
    return make_snake(num_envs) if env_id == SNAKE_ENV_ID else make_minatar(env_id, num_envs)


def minatar_evaluator(env_id, num_games=MINATAR_EVAL_GAMES):
    """evaluate(policy_logits, updates_done), as snake_evaluator's, on `num_games` fresh MinAtar games
    played to their end or the cut, sampled and greedy on the same games (the same environment keys)."""
    env, env_params = minatar_game(env_id)
    time_limit = env_params.max_steps_in_episode
    observe = observe_time(time_limit)
    both = lambda x: jnp.concatenate([x, x])

    def evaluate(policy_logits, updates_done):
        reset_key, action_key, env_key = jax.random.split(fold_eval_key(updates_done), 3)
        obs, states = jax.vmap(env.reset_env, in_axes=(0, None))(jax.random.split(reset_key, num_games), env_params)
        start = (jax.tree.map(both, states), observe(both(obs), 0), jnp.ones(2 * num_games, bool), jnp.zeros(2 * num_games))

        def play(carry, t):
            state, obs, alive, episode_return = carry
            logits = policy_logits(obs)
            sampled = jax.random.categorical(jax.random.fold_in(action_key, t), logits[:num_games])
            action = jnp.concatenate([sampled, jnp.argmax(logits[num_games:], axis=-1)])
            keys = both(jax.random.split(jax.random.fold_in(env_key, t), num_games))
            obs, state, reward, terminated, _ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
                keys, state, action, env_params
            )
            episode_return += jnp.where(alive, reward, 0.0)
            length = jnp.where(alive, t + 1, 0)
            alive &= ~terminated  # a finished game plays on unseen
            return (state, observe(obs, t + 1), alive, episode_return), length

        (*_, episode_return), lengths = jax.lax.scan(play, start, jnp.arange(time_limit))
        episode_length = jnp.max(lengths, axis=0).astype(jnp.float32)
        return {
            "eval/episodic_return": jnp.mean(episode_return[:num_games]),
            "eval/episodic_return_greedy": jnp.mean(episode_return[num_games:]),
            "eval/episodic_length": jnp.mean(episode_length[:num_games]),
        }

    return evaluate


def evaluator(env_id):
    """The evaluation of mg_snake.py and bmg_snake.py for --env-id (Snake's is the reference's)."""
    return snake_evaluator() if env_id == SNAKE_ENV_ID else minatar_evaluator(env_id)
