"""What the time channel buys on MinAtar (docs/minatar.md, "The cut"): how well a value head can learn
V^{π,γ} when the episode is cut at the time limit, with the fraction of the limit elapsed in the input
(as common_envs gives it) and without it (the channel zeroed), for the same policy and the same data.

A fixed policy plays whole episodes of `--env-id` (every env from its reset to its end or the cut, with
common_envs' auto-resetting environments), the Monte-Carlo return to the episode's end is computed at
every state with γ′ = 1 (the outer head's target) and with γ = 0.99 (an inner head's), and the scripts'
critic (mg_snake.Critic, its inner head) is fitted to it by regression on the first episodes; the
table gives the error on the held-out episodes, as RMSE and as the fraction of the variance explained.
The policy: `--up` (Freeway: up with probability 0.8, else no-op or down; it crosses again and again,
so the return left falls with the time left) or uniformly random.

    python experiments/minatar_cut.py --env-id Freeway-MinAtar --up
    python experiments/minatar_cut.py --env-id Breakout-MinAtar
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common_envs  # noqa: E402  (the scripts live at the repository's root)
import mg_snake  # noqa: E402


def play_episodes(env_id, num_envs, up, seed):
    """Observations and rewards of `num_envs` whole episodes (one per env; [T, B, ...], T the cut), and
    a mask of the steps that belong to each env's first episode."""
    _, env_params = common_envs.minatar_game(env_id)
    steps = env_params.max_steps_in_episode
    env = common_envs.make_env(env_id, num_envs)
    obs, state = env.reset(jax.random.PRNGKey(seed))

    def step(carry, key):
        obs, state, alive = carry
        action_key, env_key = jax.random.split(key)
        if up:  # Freeway's actions: 0 no-op, 1 up, 2 down
            action = jax.random.choice(action_key, 3, (num_envs,), p=jnp.array([0.1, 0.8, 0.1]))
        else:
            action = jax.random.randint(action_key, (num_envs,), 0, env.num_actions)
        next_obs, state, reward, done, _ = env.step(env_key, state, action)
        return (next_obs, state, alive & ~done), (obs, reward, alive)

    keys = jax.random.split(jax.random.PRNGKey(seed + 1), steps)
    _, (obs, rewards, alive) = jax.jit(lambda c: jax.lax.scan(step, c, keys))((obs, state, jnp.ones(num_envs, bool)))
    return obs, rewards * alive, alive


def returns_to_go(rewards, gamma):
    """Σ_k γ^k r_{t+k} to the episode's end, at every step (rewards are 0 after it)."""
    backward = lambda following, reward: (reward + gamma * following,) * 2
    return jax.lax.scan(backward, jnp.zeros_like(rewards[0]), rewards, reverse=True)[1]


def fit_and_score(obs, target, alive, train_envs, steps, seed):
    """Fits the critic's inner head to `target` on the first `train_envs` episodes; (RMSE, R²) on the rest."""
    critic = mg_snake.Critic()
    train = (obs[:, :train_envs][alive[:, :train_envs]], target[:, :train_envs][alive[:, :train_envs]])
    test = (obs[:, train_envs:][alive[:, train_envs:]], target[:, train_envs:][alive[:, train_envs:]])
    params = critic.init(jax.random.PRNGKey(seed), train[0][:1])
    optimizer = optax.adam(1e-3)
    scale = float(np.std(train[1])) + 1e-8  # regress the standardised return: one learning rate for every game

    @jax.jit
    def step(params, opt_state, key):
        index = jax.random.randint(key, (512,), 0, train[0].shape[0])
        loss = lambda p: jnp.mean((critic.apply(p, train[0][index])[0] - train[1][index] / scale) ** 2)
        updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state)
        return optax.apply_updates(params, updates), opt_state

    opt_state = optimizer.init(params)
    for key in jax.random.split(jax.random.PRNGKey(seed + 1), steps):
        params, opt_state = step(params, opt_state, key)
    predict = jax.jit(lambda o: critic.apply(params, o)[0] * scale)
    prediction = np.concatenate([predict(chunk) for chunk in np.array_split(test[0], 16)])
    error = prediction - np.asarray(test[1])
    return float(np.sqrt(np.mean(error**2))), float(1 - np.var(error) / np.var(test[1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", default="Freeway-MinAtar", choices=common_envs.MINATAR_ENV_IDS)
    parser.add_argument("--up", action="store_true", help="Freeway: up with probability 0.8 (default: uniform)")
    parser.add_argument("--episodes", type=int, default=48, help="episodes played; a quarter held out")
    parser.add_argument("--fit-steps", type=int, default=3000, help="Adam steps of the regression (batch 512)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    obs, rewards, alive = play_episodes(args.env_id, args.episodes, args.up, args.seed)
    lengths = np.asarray(alive.sum(axis=0))
    cut = np.mean(lengths == obs.shape[0])
    print(f"{args.env_id}: {args.episodes} episodes, length {lengths.mean():.0f} ± {lengths.std():.0f}, cut {cut:.0%};")
    print(
        f"return {float(rewards.sum(axis=0).mean()):.2f} ± {float(rewards.sum(axis=0).std()):.2f} "
        f"(policy: {'up' if args.up else 'uniform'})"
    )
    train_envs = args.episodes * 3 // 4
    print("| target | return to go, mean ± std | RMSE with time | without | R² with time | without |")
    print("|---|---|---|---|---|---|")
    for name, gamma in (("γ′ = 1", 1.0), ("γ = 0.99", 0.99)):
        target = returns_to_go(rewards, gamma)
        held_out = np.asarray(target[:, train_envs:])[np.asarray(alive[:, train_envs:])]
        with_time = fit_and_score(obs, target, alive, train_envs, args.fit_steps, args.seed)
        without = fit_and_score(obs.at[..., -1].set(0.0), target, alive, train_envs, args.fit_steps, args.seed)
        row = f"| {name} | {held_out.mean():.2f} ± {held_out.std():.2f} | {with_time[0]:.2f} | {without[0]:.2f} |"
        print(f"{row} {with_time[1]:.3f} | {without[1]:.3f} |")


if __name__ == "__main__":
    main()
