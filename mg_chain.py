"""MG on the Discounting Chain (gymnax): meta-gradient self-tuning of the discount γ, with the outer critic of
Bonnet, Midgley & Laterre (2022), "Debiasing Meta-Gradient Reinforcement Learning by Learning the Outer
Value Function" (https://arxiv.org/abs/2211.10550, Section 5.1, Figure 2). MG: Xu, van Hasselt & Silver
(2018, https://arxiv.org/abs/1805.09801); BMG: Flennerhag et al. (2022, https://arxiv.org/abs/2109.04504).
"The reference" below is the paper's code, https://github.com/instadeepai/outer-value-function-meta-rl.

One meta-update (`update`, paper Figure 1): 1. an inner A2C step θ → θ′(η) on a batch sampled by θ, with
the discount γ = 0.9 + 0.1·sigmoid(η); 2. an outer batch sampled by θ′; 3. the meta-loss at θ′ (`meta_loss_grad`):
MG's is the outer loss, an A2C loss with γ′ = 1; BMG's is KL(π_θ̃ ‖ π_θ′) to a target θ̃ one outer-loss
step ahead; 4. the meta-gradient ∂L_meta(θ′(η))/∂η, through the inner step; 5. an Adam step on η. The
outer loss's advantage needs V^{π,γ′}: without --outer-critic it uses V^{π,γ} (biased: γ → 0.90, the
myopic chain); with it V^{π,γ′} (the fix, one line in `outer_loss`: γ → 1.0, the paying chain).

    python mg_chain.py [--outer-critic] [--no-true-value (learned critic)] [--meta-lr 0 (A2C)] [--resume RUN_DIR]
"""

import dataclasses
import math
import os
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
    exp_name: str = ""  # the run folder's middle name (default: the script and variant, e.g. mg_chain_oc)
    seed: int = 0  # first seed; seeds seed .. seed + num_seeds - 1 train together
    num_seeds: int = 1  # number of seeds, vmapped in one jit (the paper uses 10)
    runs_dir: str = "runs"  # where the run folder <env>__<exp_name>__<seed>__<time> is made
    num_updates: int = 50_000  # number of meta-updates (the paper: 50,000)
    log_every: int = 100  # updates per jitted chunk; one log point per chunk
    checkpoint_every_s: float = 300.0  # seconds between checkpoints; 0 = only at the end or on a stop
    time_limit_s: float = 0.0  # stop after this many seconds of training, with a checkpoint, exit code 3
    resume: str = ""  # continue the run in this run folder; options not given are the checkpoint's
    save_model: bool = False  # write each seed's final θ and η to <run folder>/seed<N>/model.msgpack
    track: bool = False  # also log to Weights & Biases, one W&B run per seed (requirements-wandb.txt)
    wandb_project_name: str = "meta-gradient-outer-critic"  # the W&B project
    wandb_entity: str = ""  # the W&B entity (team); empty: your default
    # the environment
    mapping_seed: int = 3  # which chain (0..4) pays 1.1 instead of 1.0
    # the inner A2C update
    num_envs: int = 128  # parallel environments per batch (each rollout is one whole 100-step episode)
    true_value: bool = True  # advantages from the true values (the paper's setting); --no-true-value: a learned critic
    learning_rate: float = 0.5  # inner SGD learning rate α
    gae_lambda: float = 0.0  # inner λ
    ent_coef: float = 0.005  # inner entropy coefficient c_EN
    vf_coef: float = 0.5  # value-loss coefficient c_TD of both critic heads (--no-true-value only)
    normalize_advantage: bool = False  # normalise the inner and outer advantages per batch (paper Figure 6)
    # the meta-update
    outer_critic: bool = False  # the outer loss uses V^{π,γ′} (the outer critic), not V^{π,γ} (biased)
    gamma_init: float = 0.95  # initial discount γ(η0), in (0.9, 1.0)
    meta_lr: float = 0.1  # Adam learning rate of η; 0 = A2C (no outer batch, no meta-gradient)
    max_meta_grad_norm: float = math.inf  # global-norm clip of the meta-gradient (inf = none, the paper's)
    outer_gamma: float = 1.0  # outer discount γ′
    outer_gae_lambda: float = 0.0  # outer λ′
    outer_ent_coef: float = 0.005  # outer entropy coefficient c′_EN
    # diagnostics
    measure_bias: bool = False  # also the meta-gradient with the exact V^{π,γ′} and with each head, their signs


# =====================================================================================================
# ALGO LOGIC: the networks, the inner and outer losses, the meta-gradient (paper Section 3, Figure 1)
# =====================================================================================================
def gamma_fn(meta_params):
    """γ(η) = 0.9 + 0.1·sigmoid(η): the chain's γ lives in (0.9, 1) (paper Appendix C)."""
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
    """Dual-head critic (paper Figure 4): the inner head V^γ and the outer head V^γ′, each linear on one
    MLP(64, 64) torso; the outer head reads stop_gradient(torso), so it changes nothing the inner head learns."""

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


def make_train(args: Args, all_parts=False):
    """init(seed) → runner and train(runner, update_indices) → (runner, stacked metrics), one seed each (main vmaps them)."""
    env = common_envs.make_chain(args.mapping_seed, args.num_envs)
    num_steps = common_envs.CHAIN_EPISODE_LENGTH  # one aligned episode per rollout
    rewards = common_envs.chain_rewards(args.mapping_seed)
    s0_obs = jnp.asarray(common_envs.CHAIN_S0_OBS)
    actor = Actor(env.num_actions)
    critic = Critic()
    optimizer = optax.sgd(args.learning_rate)
    # Adam's defaults (eps 1e-8, eps_root 0): the chain's meta-gradients are ~1e-8, Adam's eps shapes the paper's dynamics.
    adam = optax.adam(args.meta_lr)
    meta_optimizer = optax.chain(optax.clip_by_global_norm(args.max_meta_grad_norm), adam)

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
            target_opt_state=(),  # BMG's target optimiser; MG has none
            env_state=env_state,
            obs=obs,
            key=key,
        )

    def pi_s0(params):
        return jax.nn.softmax(actor.apply(params["actor"], s0_obs))

    def rollout(params, env_state, obs, key):
        def env_step(carry, step_key):
            env_state, obs = carry
            action_key, env_key = jax.random.split(step_key)
            action = jax.random.categorical(action_key, actor.apply(params["actor"], obs))
            next_obs, env_state, reward, done, info = env.step(env_key, env_state, action)
            return (env_state, next_obs), Transition(obs=obs, action=action, reward=reward, done=done, **info)

        keys = jax.random.split(key, num_steps)
        (env_state, last_obs), traj = jax.lax.scan(env_step, (env_state, obs), keys)
        return env_state, last_obs, Batch(traj=traj, last_obs=last_obs)

    def baseline_values(params, batch, gamma):
        """(V_inner, V_outer) on s_0..s_T, under stop_gradient: the values the advantages and bootstrap
        targets use. With --true-value they are the oracle V^{π,γ} and V^{π,γ′} of the sampling policy
        (its π(·|s0) and γ fixed); otherwise the critic's two heads."""
        obs = jnp.concatenate([batch.traj.obs, batch.last_obs[None]])
        if args.true_value:
            pi = pi_s0(params)
            inner_values = common_envs.chain_true_value(obs, pi, gamma, rewards)
            outer_values = common_envs.chain_true_value(obs, pi, args.outer_gamma, rewards)
        else:
            inner_values, outer_values = critic.apply(params["critic"], obs)
        return jax.lax.stop_gradient((inner_values, outer_values))

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
        loss = policy_loss - args.ent_coef * entropy
        value_loss = outer_value_loss = jnp.nan
        if not args.true_value:  # with the oracle standing in for it, the critic is not trained (c_TD = 0)
            inner_pred, outer_pred = critic.apply(params["critic"], traj.obs)
            value_loss = jnp.mean((targets - inner_pred) ** 2)
            outer_value_loss = jnp.mean((outer_targets - outer_pred) ** 2)
            loss += args.vf_coef * (value_loss + outer_value_loss)
        return loss, {
            "losses/policy_loss": policy_loss,
            "losses/value_loss": value_loss,
            "losses/outer_value_loss": outer_value_loss,
            "losses/entropy": entropy,
        }

    def inner_update(meta_params, params, opt_state, batch, values):
        """θ′(η) = θ − α ∇θ L_inner(θ, η): differentiable in η (the meta-gradient goes through it)."""
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
        at_s0 = traj.obs[..., 0] < 0  # where the outer advantage decides between the chains
        return loss, {
            "meta/outer_advantage": jnp.mean(advantage),
            "meta/outer_advantage_inner_critic": jnp.mean(inner_critic_advantage),
            "meta/outer_advantage_outer_critic": jnp.mean(outer_critic_advantage),
            "meta/outer_advantage_s0": jnp.sum(jnp.where(at_s0, advantage, 0.0)) / jnp.sum(at_s0),
        }

    def meta_loss_grad(new_params, target_opt_state, outer_batch, outer_values):
        """MG (paper eq. 4): the meta-loss is the outer loss at θ′; returns ∇θ′ of it. target_opt_state
        is BMG's (MG has none): passed through, so that `update` is the same in MG and BMG."""
        (loss, metrics), grads = jax.value_and_grad(outer_loss, has_aux=True)(new_params, outer_batch, outer_values)
        return grads, target_opt_state, metrics | {"losses/meta_loss": loss}

    def meta_gradient_bias(new_params, target_opt_state, outer_batch, outer_values, meta_vjp):
        """The bias, measured (paper eq. 3): the meta-gradient with the exact V^{π,γ′} of θ′ in the outer
        loss (the unbiased one), and with each head's values in its place, all on the same θ′, outer batch
        and target construction; and whether each head's sign is the exact one's (1) or not (0)."""
        obs = jnp.concatenate([outer_batch.traj.obs, outer_batch.last_obs[None]])
        exact = jax.lax.stop_gradient(common_envs.chain_true_value(obs, pi_s0(new_params), args.outer_gamma, rewards))
        metrics = {}
        for name, values in (("exact", exact), ("inner_head", outer_values[0]), ("outer_head", outer_values[1])):
            # (values, values): outer_loss uses these values whichever head --outer-critic chooses
            cotangent, _, _ = meta_loss_grad(new_params, target_opt_state, outer_batch, (values, values))
            metrics[f"meta/meta_grad_{name}"] = meta_vjp(cotangent)
        exact_sign = jnp.sign(metrics["meta/meta_grad_exact"])
        for head in ("inner_head", "outer_head"):
            same_sign = jnp.sign(metrics[f"meta/meta_grad_{head}"]) == exact_sign
            metrics[f"meta/sign_agreement_{head}"] = same_sign.astype(jnp.float32)
        return metrics  # each a chunk mean in the log: a sign agreement is the fraction of the chunk's updates

    def diagnostics(runner, meta_grad, batches):
        """What an update logs besides its losses: γ, the meta-gradient, the policy at s0 and its exact
        expected return, how well the learned outer head knows V^{π,γ′}(s0), the training episodes that
        ended (in every batch) and whether all is finite."""
        policy = pi_s0(runner.params)
        leaves = jax.tree.leaves((runner.params, runner.meta_params, meta_grad))
        outer_critic_v_s0 = jnp.nan if args.true_value else critic.apply(runner.params["critic"], s0_obs)[1]
        return {
            "meta/outer_critic_v_s0": outer_critic_v_s0,
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
        """One meta-update, in the paper's five phases (module docstring)."""
        key_inner, key_outer = jax.random.split(jax.random.fold_in(runner.key, update_index))
        gamma = gamma_fn(runner.meta_params)  # the oracle's γ (--true-value), fixed in both batches
        # 1. INNER STEP θ → θ′(η), on a batch sampled by θ
        env_state, obs, inner_batch = rollout(runner.params, runner.env_state, runner.obs, key_inner)
        inner_values = baseline_values(runner.params, inner_batch, gamma)
        new_params, new_opt_state, metrics, meta_vjp = inner_update_and_vjp(
            runner.meta_params, runner.params, runner.opt_state, inner_batch, inner_values
        )
        # 2. OUTER BATCH, sampled by θ′
        env_state, obs, outer_batch = rollout(new_params, env_state, obs, key_outer)
        outer_values = baseline_values(new_params, outer_batch, gamma)
        # 3. META-LOSS at θ′ and its gradient in θ′
        cotangent, target_opt_state, meta_metrics = meta_loss_grad(
            new_params, runner.target_opt_state, outer_batch, outer_values
        )
        # 4. META-GRADIENT ∂L_meta/∂η, through θ′(η)
        meta_grad = meta_vjp(cotangent)
        if args.measure_bias:  # the same meta-gradient with the exact outer value, and with each head
            metrics |= meta_gradient_bias(new_params, runner.target_opt_state, outer_batch, outer_values, meta_vjp)
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
        return runner, metrics | meta_metrics | diagnostics(runner, meta_grad, [inner_batch, outer_batch])

    def a2c_update(runner: RunnerState, update_index):
        """--meta-lr 0: the inner step alone (γ fixed, no outer batch, no meta-gradient), the baseline."""
        key_inner, _ = jax.random.split(jax.random.fold_in(runner.key, update_index))
        env_state, obs, inner_batch = rollout(runner.params, runner.env_state, runner.obs, key_inner)
        inner_values = baseline_values(runner.params, inner_batch, gamma_fn(runner.meta_params))
        new_params, (new_opt_state, metrics) = inner_update(
            runner.meta_params, runner.params, runner.opt_state, inner_batch, inner_values
        )
        runner = runner._replace(params=new_params, opt_state=new_opt_state, env_state=env_state, obs=obs)
        # The meta-update's metrics that A2C lacks (its outer loss, meta-loss, ...) are nan: the log has the same columns.
        no_meta_update = {name: jnp.nan for name in jax.eval_shape(update, runner, update_index)[1]}
        return runner, no_meta_update | metrics | diagnostics(runner, jnp.zeros(()), [inner_batch])

    def train(runner: RunnerState, update_indices):
        """Runs the updates `update_indices` (a chunk) for one seed; returns stacked metrics."""
        return jax.lax.scan(a2c_update if args.meta_lr == 0 else update, runner, update_indices)

    steps_per_batch = num_steps * args.num_envs  # env steps of one seed's batch (global_step counts the inner ones)
    batches_per_update = 1 if args.meta_lr == 0 else 2  # A2C: the inner batch; MG: inner and outer
    if all_parts:  # for the tests and tools, which check and time the parts one by one: every name above
        return SimpleNamespace(**locals())
    return init, train, steps_per_batch, batches_per_update


# =====================================================================================================
# TRY NOT TO MODIFY: the options' rules and the training loop (common_run holds the rest)
# =====================================================================================================
SCRIPT = os.path.basename(__file__)
ENV_ID = common_envs.CHAIN_ENV_ID
# The state after a chunk (its last value); the other metrics are chunk means.
POLICY_METRICS = tuple(f"policy/p_chain{k}" for k in range(common_envs.CHAIN_NUM_ACTIONS))
LAST_VALUE_METRICS = ("meta/gamma", "meta/outer_critic_v_s0", "meta/true_outer_v_s0", "eval/expected_return", *POLICY_METRICS)


def arg_rules(args: Args):
    """(option, holds, what it must be) for this script's options; common_run checks the run's own."""
    return [
        ("num_updates", args.num_updates >= 1, "must be >= 1"),
        ("num_envs", args.num_envs >= 1, "must be >= 1"),
        ("ent_coef", args.ent_coef >= 0, "must be >= 0"),
        ("vf_coef", args.vf_coef >= 0, "must be >= 0"),
        ("meta_lr", args.meta_lr >= 0, "must be >= 0"),
        ("outer_ent_coef", args.outer_ent_coef >= 0, "must be >= 0"),
        ("learning_rate", args.learning_rate > 0, "must be > 0"),
        ("max_meta_grad_norm", args.max_meta_grad_norm > 0, "must be > 0"),
        ("gae_lambda", 0 <= args.gae_lambda <= 1, "must be in [0, 1]"),
        ("outer_gae_lambda", 0 <= args.outer_gae_lambda <= 1, "must be in [0, 1]"),
        ("mapping_seed", 0 <= args.mapping_seed < common_envs.CHAIN_NUM_ACTIONS, "must be in 0..4"),
        ("gamma_init", 0.9 < args.gamma_init < 1.0, "must be in (0.9, 1.0) for the chain"),
        ("outer_gamma", 0 < args.outer_gamma <= 1, "must be in (0, 1]"),
    ]


def main():
    args, checkpoint = common_run.parse_args(Args, SCRIPT, arg_rules)
    init, train, steps_per_batch, batches_per_update = make_train(args)
    with common_run.Run(args, SCRIPT, ENV_ID, checkpoint, steps_per_batch, batches_per_update) as run:
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
            run.log(updates_done, metrics, LAST_VALUE_METRICS)
            if run.checkpoint_due():
                run.write_checkpoint(updates_done, runner)
        run.finish(updates_done, runner, {"params": runner.params, "meta_params": runner.meta_params})


if __name__ == "__main__":
    common_run.run_main(main)
