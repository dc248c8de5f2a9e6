"""BMG's matching loss on the outer batch (bmg_snake.py) or on a third batch sampled by the target (the reference's):
the meta-gradients the two give, paired on the same inner and outer batches, at chosen training states.

    python experiments/bmg_third_batch.py --at-updates 700 1400 --draws 24

The reference (snake/agent/meta_a2c.py, make_meta_loss → bootstrap_loss) takes KL(π_θ̃ ‖ π_θ′) over 5 × 512 more
steps that the target policy θ̃ samples from where the outer batch left the environments; bmg_snake.py takes it over
the outer batch's states. One seed is trained by bmg_snake.py's own update to each --at-updates U; then each of
--draws paired draws samples a fresh inner batch, takes the inner step θ → θ′(η) with its vjp, samples an outer batch
by θ′, takes the target θ̃ (one RMSProp step on the outer loss from θ′, as meta_loss_grad does), samples a third batch
by θ̃, and pulls the KL's gradient back to η from (a) the outer batch and (b) the third batch. Printed per U (markdown):
the mean ± standard error of the two meta-gradients ∂L/∂η (a scalar), the ratio of their spreads, their correlation
over the draws, and their paired difference in standard errors with the paired t-test's p (scipy.stats).
"""

import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bmg_snake  # noqa: E402  (the scripts live at the repository's root)
import common_envs  # noqa: E402
from plot import fail, markdown  # noqa: E402

CHUNK = 50  # updates per compiled training call


@dataclasses.dataclass
class Args:
    at_updates: tuple[int, ...] = (700, 1400)
    """the training states compared: updates done by bmg_snake.py's update (multiples of 50; 0 = the initial state)"""
    draws: int = 24
    """paired draws (inner, outer and third batches) at each state"""
    seed: int = 0
    """the training seed (bmg_snake.py's --seed); the draws use their own keys"""
    outer_critic: bool = False
    """BMG + outer critic instead of BMG"""


def kl_from_target(params, target, obs, actor):
    """KL(π_θ̃ ‖ π_θ) averaged over the states `obs`, with the target under stop_gradient (bmg_snake's matching loss)."""
    target_log_pi = jax.lax.stop_gradient(jax.nn.log_softmax(actor.apply(target["actor"], obs)))
    log_pi = jax.nn.log_softmax(actor.apply(params["actor"], obs))
    return jnp.mean(jnp.sum(jnp.exp(target_log_pi) * (target_log_pi - log_pi), axis=-1))


def make_draw(args, parts):
    actor = bmg_snake.Actor(common_envs.make_snake(args.num_envs).num_actions)
    optimizer = optax.rmsprop(args.learning_rate, decay=0.9)  # bmg_snake's (checked below against meta_loss_grad)
    kl_grad = jax.grad(kl_from_target)

    def draw(runner, key):
        """(∂L/∂η from meta_loss_grad, the same recomputed here, and with the KL on a third batch sampled by θ̃)."""
        key_inner, key_outer, key_third = jax.random.split(key, 3)
        env_state, obs, inner_batch = parts.rollout(runner.params, runner.env_state, runner.obs, key_inner)
        inner_values = parts.baseline_values(runner.params, inner_batch)
        new_params, _, _, meta_vjp = parts.inner_update_and_vjp(
            runner.meta_params, runner.params, runner.opt_state, inner_batch, inner_values
        )
        env_state, obs, outer_batch = parts.rollout(new_params, env_state, obs, key_outer)
        outer_values = parts.baseline_values(new_params, outer_batch)
        cotangent, _, _ = parts.meta_loss_grad(new_params, runner.target_opt_state, outer_batch, outer_values)
        outer_grads, _ = jax.grad(parts.outer_loss, has_aux=True)(new_params, outer_batch, outer_values)
        target_updates, _ = optimizer.update(outer_grads, runner.target_opt_state, new_params)
        target = optax.apply_updates(new_params, target_updates)
        _, _, third_batch = parts.rollout(target, env_state, obs, key_third)
        on_outer = meta_vjp(kl_grad(new_params, target, outer_batch.traj.obs, actor))
        on_third = meta_vjp(kl_grad(new_params, target, third_batch.traj.obs, actor))
        return meta_vjp(cotangent), on_outer, on_third

    return jax.jit(jax.vmap(draw, in_axes=(None, 0)))


def compare(outer, third):
    """One table row: the two meta-gradients over the draws, and how they differ."""
    se = lambda x: np.std(x, ddof=1) / np.sqrt(len(x))
    difference = outer - third
    return [
        f"{np.mean(outer):.3e} ± {se(outer):.1e}",
        f"{np.mean(third):.3e} ± {se(third):.1e}",
        f"{np.std(outer) / np.std(third):.3f}",
        f"{np.corrcoef(outer, third)[0, 1]:.4f}",
        f"{np.mean(difference) / se(difference):+.2f}",
        f"{stats.ttest_rel(outer, third).pvalue:.2g}",
    ]


def main():
    options = tyro.cli(Args)
    if not options.at_updates or any(u < 0 or u % CHUNK for u in options.at_updates):
        fail(f"--at-updates must be multiples of {CHUNK} (0 or more), got {list(options.at_updates)}")
    if options.draws < 3:
        fail(f"--draws must be >= 3, got {options.draws}")
    if options.seed < 0:
        fail(f"--seed must be >= 0, got {options.seed}")
    steps = max(max(options.at_updates), CHUNK) * 512 * 5
    args = bmg_snake.Args(seed=options.seed, outer_critic=options.outer_critic, eval_every=0, total_timesteps=steps)
    parts = bmg_snake.make_train(args)
    train = jax.jit(parts.train)
    draw = make_draw(args, parts)
    keys = jax.random.split(jax.random.PRNGKey(12345), options.draws)
    runner = parts.init(options.seed)
    done = 0
    rows = []
    for at in sorted(options.at_updates):
        while done < at:
            runner, _ = train(runner, jnp.arange(done, done + CHUNK))
            done += CHUNK
        from_script, outer, third = (np.asarray(g, dtype=np.float64) for g in draw(runner, keys))
        # The KL recomputed here on the outer batch is meta_loss_grad's: the same θ̃, the same loss.
        np.testing.assert_allclose(outer, from_script, rtol=1e-4, atol=1e-12)
        rows.append([f"{at:,}", f"{float(bmg_snake.gamma_fn(runner.meta_params)):.3f}", *compare(outer, third)])
        print(f"done: {at:,} updates", file=sys.stderr, flush=True)
    labels = ["updates", "γ", "∂L/∂η, KL on the outer batch", "on a third batch (θ̃ samples)", "spread ratio"]
    labels += ["correlation", "paired difference (s.e.)", "p, paired t"]
    variant = "BMG + outer critic" if options.outer_critic else "BMG"
    note = f"{variant}, seed {options.seed}, {options.draws} paired draws per state; mean ± standard error over the draws."
    print(markdown(labels, rows, note))


if __name__ == "__main__":
    main()
