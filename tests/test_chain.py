"""The Discounting Chain scripts: environment facts, the true value function, the meta-gradients
against finite differences, the dual head, the direction γ moves, and the training loop's keys and
chunks. (The command line's runs and what they write: test_resume.py and test_run.py.)"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bmg_chain
import common_envs
import common_run
import mg_chain

SCRIPTS = {"mg": mg_chain, "bmg": bmg_chain}


LOG_16 = math.log(16.0)


def prefer_chain0(params, log_odds=LOG_16):
    """π(0 | s0) = 0.8 through the weight on c (a bias would change the policy at every state)."""
    kernel = params["actor"]["params"]["Dense_0"]["kernel"]
    params["actor"]["params"]["Dense_0"]["kernel"] = kernel.at[0, 0].set(-log_odds)
    return params


# --------------------------------------------------------------------------------------------
# Environment facts and the true value function
# --------------------------------------------------------------------------------------------
@functools.cache
def chain_episodes(mapping_seed, num_envs, seed):
    """One program per chain (the policy's logits are its argument): logits -> the observations, rewards and
    dones of one aligned episode in each env."""
    env = common_envs.make_chain(mapping_seed, num_envs)

    @jax.jit
    def episodes(logits):
        key_reset, key_steps = jax.random.split(jax.random.PRNGKey(seed))
        obs, state = env.reset(key_reset)

        def step(carry, key):
            obs, state = carry
            action_key, env_key = jax.random.split(key)
            action = jax.random.categorical(action_key, logits, shape=(num_envs,))
            next_obs, state, reward, done, _ = env.step(env_key, state, action)
            return (next_obs, state), (obs, reward, done)

        keys = jax.random.split(key_steps, common_envs.CHAIN_EPISODE_LENGTH)
        return jax.lax.scan(step, (obs, state), keys)[1]

    return episodes


def monte_carlo_returns(mapping_seed, pi_s0, gamma, num_envs=4096, seed=0):
    """Runs one aligned episode in each env, choosing the chain from pi_s0; returns the
    observations [T, B, 2] and the discounted returns G_t [T, B] (float64, on the host)."""
    observations, rewards, dones = chain_episodes(mapping_seed, num_envs, seed)(jnp.log(pi_s0))
    rewards, dones = np.asarray(rewards, np.float64), np.asarray(dones)
    assert dones[-1].all() and not dones[:-1].any(), "episodes must be exactly 100 steps"
    returns = np.zeros_like(rewards)
    running = np.zeros(num_envs)
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running * (1.0 - dones[t])
        returns[t] = running
    return np.asarray(observations), returns


@pytest.mark.parametrize("mapping_seed", [3, 1])
@pytest.mark.parametrize("pi_s0", [(0.2, 0.2, 0.2, 0.2, 0.2), (0.1, 0.4, 0.05, 0.3, 0.15)])
@pytest.mark.parametrize("gamma", [0.9, 0.99, 1.0])
def test_true_value_matches_monte_carlo(mapping_seed, pi_s0, gamma):
    pi_s0 = jnp.asarray(pi_s0)
    observations, returns = monte_carlo_returns(mapping_seed, pi_s0, gamma)
    rewards = common_envs.chain_rewards(mapping_seed)
    values = np.asarray(common_envs.chain_true_value(jnp.asarray(observations), pi_s0, gamma, rewards))
    # After the choice the return is deterministic: exact.
    np.testing.assert_allclose(values[1:], returns[1:], atol=1e-5)
    # At s0, the value is the expectation over the choice: within 3 standard errors.
    g0 = returns[0]
    assert (observations[0, :, 0] == -1).all()
    standard_error = g0.std() / math.sqrt(len(g0))
    assert abs(values[0, 0] - g0.mean()) < 3 * standard_error, (values[0, 0], g0.mean(), standard_error)
    # The reference's off-by-one exponent at s0 is measurably wrong (at γ = 0.9 it is off by ~10%).
    if gamma == 0.9:
        wrong = float(jnp.sum(pi_s0 * rewards * gamma ** jnp.asarray(common_envs.CHAIN_DELAYS, float)))
        assert abs(wrong - g0.mean()) > 3 * standard_error


def test_rewards_follow_mapping_seed():
    for m in range(5):
        rewards = np.asarray(common_envs.chain_rewards(m))
        assert rewards[m] == pytest.approx(1.1) and np.sum(rewards == 1.0) == 4
    with pytest.raises(ValueError, match="mapping_seed must be in 0..4, got 7"):
        common_envs.make_chain(7, 4)


def test_last_step_is_terminal_and_bootstraps_nothing():
    args = mg_chain.Args(num_envs=8, true_value=False)
    fns = mg_chain.make_train(args, all_parts=True)
    runner = jax.jit(fns.init)(0)
    _, _, batch = jax.jit(fns.rollout)(runner.params, runner.env_state, runner.obs, jax.random.PRNGKey(1))
    traj = batch.traj
    assert traj.done[-1].all() and not traj.done[:-1].any()
    # gymnax returns the next episode's s0 after the 100th step: its value is not zero...
    np.testing.assert_array_equal(batch.last_obs, np.tile([-1.0, 0.0], (8, 1)))
    gamma = 0.95

    @jax.jit  # one program, not one per operation
    def values_and_targets(params, batch):
        true_value = common_envs.chain_true_value(
            jnp.concatenate([batch.traj.obs, batch.last_obs[None]]), fns.pi_s0(params), gamma, common_envs.chain_rewards(3)
        )
        learned = fns.baseline_values(params, batch, gamma)[0]
        targets = [mg_chain.gae(traj.reward, traj.done, v, gamma, lam)[1] for v in (true_value, learned) for lam in (0.0, 0.9)]
        return (true_value, learned), targets

    (true_value, learned), targets = values_and_targets(runner.params, batch)
    for inner_values in (true_value, learned):
        assert np.all(np.asarray(inner_values[-1]) != 0.0)
    # ...but the target of the last step is the last reward alone (λ = 0 and 0.9).
    for target in targets:
        np.testing.assert_allclose(target[-1], traj.reward[-1], atol=1e-7)


# --------------------------------------------------------------------------------------------
# Meta-gradients against finite differences of the surrogate (float64)
# --------------------------------------------------------------------------------------------
def meta_gradient_setup(module, **overrides):
    """Fixed inner and outer batches and every stop_gradient quantity held at η0 (the surrogate)."""
    args = dataclasses.replace(module.Args(), num_envs=16, **overrides)
    to64 = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float64), tree)
    to32 = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float32), tree)
    # gymnax's environment is float32 and int32: it is built and the batches sampled without x64
    # (under x64 it would scatter float64 into its float32 observation, an error in future JAX).
    # Each step is jitted: run op by op, float64 would compile every operation on its own (~30 s).
    with jax.enable_x64(False):
        fns = module.make_train(args, all_parts=True)
        runner = jax.jit(fns.init)(0)
        params32 = prefer_chain0(runner.params)
        env_state, obs, inner_batch = jax.jit(fns.rollout)(params32, runner.env_state, runner.obs, jax.random.PRNGKey(1))
    params = to64(params32)
    eta0 = jnp.asarray(module.gamma_inverse(0.97), jnp.float64)
    inner_values = jax.jit(fns.baseline_values)(params, inner_batch, module.gamma_fn(eta0))
    opt_state = to64(runner.opt_state)
    new_params_of = jax.jit(lambda eta: fns.inner_update(eta, params, opt_state, inner_batch, inner_values))
    new_params0, (new_opt_state0, _) = new_params_of(eta0)
    with jax.enable_x64(False):
        _, _, outer_batch = jax.jit(fns.rollout)(to32(new_params0), env_state, obs, jax.random.PRNGKey(2))
    outer_values = jax.jit(fns.baseline_values)(new_params0, outer_batch, module.gamma_fn(eta0))

    # The meta-gradient exactly as the script's update computes it: vjp of θ′(η) (its actor
    # part), cotangent from the meta-loss, which must not depend on the critic part of θ′.
    @jax.jit
    def autodiff_of(eta):
        new_params, _, _, meta_vjp = fns.inner_update_and_vjp(eta, params, opt_state, inner_batch, inner_values)
        cotangent, _, _ = fns.meta_loss_grad(new_params, runner.target_opt_state, outer_batch, outer_values)
        return meta_vjp(cotangent), cotangent["critic"]

    autodiff, critic_cotangent = autodiff_of(eta0)
    assert all(np.all(leaf == 0) for leaf in jax.tree.leaves(critic_cotangent))
    return fns, eta0, new_params_of, new_params0, new_opt_state0, outer_batch, outer_values, float(autodiff)


def central_difference(loss, eta0, h=0.1):
    """Central differences at h and h/2, Richardson-extrapolated: the O(h²) terms cancel. The
    meta-gradients are ~1e-8..1e-10 and the losses are sums of terms ~1 (log-probabilities), so
    float64 rounding (~eps·1/h) needs a large h; a plain central difference then has a truncation
    error of ~1e-4 relative or more (BMG + outer critic: 6e-3 at h = 0.1, 2e-4 at h = 3e-3, and
    rounding-dominated below), the extrapolated one ~1e-6 (checked from h = 1e-1 to 1e-4)."""
    difference = lambda h: (float(loss(eta0 + h)) - float(loss(eta0 - h))) / (2 * h)
    return (4 * difference(h / 2) - difference(h)) / 3


@pytest.mark.parametrize("true_value", [True, False])
@pytest.mark.parametrize("outer_critic", [False, True])
def test_mg_meta_gradient_matches_finite_difference(outer_critic, true_value):
    with jax.enable_x64(True):
        fns, eta0, new_params_of, _, _, outer_batch, outer_values, autodiff = meta_gradient_setup(
            mg_chain, outer_critic=outer_critic, true_value=true_value
        )
        surrogate = jax.jit(lambda eta: fns.outer_loss(new_params_of(eta)[0], outer_batch, outer_values)[0])
        numeric = central_difference(surrogate, eta0)
    assert autodiff != 0.0
    assert abs(autodiff - numeric) < 1e-4 * abs(numeric), (autodiff, numeric)


@pytest.mark.parametrize("outer_critic", [False, True])
def test_bmg_meta_gradient_matches_finite_difference(outer_critic):
    with jax.enable_x64(True):
        fns, eta0, new_params_of, new_params0, new_opt_state0, outer_batch, outer_values, autodiff = meta_gradient_setup(
            bmg_chain, outer_critic=outer_critic
        )
        # The target θ̃ is held at its η0 value: one SGD step on the outer loss from θ′(η0).
        grads = jax.grad(lambda p: fns.outer_loss(p, outer_batch, outer_values)[0])(new_params0)
        target = jax.tree.map(lambda p, g: p - 0.5 * g, new_params0, grads)
        s0 = jnp.asarray(common_envs.CHAIN_S0_OBS)
        target_log_pi = jnp.log(fns.pi_s0(target))

        def matching_loss(eta):
            log_pi = jnp.log(fns.pi_s0(new_params_of(eta)[0]))
            return jnp.sum(jnp.exp(target_log_pi) * (target_log_pi - log_pi))

        assert s0.shape == (2,)
        numeric = central_difference(jax.jit(matching_loss), eta0)
    assert autodiff != 0.0
    assert abs(autodiff - numeric) < 1e-4 * abs(numeric), (autodiff, numeric)


# --------------------------------------------------------------------------------------------
# The bias, measured (--measure-bias): each head's meta-gradient beside the exact one
# --------------------------------------------------------------------------------------------
def test_exact_meta_gradient_is_unbiased_for_the_true_outer_objective():
    """The definition used for "exact": the meta-gradient of the outer loss with the exact V^{π,γ′} of θ′
    standing in for the critic. With γ′ = 1, λ′ = 0 and c′_EN = 0, its mean over outer batches must be
    −(1/T) dJ(θ′(η))/dη, J = Σ_a π_θ′(a|s0) ρ_a the true outer objective (the outer loss averages over the
    T = 100 steps of an episode, and with exact values only s0's advantage is non-zero): here J's
    derivative is a finite difference, the mean over 128 outer batches of 16 episodes is within 3 SE."""
    with jax.enable_x64(True):
        fns, eta0, new_params_of, new_params0, _, _, _, _ = meta_gradient_setup(
            mg_chain, outer_ent_coef=0.0, measure_bias=True
        )
        with jax.enable_x64(False):
            runner = jax.jit(fns.init)(0)
            actor32 = jax.tree.map(lambda x: x.astype(jnp.float32), new_params0)
            sample = lambda key: fns.rollout(actor32, runner.env_state, runner.obs, key)[2]
            outer_batches = jax.vmap(sample)(jax.random.split(jax.random.PRNGKey(3), 128))
        _, actor_vjp = jax.vjp(lambda eta: new_params_of(eta)[0]["actor"], eta0)
        meta_vjp = lambda cotangent: actor_vjp(cotangent["actor"])[0]

        def exact_meta_grad(batch):
            values = fns.baseline_values(new_params0, batch, mg_chain.gamma_fn(eta0))
            return fns.meta_gradient_bias(new_params0, (), batch, values, meta_vjp)["meta/meta_grad_exact"]

        exact = np.asarray(jax.jit(jax.vmap(exact_meta_grad))(outer_batches))
        rewards = common_envs.chain_rewards(3).astype(jnp.float64)
        objective = jax.jit(lambda eta: jnp.sum(fns.pi_s0(new_params_of(eta)[0]) * rewards))
        expected = -central_difference(objective, eta0) / common_envs.CHAIN_EPISODE_LENGTH
    standard_error = exact.std(ddof=1) / math.sqrt(len(exact))
    assert expected != 0.0 and standard_error < 0.2 * abs(expected), (expected, standard_error)
    assert abs(exact.mean() - expected) < 3 * standard_error, (exact.mean(), expected, standard_error)


@functools.cache
def measured_updates(module_name, **overrides):
    """Three updates' stacked metrics of one seed with --measure-bias (the oracle values: --true-value)."""
    module = {"mg_chain": mg_chain, "bmg_chain": bmg_chain}[module_name]
    fns = module.make_train(module.Args(num_envs=16, measure_bias=True, **overrides), all_parts=True)
    _, metrics = jax.jit(fns.train)(fns.init(0), jnp.arange(3))
    return jax.device_get(metrics)


def test_with_the_oracle_the_outer_heads_meta_gradient_is_the_exact_one_and_the_update_uses_it():
    metrics = measured_updates("mg_chain", outer_critic=True)
    # the oracle's outer head is V^{π,γ′} of θ′ itself: the same quantity, bit for bit
    np.testing.assert_array_equal(metrics["meta/meta_grad_outer_head"], metrics["meta/meta_grad_exact"])
    np.testing.assert_array_equal(metrics["meta/meta_grad"], metrics["meta/meta_grad_outer_head"])
    np.testing.assert_array_equal(metrics["meta/sign_agreement_outer_head"], 1.0)
    assert np.all(metrics["meta/meta_grad_inner_head"] != metrics["meta/meta_grad_exact"])  # γ < γ′: biased


def test_bmg_without_the_outer_critic_uses_the_inner_head_which_is_exact_when_gamma_is_outer_gamma():
    # γ = γ′ (η barely moves): V^{π,γ} is V^{π,γ′}, so the inner head is unbiased too, target included
    metrics = measured_updates("bmg_chain", outer_critic=False, gamma_init=0.95, outer_gamma=0.95, meta_lr=1e-12)
    np.testing.assert_array_equal(metrics["meta/meta_grad"], metrics["meta/meta_grad_inner_head"])
    np.testing.assert_allclose(metrics["meta/meta_grad_inner_head"], metrics["meta/meta_grad_exact"], rtol=1e-5)
    assert np.all(metrics["meta/meta_grad_exact"] != 0.0)


def test_sign_agreement_is_the_fraction_of_a_chunks_updates():
    metrics = measured_updates("mg_chain", outer_critic=True)
    same_sign = np.sign(metrics["meta/meta_grad_inner_head"]) == np.sign(metrics["meta/meta_grad_exact"])
    np.testing.assert_array_equal(metrics["meta/sign_agreement_inner_head"], same_sign.astype(np.float32))
    row = common_run.summarize({k: v[None] for k, v in metrics.items()}, 0, 3, 1600, mg_chain.LAST_VALUE_METRICS)
    assert row["meta/sign_agreement_inner_head"] == pytest.approx(same_sign.mean())


# --------------------------------------------------------------------------------------------
# The dual-head critic (--no-true-value)
# --------------------------------------------------------------------------------------------
def test_outer_head_does_not_shape_the_torso():
    critic = mg_chain.Critic()
    obs = jnp.stack([jnp.arange(-1, 4, dtype=jnp.float32), jnp.linspace(0, 0.5, 5)], axis=-1)
    params = jax.jit(critic.init)(jax.random.PRNGKey(0), obs)
    targets = jnp.linspace(0.2, 1.0, 5)

    def head_losses(params):
        inner, outer = critic.apply(params, obs)
        return jnp.mean((targets - inner) ** 2), jnp.mean((1.1 - outer) ** 2)

    # One program (op by op, each operation would compile on its own).
    outer_grads, inner_only, both = jax.jit(
        lambda p: [
            jax.grad(loss)(p)["params"]
            for loss in (lambda p: head_losses(p)[1], lambda p: head_losses(p)[0], lambda p: sum(head_losses(p)))
        ]
    )(params)
    for layer in ("Dense_0", "Dense_1", "Dense_2"):  # the torso and the inner head
        for leaf in jax.tree.leaves(outer_grads[layer]):
            assert np.all(np.asarray(leaf) == 0.0)
    assert np.any(np.asarray(outer_grads["Dense_3"]["kernel"]) != 0.0)
    # The inner head's update is the same with and without the outer head's loss.
    for layer in ("Dense_0", "Dense_1", "Dense_2"):
        jax.tree.map(np.testing.assert_array_equal, inner_only[layer], both[layer])


# --------------------------------------------------------------------------------------------
# The headline: which way γ moves, from a policy that prefers chain 0
# --------------------------------------------------------------------------------------------
@functools.cache
def mean_meta_gradient(script, outer_critic, outer_ent_coef, num_batches=64):
    module = SCRIPTS[script]
    args = dataclasses.replace(module.Args(), outer_critic=outer_critic, outer_ent_coef=outer_ent_coef, gamma_init=0.95)
    fns = module.make_train(args, all_parts=True)
    runner = fns.init(0)
    runner = runner._replace(params=prefer_chain0(runner.params))
    one_update = lambda i: fns.train(runner, i[None])[1]["meta/meta_grad"][0]
    grads = np.asarray(jax.jit(jax.vmap(one_update))(jnp.arange(num_batches)), np.float64)
    return grads.mean(), grads.std() / math.sqrt(num_batches)


# The default outer entropy bonus in the fast tier; without it (the bonus's part ruled out) in the whole suite.
@pytest.mark.parametrize("outer_ent_coef", [0.005, pytest.param(0.0, marks=pytest.mark.slow)])
@pytest.mark.parametrize("script", ["mg", "bmg"])
def test_outer_critic_reverses_the_direction_of_gamma(script, outer_ent_coef):
    """Adam descends the meta-gradient: a negative mean meta-gradient raises γ."""
    biased, biased_se = mean_meta_gradient(script, False, outer_ent_coef)
    debiased, debiased_se = mean_meta_gradient(script, True, outer_ent_coef)
    assert biased > 3 * biased_se, ("without the outer critic γ must fall", biased, biased_se)
    assert debiased < -3 * debiased_se, ("with the outer critic γ must rise", debiased, debiased_se)


# --------------------------------------------------------------------------------------------
# Training loop: A2C baseline, seeds, chunks
# --------------------------------------------------------------------------------------------
def test_meta_lr_zero_keeps_gamma_exactly():
    args = mg_chain.Args(num_envs=8, meta_lr=0.0, gamma_init=0.97)
    fns = mg_chain.make_train(args, all_parts=True)
    runner = fns.init(0)
    new_runner, metrics = jax.jit(fns.train)(runner, jnp.arange(3))
    assert new_runner.meta_params == runner.meta_params
    np.testing.assert_array_equal(metrics["meta/gamma"], mg_chain.gamma_fn(runner.meta_params))
    np.testing.assert_array_equal(metrics["meta/meta_grad"], 0.0)
    assert np.all(np.isnan(metrics["meta/outer_advantage"]))  # no outer batch was sampled


@pytest.mark.slow  # a claim about the run machinery, not the mathematics: the whole suite
def test_a_vmapped_seed_draws_the_keys_of_the_seed_alone_and_chunks_do_not_matter():
    fns = mg_chain.make_train(mg_chain.Args(num_envs=8, outer_critic=True), all_parts=True)
    train = jax.jit(jax.vmap(fns.train, in_axes=(0, None)))
    one_seed = jax.jit(fns.init)  # the init other tests load from the compilation cache, stacked over the seeds
    init = lambda seeds: jax.tree.map(lambda *leaves: jnp.stack(leaves), *[one_seed(int(s)) for s in seeds])
    both, metrics_both = train(init(jnp.array([0, 1])), jnp.arange(4))
    one_chunk, metrics_one_chunk = train(init(jnp.array([1])), jnp.arange(4))
    two_chunks, _ = train(init(jnp.array([1])), jnp.arange(2))
    compiled_before = train._cache_size()
    two_chunks, metrics_two_chunks = train(two_chunks, jnp.arange(2, 4))
    # The runner state that comes out has the types that went in: the second chunk compiles nothing.
    assert train._cache_size() == compiled_before
    # Keys depend on (seed, update index) alone: the chunking changes nothing, bit for bit.
    jax.tree.map(np.testing.assert_array_equal, one_chunk, two_chunks)
    np.testing.assert_array_equal(metrics_one_chunk["meta/gamma"][0, 2:], metrics_two_chunks["meta/gamma"][0])
    # Seed 1 of a vmapped pair draws the keys of seed 1 alone: over 4 updates it samples the same episodes
    # (only float32 summation order differs with the batch shape; over hundreds of updates that rounding
    # flips an action and the runs part, which is why no test claims more).
    np.testing.assert_array_equal(metrics_both["episodes/return_sum"][1], metrics_one_chunk["episodes/return_sum"][0])
    np.testing.assert_allclose(metrics_both["meta/gamma"][1], metrics_one_chunk["meta/gamma"][0], rtol=1e-6)
    assert not np.allclose(metrics_both["meta/gamma"][0], metrics_both["meta/gamma"][1])


@pytest.mark.parametrize("module", [mg_chain, bmg_chain])
def test_normalize_advantage_normalises_the_inner_advantage_with_fixed_statistics(module):
    # As the reference's one `normalise` flag: the inner policy loss uses (A − mean) / std of the
    # batch, the statistics under stop_gradient, so A's derivative in γ (the meta-gradient's
    # path) is scaled by 1 / std, not removed.
    fns = module.make_train(module.Args(num_envs=16, normalize_advantage=True), all_parts=True)
    runner = jax.jit(fns.init)(0)
    params = prefer_chain0(runner.params)
    _, _, batch = jax.jit(fns.rollout)(params, runner.env_state, runner.obs, jax.random.PRNGKey(1))
    traj = batch.traj

    def by_hand(gamma, statistics=None):
        values = fns.baseline_values(params, batch, 0.95)
        advantages, _ = module.gae(traj.reward, traj.done, values[0], gamma, 0.0)
        mean, std = statistics or (jnp.mean(advantages), jnp.std(advantages))
        log_prob = jax.nn.log_softmax(module.Actor(5).apply(params["actor"], traj.obs))
        log_prob = jnp.take_along_axis(log_prob, traj.action[..., None], axis=-1)[..., 0]
        return -jnp.mean((advantages - mean) / jnp.sqrt(std**2 + 1e-5) * log_prob), (mean, std)

    loss = lambda gamma: fns.inner_loss(params, batch, fns.baseline_values(params, batch, 0.95), gamma)[1][
        "losses/policy_loss"
    ]
    expected, statistics = jax.jit(by_hand)(0.95)
    assert float(jax.jit(loss)(0.95)) == pytest.approx(float(expected), rel=1e-5)
    held = jax.jit(jax.grad(lambda g: by_hand(g, jax.lax.stop_gradient(statistics))[0]))(0.95)
    assert float(held) != 0.0
    assert float(jax.jit(jax.grad(loss))(0.95)) == pytest.approx(float(held), rel=1e-4)
