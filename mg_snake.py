"""MG: meta-gradient self-tuning of the discount γ on Snake 6×6 (jumanji), with the outer critic of
Bonnet, Midgley & Laterre (2022), "Debiasing Meta-Gradient Reinforcement Learning by Learning the Outer
Value Function" (Section 5.2, Figure 3).

    python mg_snake.py [--outer-critic] [--meta-lr 0] [--resume RUN_DIR]

Without --outer-critic the outer loss uses V^{π,γ} (biased: γ stays lower); with it V^{π,γ′} (γ rises
higher, and the return with it). --meta-lr 0 is A2C with γ fixed; --resume continues a stopped run.
What a run here measured is in the README (Snake section); the paper's budget is the default.
"""

import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import NamedTuple

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

import common_envs

jax.config.update("jax_default_matmul_precision", "highest")  # GPUs would use TF32 (10-bit mantissa)


@dataclasses.dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 0
    """first seed; seeds seed .. seed + num_seeds - 1 train together"""
    num_seeds: int = 1
    """number of seeds, vmapped in one jit (the paper uses 10)"""
    runs_dir: str = "runs"
    """where runs/<run_name>/ is written"""
    total_timesteps: int = 75_000_000
    """inner-batch environment steps (the paper: 75M, ~29,300 updates); outer batches come on top"""
    log_every: int = 20
    """updates per jitted chunk; one log point per chunk"""
    num_envs: int = 512
    """parallel environments; their episodes continue from batch to batch"""
    num_steps: int = 5
    """rollout length of each batch (inner and outer)"""
    outer_critic: bool = False
    """the outer loss uses V^{π,γ′} (the outer critic) instead of V^{π,γ} (the biased estimate)"""
    normalize_advantage: bool = False
    """normalise the inner- and the outer-loss advantage per batch (paper Appendix D.2, Figure 6; as the reference)"""
    learning_rate: float = 5e-4
    """inner RMSProp learning rate α"""
    gae_lambda: float = 0.95
    """inner λ"""
    ent_coef: float = 0.01
    """inner entropy coefficient c_EN"""
    vf_coef: float = 0.5
    """value-loss coefficient c_TD of both critic heads"""
    gamma_init: float = 0.8
    """initial discount γ(η0), in (0, 1)"""
    meta_lr: float = 3e-3
    """Adam learning rate of η; 0 = A2C (no outer batch, no meta-gradient)"""
    max_grad_norm: float = 0.1
    """global-norm clip of the meta-gradient"""
    outer_gamma: float = 1.0
    """outer discount γ′"""
    outer_gae_lambda: float = 1.0
    """outer λ′"""
    outer_ent_coef: float = 0.0
    """outer entropy coefficient c′_EN"""
    eval_every: int = 150
    """every K updates, score the policy on 512 fresh games, sampled and greedy (the reference's evaluation); 0 = off"""
    save_model: bool = False
    """write each seed's final θ and η to runs/<run_name>/seed<N>/model.msgpack (flax serialisation)"""
    checkpoint_every_s: float = 300.0
    """seconds of training between checkpoints (runs/<run_name>/checkpoint.msgpack); 0 = only at the end or on a stop"""
    time_limit_s: float = 0.0
    """end the run cleanly after this many seconds of training, with a checkpoint (0 = no limit)"""
    resume: str = ""
    """continue the run in this run directory from its checkpoint; options not given are the checkpoint's"""

    @property
    def num_updates(self) -> int:
        """number of meta-updates: the inner batches that fit in --total-timesteps"""
        return self.total_timesteps // (self.num_envs * self.num_steps)


# =====================================================================================================
# ALGO LOGIC: the networks, the inner and outer losses, the meta-gradient (paper Section 3, Figure 1)
# =====================================================================================================
# γ(η) = sigmoid(η): Snake's γ lives in (0, 1).
def gamma_fn(meta_params):
    return jax.nn.sigmoid(meta_params)


def gamma_inverse(gamma):
    return math.log(gamma / (1.0 - gamma))


# The reference's initialisation of every layer: Haiku's default (dm-haiku 0.0.7), weights
# truncated_normal(−2, 2) / sqrt(fan_in) without flax's correction for the truncation (so std
# 0.88 / sqrt(fan_in); this scale cancels flax's division by 0.8796), biases 0. flax's lecun_normal
# makes each layer 1.137× larger and, through the meta-optimiser's eps_root, γ's early steps too.
HAIKU_INIT = nn.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal")


class Conv2x2(nn.Module):
    """nn.Conv(features, (2, 2), strides=stride, padding="SAME") as one matmul over 2×2 patches:
    vmapped over seeds, nn.Conv becomes a grouped convolution, slow on CPU; a batched matmul is not."""

    features: int
    stride: int  # 1 or 2

    @nn.compact
    def __call__(self, x):  # [..., H, W, C]
        *batch, height, width, channels = x.shape
        kernel = self.param("kernel", HAIKU_INIT, (2, 2, channels, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.stride == 2:  # H, W even: SAME pads nothing and the patches do not overlap
            patches = x.reshape(*batch, height // 2, 2, width // 2, 2, channels).swapaxes(-4, -3)
        else:  # SAME with an even kernel pads one row at the bottom and one column on the right
            x = jnp.pad(x, [(0, 0)] * len(batch) + [(0, 1), (0, 1), (0, 0)])
            rows = [[x[..., i : i + height, j : j + width, :] for j in (0, 1)] for i in (0, 1)]
            patches = jnp.stack([jnp.stack(row, axis=-2) for row in rows], axis=-3)
        # patches: [..., H / stride, W / stride, 2, 2, C]
        return jnp.einsum("...hwijc,ijcf->...hwf", patches, kernel) + bias


class Torso(nn.Module):
    """Conv(32, 2×2, stride 2) → ReLU → Conv(32, 2×2, stride 1) → ReLU → flatten: 6×6×5 → 288 features."""

    @nn.compact
    def __call__(self, obs):
        x = nn.relu(Conv2x2(32, stride=2)(obs))
        x = nn.relu(Conv2x2(32, stride=1)(x))
        return x.reshape(*x.shape[:-3], -1)


class MLP(nn.Module):
    """Dense layers with a ReLU between each two (none after the last)."""

    features: Sequence[int]

    @nn.compact
    def __call__(self, x):
        for i, features in enumerate(self.features):
            x = nn.Dense(features, kernel_init=HAIKU_INIT)(nn.relu(x) if i > 0 else x)
        return x


class Actor(nn.Module):
    """Softmax policy: its own conv torso → MLP(64, 64) → one logit per move."""

    num_actions: int

    @nn.compact
    def __call__(self, obs):
        return MLP((64, 64, self.num_actions))(Torso()(obs))


class Critic(nn.Module):
    """Dual-head critic: the inner head V^γ and the outer head V^γ′ (each MLP(128, 128) → 1) share a
    conv torso, but the outer head reads stop_gradient(torso): it learns from the torso without shaping
    it, so adding it changes nothing about how the inner critic learns (paper Figure 4)."""

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


# What the outer loss logs; nan in A2C, which has none.
OUTER_METRICS = ("meta/outer_advantage", "meta/outer_advantage_inner_critic", "meta/outer_advantage_outer_critic")


def make_train(args: Args):
    env = common_envs.make_snake(args.num_envs)
    actor, critic = Actor(env.num_actions), Critic()
    optimizer = optax.rmsprop(args.learning_rate, decay=0.9)  # optax puts eps inside the sqrt
    # As the reference (snake/training/setup_run.py): eps_root inside Adam's square root keeps the
    # first meta-steps small while meta-gradients are ~1e-6 (with eps_root = 0 Adam takes full-size
    # steps whatever the gradient's size, and γ rises far faster than the paper's).
    meta_optimizer = optax.chain(optax.clip_by_global_norm(args.max_grad_norm), optax.adam(args.meta_lr, eps_root=1e-8))
    snake_evaluate = common_envs.snake_evaluator()  # the games are built here, outside any trace

    def init(seed):
        init_key, key = jax.random.split(jax.random.PRNGKey(seed))
        actor_key, critic_key, env_key = jax.random.split(init_key, 3)
        dummy_obs = jnp.zeros(env.obs_shape)
        params = {"actor": actor.init(actor_key, dummy_obs), "critic": critic.init(critic_key, dummy_obs)}
        # An explicit dtype: a weak-typed η would change type after one update and recompile.
        meta_params = jnp.asarray(gamma_inverse(args.gamma_init), dtype=jnp.float32)
        obs, env_state = env.reset(env_key)
        target_opt_state = ()
        opt_states = (optimizer.init(params), meta_params, meta_optimizer.init(meta_params), target_opt_state)
        return RunnerState(params, *opt_states, env_state, obs, key)

    def rollout(params, env_state, obs, key):
        def env_step(carry, step_key):
            env_state, obs = carry
            action_key, env_key = jax.random.split(step_key)
            action = jax.random.categorical(action_key, actor.apply(params["actor"], obs))
            next_obs, env_state, reward, done, info = env.step(env_key, env_state, action)
            transition = Transition(obs, action, reward, done, info["episode_return"], info["episode_length"])
            return (env_state, next_obs), transition

        keys = jax.random.split(key, args.num_steps)
        (env_state, last_obs), traj = jax.lax.scan(env_step, (env_state, obs), keys)
        return env_state, last_obs, Batch(traj, last_obs)

    def baseline_values(params, batch):
        """(V_inner, V_outer) on s_0..s_T from the critic's two heads, under stop_gradient: the values
        the advantages and bootstrap targets use."""
        obs = jnp.concatenate([batch.traj.obs, batch.last_obs[None]])
        return jax.lax.stop_gradient(critic.apply(params["critic"], obs))

    def policy_terms(params, obs, action):
        logits = actor.apply(params["actor"], obs)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[..., None], axis=-1)[..., 0]
        entropy = -jnp.sum(jax.nn.softmax(logits) * jax.nn.log_softmax(logits), axis=-1)
        return log_prob, jnp.mean(entropy)

    def inner_loss(params, batch, values, gamma):
        """A2C loss with the meta-parameter γ(η) (paper eq. 1); both critic heads learn here."""
        traj, (inner_values, outer_values) = batch.traj, values
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
        names = ("losses/policy_loss", "losses/value_loss", "losses/outer_value_loss", "losses/entropy")
        return loss, dict(zip(names, (policy_loss, value_loss, outer_value_loss, entropy)))

    def inner_update(meta_params, params, opt_state, batch, values):
        """θ′(η): one RMSProp step on L_inner(θ, η), differentiable in η (the meta-gradient goes through
        the whole update, the second-moment estimate included)."""
        grads, metrics = jax.grad(inner_loss, has_aux=True)(params, batch, values, gamma_fn(meta_params))
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), (new_opt_state, metrics)

    def inner_update_and_vjp(meta_params, params, opt_state, batch, values):
        """θ′(η), and the function that pulls ∂L_meta/∂θ′ back to η through the inner step (the inner
        gradient is computed once). The meta-loss sees the critic only under stop_gradient, so only the
        actor's part of θ′ is differentiated: no second-order work for the critic."""

        def actor_step(meta_params):  # differentiated output: θ′_actor; auxiliary: all of θ′, untouched
            new_params, (new_opt_state, metrics) = inner_update(meta_params, params, opt_state, batch, values)
            return new_params["actor"], (new_params, new_opt_state, metrics)

        # vjp returns θ′_actor (also in the auxiliary θ′, so dropped), the pull-back, and the auxiliary.
        _, actor_vjp, (new_params, new_opt_state, metrics) = jax.vjp(actor_step, meta_params, has_aux=True)
        meta_vjp = lambda cotangent: actor_vjp(cotangent["actor"])[0]
        return new_params, new_opt_state, metrics, meta_vjp

    def outer_loss(params, batch, values):
        """A2C policy-gradient loss with fixed γ′, λ′ at θ′ (paper eq. 2). Its advantage needs V^{π,γ′}."""
        traj = batch.traj
        inner_head, outer_head = (gae(traj.reward, traj.done, v, args.outer_gamma, args.outer_gae_lambda)[0] for v in values)
        # THE PAPER'S FIX: V^{π,γ′} from the outer head, instead of the inner head's V^{π,γ} (eq. 3's bias).
        advantage = outer_head if args.outer_critic else inner_head
        if args.normalize_advantage:
            advantage = normalize(advantage)
        log_prob, entropy = policy_terms(params, traj.obs, traj.action)
        loss = -jnp.mean(advantage * log_prob) - args.outer_ent_coef * entropy
        return loss, dict(zip(OUTER_METRICS, (jnp.mean(advantage), jnp.mean(inner_head), jnp.mean(outer_head))))

    def meta_loss_grad(new_params, target_opt_state, outer_batch, outer_values):
        """MG (paper eq. 4): the meta-loss is the outer loss at θ′; returns ∇θ′ of it. target_opt_state
        is BMG's (MG has none): passed through, so that `update` is the same in MG and BMG."""
        (loss, metrics), grads = jax.value_and_grad(outer_loss, has_aux=True)(new_params, outer_batch, outer_values)
        return grads, target_opt_state, metrics | {"losses/meta_loss": loss}

    def evaluate(actor_params, updates_done):
        """The reference's evaluation (common_envs.snake_evaluator) of the policy θ_actor."""
        return snake_evaluate(lambda obs: actor.apply(actor_params, obs), updates_done)

    def diagnostics(runner, meta_grad, batches, update_index):
        """What an update logs besides its losses: γ, the meta-gradient, the training episodes that
        ended (inner and outer batches alike), whether all is finite, and every --eval-every updates
        the evaluation of the policy after update_index + 1 updates."""
        leaves = jax.tree.leaves((runner.params, runner.meta_params, meta_grad))
        metrics = {
            "meta/gamma": gamma_fn(runner.meta_params),
            "meta/meta_grad": meta_grad,
            "episodes/return_sum": sum(jnp.sum(b.traj.episode_return) for b in batches),
            "episodes/length_sum": sum(jnp.sum(b.traj.episode_length) for b in batches).astype(jnp.float32),
            "episodes/count": sum(jnp.sum(b.traj.done) for b in batches).astype(jnp.float32),
            "finite": jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in leaves])),
        }
        if args.eval_every:
            evaluated = (update_index + 1) % args.eval_every == 0
            no_eval = common_envs.snake_no_evaluation
            metrics |= jax.lax.cond(evaluated, evaluate, no_eval, runner.params["actor"], update_index + 1)
        return metrics

    def update(runner: RunnerState, update_index):
        """One meta-update (paper Figure 1): 1. the inner step θ → θ′(η) on a batch sampled by θ;
        2. an outer batch sampled by θ′; 3. the meta-loss at θ′, its advantage from the head that
        --outer-critic chooses (outer_loss); 4. the meta-gradient: ∇θ′ of it pulled back through the
        inner step to η; 5. the meta-step on η. A2C (--meta-lr 0) stops after step 1."""
        key_inner, key_outer = jax.random.split(jax.random.fold_in(runner.key, update_index))
        # 1. INNER STEP θ → θ′(η)
        env_state, obs, inner_batch = rollout(runner.params, runner.env_state, runner.obs, key_inner)
        inner = (runner.meta_params, runner.params, runner.opt_state, inner_batch, baseline_values(runner.params, inner_batch))
        if args.meta_lr == 0:  # A2C: γ fixed, no outer batch, no meta-gradient
            new_params, (new_opt_state, metrics) = inner_update(*inner)
            runner = runner._replace(params=new_params, opt_state=new_opt_state, env_state=env_state, obs=obs)
            outer_metrics = {name: jnp.nan for name in (*OUTER_METRICS, "losses/meta_loss")}
            return runner, metrics | outer_metrics | diagnostics(runner, jnp.zeros(()), [inner_batch], update_index)
        new_params, new_opt_state, metrics, meta_vjp = inner_update_and_vjp(*inner)
        # 2. OUTER BATCH, sampled by θ′
        env_state, obs, outer_batch = rollout(new_params, env_state, obs, key_outer)
        outer_values = baseline_values(new_params, outer_batch)
        # 3. META-LOSS at θ′ and its gradient in θ′
        target_opt_state = runner.target_opt_state
        cotangent, target_opt_state, meta_metrics = meta_loss_grad(new_params, target_opt_state, outer_batch, outer_values)
        # 4. META-GRADIENT ∂L_meta/∂η, through θ′(η)
        meta_grad = meta_vjp(cotangent)
        # 5. META-STEP on η
        meta_updates, meta_opt_state = meta_optimizer.update(meta_grad, runner.meta_opt_state)
        meta_params = optax.apply_updates(runner.meta_params, meta_updates)
        runner = RunnerState(
            new_params, new_opt_state, meta_params, meta_opt_state, target_opt_state, env_state, obs, runner.key
        )
        return runner, metrics | meta_metrics | diagnostics(runner, meta_grad, [inner_batch, outer_batch], update_index)

    def train(runner: RunnerState, update_indices):
        """Runs the updates `update_indices` (a chunk) for one seed; returns stacked metrics."""
        return jax.lax.scan(update, runner, update_indices)

    # main uses init, train and steps_per_batch; the tests check the other pieces one by one.
    pieces = (init, train, rollout, baseline_values, inner_loss, inner_update, inner_update_and_vjp, outer_loss)
    pieces += (meta_loss_grad, evaluate)
    steps_per_batch = args.num_steps * args.num_envs
    return SimpleNamespace(**{f.__name__: f for f in pieces}, meta_optimizer=meta_optimizer, steps_per_batch=steps_per_batch)


# =====================================================================================================
# TRY NOT TO MODIFY: argument checks, logging, the run directory, checkpoints, --resume and main.
# check_args and summarize are this script's; the rest is the same in the four scripts (tests/test_shared_code.py).
# =====================================================================================================
ENV_ID = common_envs.SNAKE_ENV_ID
LAST_VALUE_METRICS = ("meta/gamma",)  # the state after a chunk (its last value); the other metrics are chunk means


def check_args(args: Args):
    """Bad input stops here, before anything is compiled or written: one line, exit code 2."""
    lowest = dict(seed=0, num_seeds=1, log_every=1, num_envs=1, num_steps=1, ent_coef=0, vf_coef=0, meta_lr=0)
    lowest |= dict(outer_ent_coef=0, eval_every=0, checkpoint_every_s=0, time_limit_s=0)
    rules = [(name, value >= low, f"must be >= {low}") for name, low in lowest.items() for value in [getattr(args, name)]]
    rules += [(name, getattr(args, name) > 0, "must be > 0") for name in ("learning_rate", "max_grad_norm")]
    rules += [(name, 0 <= getattr(args, name) <= 1, "must be in [0, 1]") for name in ("gae_lambda", "outer_gae_lambda")]
    batch, devices = args.num_envs * args.num_steps, jax.device_count()
    rules += [
        ("seed", args.seed + args.num_seeds <= 2**31, "+ --num-seeds must be <= 2^31 (a JAX int32 key)"),
        ("num_seeds", args.num_seeds % devices == 0, f"must be a multiple of the {devices} devices the seeds are split over"),
        ("total_timesteps", args.total_timesteps >= batch, f"must be >= one batch (--num-envs × --num-steps = {batch})"),
        ("gamma_init", 0.0 < args.gamma_init < 1.0, "must be in (0, 1)"),
        ("outer_gamma", 0 < args.outer_gamma <= 1, "must be in (0, 1]"),
    ]
    for name, ok, allowed in rules:
        if not ok:  # also catches NaN, for which every comparison is False
            fail(f"--{name.replace('_', '-')} {allowed}, got {getattr(args, name)}")


def summarize(metrics, seed_index, steps_per_batch):
    """One log point of one seed from a chunk's stacked metrics (numpy, [seeds, updates]). An evaluation
    is logged with the step of the policy it scored (eval/global_step); nan where the chunk held none."""
    this_seed = {name: values[seed_index] for name, values in metrics.items()}
    count = max(this_seed["episodes/count"].sum(), 1)
    row = {f"charts/episodic_{x}": this_seed[f"episodes/{x}_sum"].sum() / count for x in ("return", "length")}
    for name, values in this_seed.items():
        if not name.startswith(("episodes/", "eval/")) and name != "finite":
            row[name] = values[-1] if name in LAST_VALUE_METRICS else values.mean()
    if "eval/updates_done" in this_seed:  # the chunk's last evaluation, if it held one
        evaluated = np.flatnonzero(this_seed["eval/updates_done"] >= 0)
        last = evaluated[-1] if len(evaluated) else None
        row |= {name: np.nan if last is None else this_seed[name][last] for name in common_envs.SNAKE_EVAL_METRICS}
        row["eval/global_step"] = np.nan if last is None else int(this_seed["eval/updates_done"][last]) * steps_per_batch
    return row


SCRIPT = os.path.basename(__file__)
CHECKPOINT_FORMAT = 1
# What --resume may change: nothing that changes a number of the run (the budget may only grow).
RESUME_MAY_CHANGE = ("total_timesteps", "num_updates", "log_every", "checkpoint_every_s", "time_limit_s", "runs_dir")
RESUME_MAY_CHANGE += ("save_model", "resume")


def fail(message):
    """Bad input: one line on stderr and exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def make_run_dir(args):
    """runs/<env>__<exp_name>__<seed>__<time>, with -1, -2, ... if two runs start in the same second."""
    base = os.path.join(args.runs_dir, f"{ENV_ID}__{args.exp_name}__{args.seed}__{int(time.time())}")
    for run_dir in [base] + [f"{base}-{attempt}" for attempt in range(1, 1000)]:
        try:
            os.makedirs(run_dir)
            return run_dir
        except FileExistsError:
            continue
        except OSError as error:
            fail(f"--runs-dir {args.runs_dir!r} is not writable ({error.strerror})")
    fail(f"--runs-dir {args.runs_dir!r}: 1000 runs named {os.path.basename(base)} exist")


def read_checkpoint(run_dir):
    """The checkpoint of `run_dir`; one line and exit 2 if it is missing, torn or not this script's."""
    path = os.path.join(run_dir, "checkpoint.msgpack")
    try:
        with open(path, "rb") as f:
            checkpoint = flax.serialization.msgpack_restore(f.read())
    except OSError as error:
        fail(f"--resume {run_dir}: cannot read {path} ({error.strerror})")
    except Exception:  # msgpack's own errors: a truncated or corrupt file
        fail(f"--resume {run_dir}: checkpoint.msgpack is truncated or corrupt")
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        fail(f"--resume {run_dir}: checkpoint.msgpack is not a checkpoint of format {CHECKPOINT_FORMAT}")
    if checkpoint["script"] != SCRIPT:
        fail(f"--resume {run_dir}: its checkpoint was written by {checkpoint['script']}, not {SCRIPT}")
    if set(checkpoint["args"]) != {field.name for field in dataclasses.fields(Args)}:
        fail(f"--resume {run_dir}: its checkpoint has other options than this version of {SCRIPT}")
    return checkpoint


def resume_args(checkpoint):
    """A resumed run's options: the checkpoint's, with the command line's on top. Only those that change
    no number may differ, and the budget cannot end before the checkpoint."""
    args, done = tyro.cli(Args, default=Args(**checkpoint["args"])), checkpoint["updates_done"]
    for field in dataclasses.fields(Args):
        given, saved = getattr(args, field.name), checkpoint["args"][field.name]
        if field.name not in RESUME_MAY_CHANGE and given != saved:
            fail(f"--{field.name.replace('_', '-')} must be the checkpoint's ({saved}) to resume, got {given}")
    if args.num_updates < done:
        fail(f"--resume: the budget ({args.num_updates} updates) ends before the checkpoint's {done} updates")
    return args


def write_checkpoint(run_dir, args, seeds, updates_done, runner):
    """Every seed's whole training state, written atomically (a temporary file, then os.replace): a kill
    at any instant leaves the previous checkpoint or this one, never a torn file. The leaves are saved
    flat (flax cannot serialise jumanji's State); their tree comes from a fresh runner."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(runner)]
    payload = dict(format=CHECKPOINT_FORMAT, script=SCRIPT, args=dataclasses.asdict(args), seeds=seeds)
    path = os.path.join(run_dir, "checkpoint.msgpack")
    with open(path + ".tmp", "wb") as f:
        f.write(flax.serialization.msgpack_serialize(payload | dict(updates_done=updates_done, leaves=leaves)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def restore_runner(checkpoint, fresh, run_dir):
    """The checkpoint's leaves in the tree of a freshly initialised runner, if every leaf fits."""
    leaves, fresh_leaves = checkpoint["leaves"], jax.tree.leaves(fresh)
    fits = [(a.shape, a.dtype) == (b.shape, b.dtype) for a, b in zip(leaves, fresh_leaves)]
    if len(leaves) != len(fresh_leaves) or not all(fits):
        fail(f"--resume {run_dir}: the checkpoint's training state does not fit {SCRIPT}'s")
    return jax.tree.unflatten(jax.tree.structure(fresh), [jnp.asarray(x) for x in leaves])


def cut_log(run_dir, writers, global_step):
    """Forgets what was logged after the checkpoint: the metrics.csv rows after it (whole rows only),
    and in TensorBoard every later step (a SessionLog START event purges the steps at and after its own)."""
    csv_path = os.path.join(run_dir, "metrics.csv")
    if os.path.exists(csv_path):
        with open(csv_path) as f:
            header, *rows = f.read().splitlines(keepends=True)
        rows = [row for row in rows if row.endswith("\n") and int(row.split(",")[1]) <= global_step]
        with open(csv_path + ".tmp", "w") as f:
            f.write(header + "".join(rows))
        os.replace(csv_path + ".tmp", csv_path)
    for writer in writers:
        writer.add_event(Event(wall_time=time.time(), step=global_step + 1, session_log=SessionLog(status=SessionLog.START)))


def add_scalar(writer, name, value, step):
    """One TensorBoard scalar event."""
    summary = Summary(value=[Summary.Value(tag=name, simple_value=float(value))])
    writer.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))


def write_log_point(writers, run_dir, seeds, global_step, rows):
    """One log point: a TensorBoard event per metric (an evaluation at the step of the policy it scored,
    none where there was none) and each seed's metrics.csv row, all in one write: a crash leaves whole rows."""
    for writer, row in zip(writers, rows):
        eval_step = row.get("eval/global_step", global_step)
        for name, value in row.items():
            step = eval_step if name.startswith("eval/") else global_step
            if name != "eval/global_step" and not (isinstance(step, float) and math.isnan(step)):
                add_scalar(writer, name, value, step)
        writer.flush()
    csv_path, text = os.path.join(run_dir, "metrics.csv"), lambda v: str(v) if isinstance(v, int) else f"{v:.6g}"
    lines = [f"{s},{global_step}," + ",".join(text(v) for v in row.values()) + "\n" for s, row in zip(seeds, rows)]
    header = [] if os.path.exists(csv_path) else [",".join(["seed", "global_step", *rows[0]]) + "\n"]
    with open(csv_path, "a") as f:
        f.write("".join(header + lines))


def main():
    args = tyro.cli(Args)
    checkpoint = read_checkpoint(args.resume) if args.resume else None
    args = resume_args(checkpoint) if checkpoint else args
    check_args(args)
    run_dir = args.resume or make_run_dir(args)
    seeds = list(range(args.seed, args.seed + args.num_seeds))
    fns = make_train(args)
    runner, done = jax.jit(jax.vmap(fns.init))(jnp.asarray(seeds)), 0
    if checkpoint:  # checked before anything in the run directory changes
        runner, done = restore_runner(checkpoint, runner, run_dir), checkpoint["updates_done"]
    with open(os.path.join(run_dir, "args.json"), "w") as f:
        json.dump({"script": SCRIPT, **dataclasses.asdict(args)}, f, indent=2)
    writers = [EventFileWriter(os.path.join(run_dir, f"seed{s}")) for s in seeds]
    if checkpoint:
        cut_log(run_dir, writers, done * fns.steps_per_batch)
    resumed = f" | resumed at update {done}" if checkpoint else ""
    print(f"run: {run_dir} | seeds {seeds[0]}..{seeds[-1]} | devices {jax.devices()}{resumed}", flush=True)
    if jax.device_count() > 1:  # seeds are independent: split the seed axis over the devices
        mesh = jax.sharding.Mesh(jax.devices(), ("seeds",))
        runner = jax.device_put(runner, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds")))
    # The runner is donated: each chunk updates it in place (the old one is never read again).
    train = jax.jit(jax.vmap(fns.train, in_axes=(0, None)), donate_argnums=0)
    start_time, chunk_size = time.time(), min(args.log_every, args.num_updates)
    compiled = train.lower(runner, jnp.arange(chunk_size)).compile()
    print(f"compiled in {time.time() - start_time:.1f}s", flush=True)

    interrupted = []  # Ctrl-C and SIGTERM end the run between chunks, so every finished log point is kept
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _: interrupted.append(signum))
    start_time = last_checkpoint = time.time()
    start_done, out_of_time = done, False
    try:
        while done < args.num_updates and not interrupted and not out_of_time:
            chunk = jnp.arange(done, min(done + chunk_size, args.num_updates))
            runner, metrics = (compiled if len(chunk) == chunk_size else train)(runner, chunk)
            metrics = jax.device_get(metrics)
            if not metrics["finite"].all():  # stops without a checkpoint: the last one is sound
                seed_index, update_index = np.argwhere(~metrics["finite"])[0]
                where = f"at update {int(chunk[update_index])} of seed {seeds[seed_index]}"
                sys.exit(f"error: non-finite meta-gradient, γ or parameters {where}; the log before it is in {run_dir}")
            done += len(chunk)
            global_step = done * fns.steps_per_batch  # inner-batch steps of one seed (the paper's x-axis)
            elapsed = time.time() - start_time
            sps = (done - start_done) * fns.steps_per_batch / elapsed
            rows = [summarize(metrics, i, fns.steps_per_batch) for i in range(len(seeds))]
            for row in rows:
                row |= {"charts/SPS": sps, "charts/env_steps_total": global_step * (1 if args.meta_lr == 0 else 2)}
            write_log_point(writers, run_dir, seeds, global_step, rows)
            gamma, ret = np.mean([r["meta/gamma"] for r in rows]), np.nanmean([r["charts/episodic_return"] for r in rows])
            eta = (args.num_updates - done) * elapsed / (done - start_done) / 60
            line = f"update {done}/{args.num_updates} | gamma {gamma:.4f} | return {ret:.3f} | SPS {sps:,.0f}"
            print(f"{line} | ETA {eta:.1f} min", flush=True)
            if args.checkpoint_every_s and time.time() - last_checkpoint >= args.checkpoint_every_s:
                write_checkpoint(run_dir, args, seeds, done, runner)
                last_checkpoint = time.time()
            out_of_time = args.time_limit_s and time.time() - start_time >= args.time_limit_s
        write_checkpoint(run_dir, args, seeds, done, runner)  # at the end, on a stop, at the time limit
        for i, s in enumerate(seeds if args.save_model else []):  # θ and η of each seed (also after a stop)
            model = jax.tree.map(lambda x, i=i: np.asarray(x[i]), {"params": runner.params, "meta_params": runner.meta_params})
            with open(os.path.join(run_dir, f"seed{s}", "model.msgpack"), "wb") as f:
                f.write(flax.serialization.to_bytes(model))
    finally:
        for writer in writers:
            writer.close()
    resume = f"python {SCRIPT} --resume {run_dir}"
    if interrupted:
        print(f"interrupted after {done} updates; the log is in {run_dir}; continue with: {resume}", file=sys.stderr)
        sys.exit(130)
    if done < args.num_updates:
        print(f"time limit reached after {done} updates; continue with: {resume}", flush=True)
    else:
        print(f"done: {run_dir} | python plot.py {run_dir} | tensorboard --logdir {os.path.dirname(run_dir)}")


if __name__ == "__main__":
    main()
