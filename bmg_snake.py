"""BMG on Snake 6×6 (jumanji): bootstrapped meta-gradient self-tuning of γ, with the outer critic of
Bonnet, Midgley & Laterre (2022), "Debiasing Meta-Gradient Reinforcement Learning by Learning the Outer
Value Function" (https://arxiv.org/abs/2211.10550, Section 5.2, Figure 3). MG: Xu, van Hasselt & Silver
(2018, https://arxiv.org/abs/1805.09801); BMG: Flennerhag et al. (2022, https://arxiv.org/abs/2109.04504).
"The reference" below is the paper's code, https://github.com/instadeepai/outer-value-function-meta-rl.

One meta-update (`update`, paper Figure 1): 1. an inner A2C step θ → θ′(η) on a batch sampled by θ, with
the discount γ = sigmoid(η); 2. an outer batch sampled by θ′; 3. the meta-loss at θ′ (`meta_loss_grad`):
MG's is the outer loss, an A2C loss with γ′ = 1; BMG's is KL(π_θ̃ ‖ π_θ′) to a target θ̃ one outer-loss
step ahead, on a third batch that θ̃ samples; 4. the meta-gradient ∂L_meta(θ′(η))/∂η, through the inner
step; 5. an Adam step on η. The outer loss's advantage needs V^{π,γ′}: without --outer-critic it uses the
critic trained with γ (V^{π,γ}, biased: γ stays low); with it a second head trained with γ′ (the fix, one
line in `outer_loss`). --env-id runs the same on a MinAtar game instead (beyond the paper: docs/minatar.md).

    python bmg_snake.py [--outer-critic] [--meta-lr 0 (A2C)] [--resume RUN_DIR]
"""

import dataclasses
import math
import os
from collections.abc import Sequence
from types import SimpleNamespace
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import common_envs
import common_run

jax.config.update("jax_default_matmul_precision", "highest")  # GPUs would use TF32 (10-bit mantissa)


@dataclasses.dataclass
class Args:
    # the run
    env_id: str = common_envs.SNAKE_ENV_ID  # Snake-6x6-v0 (the paper's) or a MinAtar game of gymnax, e.g. Freeway-MinAtar
    exp_name: str = ""  # the run folder's middle name (default: the script and variant, e.g. mg_snake_oc)
    seed: int = 0  # first seed; seeds seed .. seed + num_seeds - 1 train together
    num_seeds: int = 1  # number of seeds, vmapped in one jit (the paper uses 10)
    runs_dir: str = "runs"  # where the run folder <env>__<exp_name>__<seed>__<time> is made
    total_timesteps: int = 75_000_000  # inner-batch env steps (the paper: 75M, ~29,300 updates)
    log_every: int = 20  # updates per jitted chunk; one log point per chunk
    checkpoint_every_s: float = 300.0  # seconds between checkpoints; 0 = only at the end or on a stop
    time_limit_s: float = 0.0  # stop after this many seconds of training, with a checkpoint, exit code 3
    resume: str = ""  # continue the run in this run folder; options not given are the checkpoint's
    save_model: bool = False  # write each seed's final θ and η to <run folder>/seed<N>/model.msgpack
    track: bool = False  # also log to Weights & Biases, one W&B run per seed (requirements-wandb.txt)
    wandb_project_name: str = "meta-gradient-outer-critic"  # the W&B project
    wandb_entity: str = ""  # the W&B entity (team); empty: your default
    # the inner A2C update
    num_envs: int = 512  # parallel environments; their episodes continue from batch to batch
    num_steps: int = 5  # rollout length of each batch (inner and outer)
    learning_rate: float = 5e-4  # inner RMSProp learning rate α
    gae_lambda: float = 0.95  # inner λ
    ent_coef: float = 0.01  # inner entropy coefficient c_EN
    vf_coef: float = 0.5  # value-loss coefficient c_TD of both critic heads
    normalize_advantage: bool = False  # normalise the inner and outer advantages per batch (paper Figure 6)
    # the meta-update
    outer_critic: bool = False  # the outer loss uses V^{π,γ′} (the outer critic), not V^{π,γ} (biased)
    gamma_init: float = 0.8  # initial discount γ(η0), in (0, 1)
    meta_lr: float = 6e-3  # Adam learning rate of η; 0 = A2C (no outer batch, no meta-gradient)
    max_meta_grad_norm: float = 0.1  # global-norm clip of the meta-gradient (the inner step is not clipped)
    outer_gamma: float = 1.0  # outer discount γ′
    outer_gae_lambda: float = 1.0  # outer λ′
    outer_ent_coef: float = 0.0  # outer entropy coefficient c′_EN
    # evaluation
    eval_every: int = 150  # every K updates, play fresh games (Snake 512, MinAtar 64), sampled and greedy; 0 = off

    @property
    def num_updates(self) -> int:
        """number of meta-updates: the inner batches that fit in --total-timesteps"""
        return self.total_timesteps // (self.num_envs * self.num_steps)


# =====================================================================================================
# ALGO LOGIC: the networks, the inner and outer losses, the meta-gradient (paper Section 3, Figure 1)
# =====================================================================================================
def gamma_fn(meta_params):
    """γ(η) = sigmoid(η): Snake's γ lives in (0, 1)."""
    return jax.nn.sigmoid(meta_params)


def gamma_inverse(gamma):
    return math.log(gamma / (1.0 - gamma))


# The reference's Haiku init (weights truncated_normal(−2, 2) / sqrt(fan_in), biases 0): without flax's
# truncation correction, each layer is 1.137× smaller than flax's lecun_normal, as in the reference.
HAIKU_INIT = nn.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal")


class Torso(nn.Module):
    """Conv(32, 2×2, stride 2) → ReLU → Conv(32, 2×2, stride 1) → ReLU → flatten: 6×6×5 → 288 features (MinAtar 10×10 → 800).
    common_envs.Conv2x2 is nn.Conv(padding="SAME"), written as a matmul that stays fast on CPU under the vmap over seeds."""

    @nn.compact
    def __call__(self, obs):
        x = nn.relu(common_envs.Conv2x2(32, stride=2, kernel_init=HAIKU_INIT)(obs))
        x = nn.relu(common_envs.Conv2x2(32, stride=1, kernel_init=HAIKU_INIT)(x))
        return x.reshape(*x.shape[:-3], -1)


class MLP(nn.Module):
    """Dense layers with a ReLU between each two (none after the last)."""

    features: Sequence[int]

    @nn.compact
    def __call__(self, x):
        for i, features in enumerate(self.features):
            x = nn.relu(x) if i > 0 else x
            x = nn.Dense(features, kernel_init=HAIKU_INIT)(x)
        return x


class Actor(nn.Module):
    """Softmax policy: its own conv torso → MLP(64, 64) → one logit per move."""

    num_actions: int

    @nn.compact
    def __call__(self, obs):
        return MLP((64, 64, self.num_actions))(Torso()(obs))


class Critic(nn.Module):
    """Dual-head critic (paper Figure 4): the inner head V^γ and the outer head V^γ′, each MLP(128, 128) → 1
    on one conv torso; the outer head reads stop_gradient(torso), so it changes nothing the inner head learns."""

    @nn.compact
    def __call__(self, obs):
        torso = Torso(name="torso")(obs)
        inner_value = MLP((128, 128, 1), name="inner_head")(torso)[..., 0]
        outer_value = MLP((128, 128, 1), name="outer_head")(jax.lax.stop_gradient(torso))[..., 0]
        return inner_value, outer_value


class Transition(NamedTuple):
    obs: jax.Array  # [T, B, ...]
    action: jax.Array
    reward: jax.Array
    done: jax.Array
    episode_return: jax.Array  # return of the episodes that ended at this step, else 0
    episode_length: jax.Array


class Batch(NamedTuple):
    traj: Transition
    last_obs: jax.Array  # s_T, to bootstrap the last step (masked where done)


class RunnerState(NamedTuple):
    params: dict  # θ = {"actor", "critic"}
    opt_state: optax.OptState
    meta_params: jax.Array  # η
    meta_opt_state: optax.OptState
    target_opt_state: optax.OptState  # BMG's target optimiser; MG has none: ()
    env_state: common_envs.EnvState
    obs: jax.Array
    key: jax.Array  # per-seed key; update i uses fold_in(key, i)


def gae(rewards, dones, values, gamma, lam):
    """GAE/TD(λ) advantages over a [T, B] rollout; values has T + 1 rows (the last one bootstraps s_T).
    γ stays live: it is the meta-gradient's only path to η."""

    def backward(next_advantage, step):
        reward, done, value, next_value = step
        delta = reward + gamma * (1.0 - done) * next_value - value
        advantage = delta + gamma * lam * (1.0 - done) * next_advantage
        return advantage, advantage

    steps = (rewards, dones.astype(values.dtype), values[:-1], values[1:])
    _, advantages = jax.lax.scan(backward, jnp.zeros_like(values[-1]), steps, reverse=True)
    return advantages, advantages + values[:-1]


def normalize(x):
    """(x − mean) / std over the batch, the statistics under stop_gradient (as the reference): the
    inner advantage stays live in γ(η), scaled by 1 / std."""
    mean, var = jax.lax.stop_gradient((jnp.mean(x), jnp.var(x)))
    return (x - mean) * jax.lax.rsqrt(var + 1e-5)


def make_train(args: Args, all_parts=False):
    """init(seed) → runner and train(runner, update_indices) → (runner, stacked metrics), one seed each (main vmaps them)."""
    env = common_envs.make_env(args.env_id, args.num_envs)
    actor = Actor(env.num_actions)
    critic = Critic()
    optimizer = optax.rmsprop(args.learning_rate, decay=0.9)  # optax puts eps inside the sqrt
    # eps_root inside Adam's square root (the reference's snake/training/setup_run.py) keeps the first
    # meta-steps small while meta-gradients are ~1e-6; without it γ rises far faster than the paper's.
    adam = optax.adam(args.meta_lr, eps_root=1e-8)
    meta_optimizer = optax.chain(optax.clip_by_global_norm(args.max_meta_grad_norm), adam)
    env_evaluate = common_envs.evaluator(args.env_id)  # the games are built here, outside any trace

    def init(seed):
        init_key, key = jax.random.split(jax.random.PRNGKey(seed))
        actor_key, critic_key, env_key = jax.random.split(init_key, 3)
        dummy_obs = jnp.zeros(env.obs_shape)
        params = {"actor": actor.init(actor_key, dummy_obs), "critic": critic.init(critic_key, dummy_obs)}
        # An explicit dtype: a weak-typed η would change type after one update and recompile.
        meta_params = jnp.asarray(gamma_inverse(args.gamma_init), dtype=jnp.float32)
        obs, env_state = env.reset(env_key)
        return RunnerState(
            params=params,
            opt_state=optimizer.init(params),
            meta_params=meta_params,
            meta_opt_state=meta_optimizer.init(meta_params),
            target_opt_state=optimizer.init(params),  # the target's own RMSProp
            env_state=env_state,
            obs=obs,
            key=key,
        )

    def rollout(params, env_state, obs, key):
        def env_step(carry, step_key):
            env_state, obs = carry
            action_key, env_key = jax.random.split(step_key)
            action = jax.random.categorical(action_key, actor.apply(params["actor"], obs))
            next_obs, env_state, reward, done, info = env.step(env_key, env_state, action)
            return (env_state, next_obs), Transition(obs=obs, action=action, reward=reward, done=done, **info)

        keys = jax.random.split(key, args.num_steps)
        (env_state, last_obs), traj = jax.lax.scan(env_step, (env_state, obs), keys)
        return env_state, last_obs, Batch(traj=traj, last_obs=last_obs)

    def baseline_values(params, batch):
        """(V_inner, V_outer) on s_0..s_T from the critic's two heads, under stop_gradient: the values the advantages
        and bootstrap targets use. s_T apart: on s_0..s_T−1 it is the inner loss's forward pass, which XLA does once."""
        inner_values, outer_values = critic.apply(params["critic"], batch.traj.obs)
        last_inner_value, last_outer_value = critic.apply(params["critic"], batch.last_obs[None])
        values = jnp.concatenate([inner_values, last_inner_value]), jnp.concatenate([outer_values, last_outer_value])
        return jax.lax.stop_gradient(values)

    def policy_terms(params, obs, action):
        logits = actor.apply(params["actor"], obs)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[..., None], axis=-1)[..., 0]
        entropy = -jnp.sum(jax.nn.softmax(logits) * jax.nn.log_softmax(logits), axis=-1)
        return log_prob, jnp.mean(entropy)

    def inner_loss(params, batch, values, gamma):
        """A2C loss with the meta-parameter γ(η) (paper eq. 1); both critic heads learn here."""
        traj = batch.traj
        inner_values, outer_values = values
        advantages, targets = gae(traj.reward, traj.done, inner_values, gamma, args.gae_lambda)
        _, outer_targets = gae(traj.reward, traj.done, outer_values, args.outer_gamma, args.outer_gae_lambda)
        log_prob, entropy = policy_terms(params, traj.obs, traj.action)
        if args.normalize_advantage:  # the reference's flag normalises the inner advantage too
            advantages = normalize(advantages)
        policy_loss = -jnp.mean(advantages * log_prob)
        inner_pred, outer_pred = critic.apply(params["critic"], traj.obs)
        value_loss = jnp.mean((targets - inner_pred) ** 2)
        outer_value_loss = jnp.mean((outer_targets - outer_pred) ** 2)
        loss = policy_loss - args.ent_coef * entropy + args.vf_coef * (value_loss + outer_value_loss)
        return loss, {
            "losses/policy_loss": policy_loss,
            "losses/value_loss": value_loss,
            "losses/outer_value_loss": outer_value_loss,
            "losses/entropy": entropy,
        }

    def inner_update(meta_params, params, opt_state, batch, values):
        """θ′(η): one RMSProp step on L_inner(θ, η), differentiable in η (the meta-gradient goes through
        the whole update, the second-moment estimate included)."""
        grads, metrics = jax.grad(inner_loss, has_aux=True)(params, batch, values, gamma_fn(meta_params))
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), (new_opt_state, metrics)

    def inner_update_and_vjp(meta_params, params, opt_state, batch, values):
        """θ′(η), and meta_vjp, which pulls ∇θ′ L_meta back to η through the inner step: meta_vjp(∇θ′ L_meta)
        equals jax.grad(lambda η: L_meta(θ′(η)))(η) (the tests check it), with the inner gradient computed once.
        Only θ′_actor is differentiated: the meta-loss sees the critic under stop_gradient."""

        def actor_step(meta_params):  # differentiated output: θ′_actor; auxiliary: all of θ′, untouched
            new_params, (new_opt_state, metrics) = inner_update(meta_params, params, opt_state, batch, values)
            return new_params["actor"], (new_params, new_opt_state, metrics)

        _, actor_vjp, (new_params, new_opt_state, metrics) = jax.vjp(actor_step, meta_params, has_aux=True)
        meta_vjp = lambda cotangent: actor_vjp(cotangent["actor"])[0]
        return new_params, new_opt_state, metrics, meta_vjp

    def outer_loss(params, batch, values):
        """A2C policy-gradient loss with fixed γ′, λ′ at θ′ (paper eq. 2). Its advantage needs V^{π,γ′}."""
        traj = batch.traj
        inner_values, outer_values = values
        inner_critic_advantage = gae(traj.reward, traj.done, inner_values, args.outer_gamma, args.outer_gae_lambda)[0]
        outer_critic_advantage = gae(traj.reward, traj.done, outer_values, args.outer_gamma, args.outer_gae_lambda)[0]
        # THE PAPER'S FIX: V^{π,γ′} from the outer head, instead of the inner head's V^{π,γ} (eq. 3's bias).
        advantage = outer_critic_advantage if args.outer_critic else inner_critic_advantage
        if args.normalize_advantage:
            advantage = normalize(advantage)
        log_prob, entropy = policy_terms(params, traj.obs, traj.action)
        loss = -jnp.mean(advantage * log_prob) - args.outer_ent_coef * entropy
        return loss, {
            "meta/outer_advantage": jnp.mean(advantage),
            "meta/outer_advantage_inner_critic": jnp.mean(inner_critic_advantage),
            "meta/outer_advantage_outer_critic": jnp.mean(outer_critic_advantage),
        }

    def meta_loss_grad(new_params, target_opt_state, outer_batch, outer_values, envs, key):
        """BMG (paper eq. 5): target θ̃ = one RMSProp step on the outer loss from θ′ (stop_gradient; its own
        optimiser state, the reference's bootstrap_l_optimizer); meta-loss = KL(π_θ̃ ‖ π_θ′) over a matching batch
        that θ̃ samples from where the outer batch left the environments (envs: their state and obs), as the
        reference's bootstrap_loss does; the next inner batch continues from there."""
        outer_grads, metrics = jax.grad(outer_loss, has_aux=True)(new_params, outer_batch, outer_values)
        target_updates, target_opt_state = optimizer.update(outer_grads, target_opt_state, new_params)
        target = jax.lax.stop_gradient(optax.apply_updates(new_params, target_updates))
        env_state, obs, matching_batch = rollout(target, *envs, key)
        target_log_pi = jax.nn.log_softmax(actor.apply(target["actor"], matching_batch.traj.obs))

        def matching_loss(params):
            log_pi = jax.nn.log_softmax(actor.apply(params["actor"], matching_batch.traj.obs))
            return jnp.mean(jnp.sum(jnp.exp(target_log_pi) * (target_log_pi - log_pi), axis=-1))

        loss, grads = jax.value_and_grad(matching_loss)(new_params)
        return grads, target_opt_state, (env_state, obs), [matching_batch], metrics | {"losses/meta_loss": loss}

    def evaluate(actor_params, updates_done):
        """The policy θ_actor's evaluation (common_envs.evaluator; Snake's is the reference's)."""
        return env_evaluate(lambda obs: actor.apply(actor_params, obs), updates_done)

    def diagnostics(runner, meta_grad, batches, update_index):
        """What an update logs besides its losses: γ, the meta-gradient, the training episodes that ended
        (in every batch), whether all is finite, and every --eval-every updates the evaluation."""
        leaves = jax.tree.leaves((runner.params, runner.meta_params, meta_grad))
        metrics = {
            "meta/gamma": gamma_fn(runner.meta_params),
            "meta/meta_grad": meta_grad,
            "episodes/return_sum": sum(jnp.sum(b.traj.episode_return) for b in batches),
            "episodes/length_sum": sum(jnp.sum(b.traj.episode_length) for b in batches).astype(jnp.float32),
            "episodes/count": sum(jnp.sum(b.traj.done) for b in batches).astype(jnp.float32),
            "finite": jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in leaves])),
        }
        if args.eval_every:  # nan at the updates not evaluated
            evaluated = (update_index + 1) % args.eval_every == 0
            metrics |= jax.lax.cond(evaluated, evaluate, common_envs.no_evaluation, runner.params["actor"], update_index + 1)
        return metrics

    def update(runner: RunnerState, update_index):
        """One meta-update, in the paper's five phases (module docstring)."""
        key_inner, key_outer, key_matching = jax.random.split(jax.random.fold_in(runner.key, update_index), 3)
        # 1. INNER STEP θ → θ′(η), on a batch sampled by θ
        env_state, obs, inner_batch = rollout(runner.params, runner.env_state, runner.obs, key_inner)
        inner_values = baseline_values(runner.params, inner_batch)
        new_params, new_opt_state, metrics, meta_vjp = inner_update_and_vjp(
            runner.meta_params, runner.params, runner.opt_state, inner_batch, inner_values
        )
        # 2. OUTER BATCH, sampled by θ′
        env_state, obs, outer_batch = rollout(new_params, env_state, obs, key_outer)
        outer_values = baseline_values(new_params, outer_batch)
        # 3. META-LOSS at θ′ and its gradient in θ′ (BMG's on a batch of its own: the environments go on there)
        cotangent, target_opt_state, (env_state, obs), meta_batches, meta_metrics = meta_loss_grad(
            new_params, runner.target_opt_state, outer_batch, outer_values, (env_state, obs), key_matching
        )
        # 4. META-GRADIENT ∂L_meta/∂η, through θ′(η)
        meta_grad = meta_vjp(cotangent)
        # 5. META-STEP on η
        meta_updates, meta_opt_state = meta_optimizer.update(meta_grad, runner.meta_opt_state)
        meta_params = optax.apply_updates(runner.meta_params, meta_updates)
        runner = RunnerState(
            params=new_params,
            opt_state=new_opt_state,
            meta_params=meta_params,
            meta_opt_state=meta_opt_state,
            target_opt_state=target_opt_state,
            env_state=env_state,
            obs=obs,
            key=runner.key,
        )
        batches = [inner_batch, outer_batch, *meta_batches]
        return runner, metrics | meta_metrics | diagnostics(runner, meta_grad, batches, update_index)

    def a2c_update(runner: RunnerState, update_index):
        """--meta-lr 0: the inner step alone (γ fixed, no outer batch, no meta-gradient), the baseline."""
        key_inner, _ = jax.random.split(jax.random.fold_in(runner.key, update_index))
        env_state, obs, inner_batch = rollout(runner.params, runner.env_state, runner.obs, key_inner)
        inner_values = baseline_values(runner.params, inner_batch)
        new_params, (new_opt_state, metrics) = inner_update(
            runner.meta_params, runner.params, runner.opt_state, inner_batch, inner_values
        )
        runner = runner._replace(params=new_params, opt_state=new_opt_state, env_state=env_state, obs=obs)
        # The meta-update's metrics that A2C lacks (its outer loss, meta-loss, ...) are nan: the log has the same columns.
        no_meta_update = {name: jnp.nan for name in jax.eval_shape(update, runner, update_index)[1]}
        return runner, no_meta_update | metrics | diagnostics(runner, jnp.zeros(()), [inner_batch], update_index)

    def train(runner: RunnerState, update_indices):
        """Runs the updates `update_indices` (a chunk) for one seed; returns stacked metrics."""
        return jax.lax.scan(a2c_update if args.meta_lr == 0 else update, runner, update_indices)

    steps_per_batch = args.num_steps * args.num_envs  # env steps of one seed's batch (global_step counts the inner ones)
    batches_per_update = 1 if args.meta_lr == 0 else 3  # A2C: the inner batch; BMG: inner, outer, matching
    if all_parts:  # for the tests and tools, which check and time the parts one by one: every name above
        return SimpleNamespace(**locals())
    return init, train, steps_per_batch, batches_per_update


# =====================================================================================================
# TRY NOT TO MODIFY: the options' rules, one log point, and the training loop (common_run holds the rest)
# =====================================================================================================
SCRIPT = os.path.basename(__file__)
LAST_VALUE_METRICS = ("meta/gamma",)  # the state after a chunk (its last value); the other metrics are chunk means


def arg_rules(args: Args):
    """(option, holds, what it must be) for this script's options; common_run checks the run's own."""
    batch = args.num_envs * args.num_steps
    return [
        ("num_envs", args.num_envs >= 1, "must be >= 1"),
        ("num_steps", args.num_steps >= 1, "must be >= 1"),
        ("ent_coef", args.ent_coef >= 0, "must be >= 0"),
        ("vf_coef", args.vf_coef >= 0, "must be >= 0"),
        ("meta_lr", args.meta_lr >= 0, "must be >= 0"),
        ("outer_ent_coef", args.outer_ent_coef >= 0, "must be >= 0"),
        ("eval_every", args.eval_every >= 0, "must be >= 0"),
        ("learning_rate", args.learning_rate > 0, "must be > 0"),
        ("max_meta_grad_norm", args.max_meta_grad_norm > 0, "must be > 0"),
        ("gae_lambda", 0 <= args.gae_lambda <= 1, "must be in [0, 1]"),
        ("outer_gae_lambda", 0 <= args.outer_gae_lambda <= 1, "must be in [0, 1]"),
        ("total_timesteps", args.total_timesteps >= batch, f"must be >= one batch (--num-envs × --num-steps = {batch})"),
        ("env_id", args.env_id in common_envs.ENV_IDS, f"must be one of {', '.join(common_envs.ENV_IDS)}"),
        ("gamma_init", 0.0 < args.gamma_init < 1.0, "must be in (0, 1)"),
        ("outer_gamma", 0 < args.outer_gamma <= 1, "must be in (0, 1]"),
    ]


def main():
    args, checkpoint = common_run.parse_args(Args, SCRIPT, arg_rules)
    init, train, steps_per_batch, batches_per_update = make_train(args)
    with common_run.Run(args, SCRIPT, args.env_id, checkpoint, steps_per_batch, batches_per_update) as run:
        runner = jax.jit(jax.vmap(init))(jnp.asarray(run.seeds))
        runner, updates_done = common_run.restore(checkpoint, runner)
        runner = common_run.split_seeds(runner)
        # The runner is donated: each chunk updates it in place (the old one is never read again).
        train_chunk = jax.jit(jax.vmap(train, in_axes=(0, None)), donate_argnums=0)
        chunk_size = min(args.log_every, args.num_updates)
        compiled = run.compile(train_chunk, runner, chunk_size)
        run.start(updates_done)
        while run.keep_going(updates_done):
            chunk = jnp.arange(updates_done, min(updates_done + chunk_size, args.num_updates))
            train_this_chunk = compiled if len(chunk) == chunk_size else train_chunk  # a shorter last chunk compiles anew
            runner, metrics = train_this_chunk(runner, chunk)
            metrics = jax.device_get(metrics)
            run.check_finite(metrics["finite"], chunk)
            updates_done += len(chunk)
            run.log(updates_done, metrics, LAST_VALUE_METRICS, common_envs.EVAL_METRICS)
            if run.checkpoint_due():
                run.write_checkpoint(updates_done, runner)
        run.finish(updates_done, runner, {"params": runner.params, "meta_params": runner.meta_params})


if __name__ == "__main__":
    common_run.run_main(main)
