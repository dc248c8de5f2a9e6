"""MG: meta-gradient self-tuning of the discount γ on the Discounting Chain, with the outer critic of
Bonnet, Midgley & Laterre (2022), "Debiasing Meta-Gradient Reinforcement Learning by Learning the Outer
Value Function" (Section 5.1, Figure 2).

    python mg_chain.py [--outer-critic] [--meta-lr 0] [--resume RUN_DIR]

Without --outer-critic the outer loss uses V^{π,γ} (biased: γ → 0.90 and the policy turns to the myopic
chain); with it V^{π,γ′} (γ → 1.0, the paying chain). --meta-lr 0 is A2C with γ fixed; --resume
continues a stopped run.
"""

import dataclasses
import json
import math
import os
import signal
import sys
import time
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
    mapping_seed: int = 3
    """which chain (0..4) pays 1.1 instead of 1.0"""
    num_updates: int = 50_000
    """number of meta-updates (the paper: 50,000)"""
    log_every: int = 100
    """updates per jitted chunk; one log point per chunk"""
    num_envs: int = 128
    """parallel environments per batch (each rollout is one whole 100-step episode)"""
    true_value: bool = True
    """advantages from the true value functions (the paper's setting: no critic is trained, its loss columns are nan); --no-true-value uses the learned dual-head critic"""
    outer_critic: bool = False
    """the outer loss uses V^{π,γ′} (the outer critic) instead of V^{π,γ} (the biased estimate)"""
    normalize_advantage: bool = False
    """normalise the inner- and the outer-loss advantage per batch (paper Appendix D.2, Figure 6; as the reference)"""
    learning_rate: float = 0.5
    """inner SGD learning rate α"""
    gae_lambda: float = 0.0
    """inner λ"""
    ent_coef: float = 0.005
    """inner entropy coefficient c_EN"""
    vf_coef: float = 0.5
    """value-loss coefficient c_TD of both critic heads (--no-true-value only)"""
    gamma_init: float = 0.95
    """initial discount γ(η0), in (0.9, 1.0)"""
    meta_lr: float = 0.1
    """Adam learning rate of η; 0 = A2C (no outer batch, no meta-gradient)"""
    max_grad_norm: float = math.inf
    """global-norm clip of the meta-gradient (inf = none, the paper's chain setting)"""
    outer_gamma: float = 1.0
    """outer discount γ′"""
    outer_gae_lambda: float = 0.0
    """outer λ′"""
    outer_ent_coef: float = 0.005
    """outer entropy coefficient c′_EN"""
    measure_bias: bool = False
    """also compute, at every update, the meta-gradient with the exact V^{π,γ′} and with each head, and log how often each head's sign agrees with the exact one"""
    save_model: bool = False
    """write each seed's final θ and η to runs/<run_name>/seed<N>/model.msgpack (flax serialisation)"""
    checkpoint_every_s: float = 300.0
    """seconds of training between checkpoints (runs/<run_name>/checkpoint.msgpack); 0 = only at the end or on a stop"""
    time_limit_s: float = 0.0
    """end the run cleanly after this many seconds of training, with a checkpoint (0 = no limit)"""
    resume: str = ""
    """continue the run in this run directory from its checkpoint; options not given are the checkpoint's"""


# =====================================================================================================
# ALGO LOGIC: the networks, the inner and outer losses, the meta-gradient (paper Section 3, Figure 1)
# =====================================================================================================
# γ(η) = 0.9 + 0.1·sigmoid(η): the chain's γ lives in (0.9, 1) (paper Appendix C).
def gamma_fn(meta_params):
    return 0.9 + 0.1 * jax.nn.sigmoid(meta_params)


def gamma_inverse(gamma):
    return math.log((gamma - 0.9) / (1.0 - gamma))


class Actor(nn.Module):
    """Linear softmax policy on the raw observation [c, t/100], zero-initialised (uniform)."""

    num_actions: int

    @nn.compact
    def __call__(self, obs):
        return nn.Dense(self.num_actions, kernel_init=nn.initializers.zeros)(obs)


class Critic(nn.Module):
    """Dual-head critic: the inner head V^γ and the outer head V^γ′ share a torso, but the
    outer head reads stop_gradient(torso): it learns from the torso without shaping it, so
    adding it changes nothing about how the inner critic learns (paper Figure 4)."""

    @nn.compact
    def __call__(self, obs):
        chain = obs[..., 0].astype(jnp.int32) + 1  # -1 (s0), 0..4 -> 0..5
        x = jnp.concatenate([jax.nn.one_hot(chain, 6), obs[..., 1:]], axis=-1)
        x = nn.relu(nn.Dense(64)(x))
        torso = nn.relu(nn.Dense(64)(x))
        inner_value = nn.Dense(1)(torso)[..., 0]
        outer_value = nn.Dense(1)(jax.lax.stop_gradient(torso))[..., 0]
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


# What the outer loss logs; nan in A2C, which has none. At s0 the outer advantage decides between the chains.
OUTER_METRICS = ("meta/outer_advantage", "meta/outer_advantage_inner_critic", "meta/outer_advantage_outer_critic")
OUTER_METRICS += ("meta/outer_advantage_s0",)
# What --measure-bias logs: each a chunk mean, so a sign agreement is the fraction of the chunk's updates.
BIAS_METRICS = ("meta/meta_grad_exact", "meta/meta_grad_inner_head", "meta/meta_grad_outer_head")
BIAS_METRICS += ("meta/sign_agreement_inner_head", "meta/sign_agreement_outer_head")


def make_train(args: Args):
    env = common_envs.make_chain(args.mapping_seed, args.num_envs)
    num_steps = common_envs.CHAIN_EPISODE_LENGTH  # one aligned episode per rollout
    rewards = common_envs.chain_rewards(args.mapping_seed)
    s0_obs = jnp.asarray(common_envs.CHAIN_S0_OBS)
    actor, critic = Actor(env.num_actions), Critic()
    optimizer = optax.sgd(args.learning_rate)
    meta_optimizer = optax.chain(optax.clip_by_global_norm(args.max_grad_norm), optax.adam(args.meta_lr))

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

    def pi_s0(params):
        return jax.nn.softmax(actor.apply(params["actor"], s0_obs))

    def rollout(params, env_state, obs, key):
        def env_step(carry, step_key):
            env_state, obs = carry
            action_key, env_key = jax.random.split(step_key)
            action = jax.random.categorical(action_key, actor.apply(params["actor"], obs))
            next_obs, env_state, reward, done, info = env.step(env_key, env_state, action)
            transition = Transition(obs, action, reward, done, info["episode_return"], info["episode_length"])
            return (env_state, next_obs), transition

        keys = jax.random.split(key, num_steps)
        (env_state, last_obs), traj = jax.lax.scan(env_step, (env_state, obs), keys)
        return env_state, last_obs, Batch(traj, last_obs)

    def baseline_values(params, batch, gamma):
        """(V_inner, V_outer) on s_0..s_T, under stop_gradient: the values the advantages and bootstrap
        targets use. With --true-value they are the oracle V^{π,γ} and V^{π,γ′} of the sampling policy
        (its π(·|s0) and γ fixed); otherwise the critic's two heads."""
        obs = jnp.concatenate([batch.traj.obs, batch.last_obs[None]])
        if args.true_value:
            pi = pi_s0(params)
            inner = common_envs.chain_true_value(obs, pi, gamma, rewards)
            outer = common_envs.chain_true_value(obs, pi, args.outer_gamma, rewards)
        else:
            inner, outer = critic.apply(params["critic"], obs)
        return jax.lax.stop_gradient((inner, outer))

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
        loss = policy_loss - args.ent_coef * entropy
        value_loss = outer_value_loss = jnp.nan
        if not args.true_value:  # with the oracle standing in for it, the critic is not trained (c_TD = 0)
            inner_pred, outer_pred = critic.apply(params["critic"], traj.obs)
            value_loss = jnp.mean((targets - inner_pred) ** 2)
            outer_value_loss = jnp.mean((outer_targets - outer_pred) ** 2)
            loss += args.vf_coef * (value_loss + outer_value_loss)
        names = ("losses/policy_loss", "losses/value_loss", "losses/outer_value_loss", "losses/entropy")
        return loss, dict(zip(names, (policy_loss, value_loss, outer_value_loss, entropy)))

    def inner_update(meta_params, params, opt_state, batch, values):
        """θ′(η) = θ − α ∇θ L_inner(θ, η): differentiable in η (the meta-gradient goes through it)."""
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
        at_s0 = traj.obs[..., 0] < 0
        advantage_s0 = jnp.sum(jnp.where(at_s0, advantage, 0.0)) / jnp.sum(at_s0)
        values = (jnp.mean(advantage), jnp.mean(inner_head), jnp.mean(outer_head), advantage_s0)
        return loss, dict(zip(OUTER_METRICS, values))

    def meta_loss_grad(new_params, target_opt_state, outer_batch, outer_values):
        """MG (paper eq. 4): the meta-loss is the outer loss at θ′; returns ∇θ′ of it. target_opt_state
        is BMG's (MG has none): passed through, so that `update` is the same in MG and BMG."""
        (loss, metrics), grads = jax.value_and_grad(outer_loss, has_aux=True)(new_params, outer_batch, outer_values)
        return grads, target_opt_state, metrics | {"losses/meta_loss": loss}

    bias_metrics = BIAS_METRICS if args.measure_bias else ()

    def meta_gradient_bias(new_params, target_opt_state, outer_batch, outer_values, meta_vjp):
        """The bias, measured (paper eq. 3): the meta-gradient with the exact V^{π,γ′} of θ′ in the outer
        loss (the unbiased one), and with each head's values in its place, all on the same θ′, outer batch
        and target construction; and whether each head's sign is the exact one's (1) or not (0)."""
        obs = jnp.concatenate([outer_batch.traj.obs, outer_batch.last_obs[None]])
        exact = jax.lax.stop_gradient(common_envs.chain_true_value(obs, pi_s0(new_params), args.outer_gamma, rewards))
        grads = {}
        for name, values in (("exact", exact), ("inner_head", outer_values[0]), ("outer_head", outer_values[1])):
            # (values, values): outer_loss uses these values whichever head --outer-critic chooses
            grads[name] = meta_vjp(meta_loss_grad(new_params, target_opt_state, outer_batch, (values, values))[0])
        metrics = {f"meta/meta_grad_{name}": g for name, g in grads.items()}
        for head in ("inner_head", "outer_head"):
            metrics[f"meta/sign_agreement_{head}"] = (jnp.sign(grads[head]) == jnp.sign(grads["exact"])).astype(jnp.float32)
        return metrics

    def diagnostics(runner, meta_grad, batches):
        """What an update logs besides its losses: γ, the meta-gradient, the policy at s0 and its exact
        expected return, how well the learned outer head knows V^{π,γ′}(s0), the training episodes that
        ended (inner and outer batches alike) and whether all is finite."""
        policy = pi_s0(runner.params)
        leaves = jax.tree.leaves((runner.params, runner.meta_params, meta_grad))
        return {
            "meta/outer_critic_v_s0": jnp.nan if args.true_value else critic.apply(runner.params["critic"], s0_obs)[1],
            "meta/true_outer_v_s0": common_envs.chain_true_value(s0_obs, policy, args.outer_gamma, rewards),
            "meta/gamma": gamma_fn(runner.meta_params),
            "eval/expected_return": jnp.sum(policy * rewards),  # exact: Σ_a π(a|s0) ρ_a
            "meta/meta_grad": meta_grad,
            **{f"policy/p_chain{k}": policy[k] for k in range(env.num_actions)},
            "episodes/return_sum": sum(jnp.sum(b.traj.episode_return) for b in batches),
            "episodes/length_sum": sum(jnp.sum(b.traj.episode_length) for b in batches).astype(jnp.float32),
            "episodes/count": sum(jnp.sum(b.traj.done) for b in batches).astype(jnp.float32),
            "finite": jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in leaves])),
        }

    def update(runner: RunnerState, update_index):
        """One meta-update (paper Figure 1): 1. the inner step θ → θ′(η) on a batch sampled by θ;
        2. an outer batch sampled by θ′; 3. the meta-loss at θ′, its advantage from the head that
        --outer-critic chooses (outer_loss); 4. the meta-gradient: ∇θ′ of it pulled back through the
        inner step to η; 5. the meta-step on η. A2C (--meta-lr 0) stops after step 1."""
        key_inner, key_outer = jax.random.split(jax.random.fold_in(runner.key, update_index))
        # 1. INNER STEP θ → θ′(η)
        env_state, obs, inner_batch = rollout(runner.params, runner.env_state, runner.obs, key_inner)
        inner_values = baseline_values(runner.params, inner_batch, gamma_fn(runner.meta_params))
        inner = (runner.meta_params, runner.params, runner.opt_state, inner_batch, inner_values)
        if args.meta_lr == 0:  # A2C: γ fixed, no outer batch, no meta-gradient
            new_params, (new_opt_state, metrics) = inner_update(*inner)
            runner = runner._replace(params=new_params, opt_state=new_opt_state, env_state=env_state, obs=obs)
            outer_metrics = {name: jnp.nan for name in (*OUTER_METRICS, "losses/meta_loss", *bias_metrics)}
            return runner, metrics | outer_metrics | diagnostics(runner, jnp.zeros(()), [inner_batch])
        new_params, new_opt_state, metrics, meta_vjp = inner_update_and_vjp(*inner)
        # 2. OUTER BATCH, sampled by θ′
        env_state, obs, outer_batch = rollout(new_params, env_state, obs, key_outer)
        outer_values = baseline_values(new_params, outer_batch, gamma_fn(runner.meta_params))
        # 3. META-LOSS at θ′ and its gradient in θ′
        target_opt_state = runner.target_opt_state
        cotangent, target_opt_state, meta_metrics = meta_loss_grad(new_params, target_opt_state, outer_batch, outer_values)
        # 4. META-GRADIENT ∂L_meta/∂η, through θ′(η)
        meta_grad = meta_vjp(cotangent)
        if args.measure_bias:  # the same meta-gradient with the exact outer value, and with each head
            metrics |= meta_gradient_bias(new_params, runner.target_opt_state, outer_batch, outer_values, meta_vjp)
        # 5. META-STEP on η
        meta_updates, meta_opt_state = meta_optimizer.update(meta_grad, runner.meta_opt_state)
        meta_params = optax.apply_updates(runner.meta_params, meta_updates)
        runner = RunnerState(
            new_params, new_opt_state, meta_params, meta_opt_state, target_opt_state, env_state, obs, runner.key
        )
        return runner, metrics | meta_metrics | diagnostics(runner, meta_grad, [inner_batch, outer_batch])

    def train(runner: RunnerState, update_indices):
        """Runs the updates `update_indices` (a chunk) for one seed; returns stacked metrics."""
        return jax.lax.scan(update, runner, update_indices)

    # main uses init, train and steps_per_batch; the tests check the other pieces one by one.
    pieces = (init, train, rollout, baseline_values, inner_loss, inner_update, inner_update_and_vjp, outer_loss)
    pieces += (meta_loss_grad, meta_gradient_bias, pi_s0)
    steps_per_batch = num_steps * args.num_envs
    return SimpleNamespace(**{f.__name__: f for f in pieces}, meta_optimizer=meta_optimizer, steps_per_batch=steps_per_batch)


# =====================================================================================================
# TRY NOT TO MODIFY: argument checks, logging, the run directory, checkpoints, --resume and main.
# check_args and summarize are this script's; the rest is the same in the four scripts (tests/test_shared_code.py).
# =====================================================================================================
ENV_ID = common_envs.CHAIN_ENV_ID
# The state after a chunk (its last value); the other metrics are chunk means.
LAST_VALUE_METRICS = ("meta/gamma", "meta/outer_critic_v_s0", "meta/true_outer_v_s0", "eval/expected_return")
LAST_VALUE_METRICS += tuple(f"policy/p_chain{k}" for k in range(common_envs.CHAIN_NUM_ACTIONS))


def check_args(args: Args):
    """Bad input stops here, before anything is compiled or written: one line, exit code 2."""
    lowest = dict(seed=0, num_seeds=1, num_updates=1, log_every=1, num_envs=1, ent_coef=0, vf_coef=0, meta_lr=0)
    lowest |= dict(outer_ent_coef=0, checkpoint_every_s=0, time_limit_s=0)
    rules = [(name, value >= low, f"must be >= {low}") for name, low in lowest.items() for value in [getattr(args, name)]]
    rules += [(name, getattr(args, name) > 0, "must be > 0") for name in ("learning_rate", "max_grad_norm")]
    rules += [(name, 0 <= getattr(args, name) <= 1, "must be in [0, 1]") for name in ("gae_lambda", "outer_gae_lambda")]
    devices = jax.device_count()
    rules += [
        ("seed", args.seed + args.num_seeds <= 2**31, "+ --num-seeds must be <= 2^31 (a JAX int32 key)"),
        ("num_seeds", args.num_seeds % devices == 0, f"must be a multiple of the {devices} devices the seeds are split over"),
        ("mapping_seed", 0 <= args.mapping_seed < common_envs.CHAIN_NUM_ACTIONS, "must be in 0..4"),
        ("gamma_init", 0.9 < args.gamma_init < 1.0, "must be in (0.9, 1.0) for the chain"),
        ("outer_gamma", 0 < args.outer_gamma <= 1, "must be in (0, 1]"),
    ]
    for name, ok, allowed in rules:
        if not ok:  # also catches NaN, for which every comparison is False
            fail(f"--{name.replace('_', '-')} {allowed}, got {getattr(args, name)}")


def summarize(metrics, seed_index, steps_per_batch):
    """One log point of one seed from a chunk's stacked metrics (numpy, [seeds, updates]). steps_per_batch
    is unused here (the chain's evaluation is exact at every update); main calls every script's alike."""
    this_seed = {name: values[seed_index] for name, values in metrics.items()}
    count = max(this_seed["episodes/count"].sum(), 1)
    row = {f"charts/episodic_{x}": this_seed[f"episodes/{x}_sum"].sum() / count for x in ("return", "length")}
    for name, values in this_seed.items():
        if not name.startswith("episodes/") and name != "finite":
            row[name] = values[-1] if name in LAST_VALUE_METRICS else values.mean()
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
