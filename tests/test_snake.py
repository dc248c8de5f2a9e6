"""The Snake scripts: the environment, GAE, the patch convolutions, the dual-head critic, the
meta-gradients against finite differences, and the reference's configuration."""

from types import SimpleNamespace

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bmg_snake
import common_envs
import mg_snake

KEY = jax.random.PRNGKey(4)  # the key of BMG's matching batch (MG's meta-loss takes none)
RNG = np.random.default_rng(0)  # test inputs (jax.random would compile a program for each shape)


def avals(tree):
    return jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), tree)


# --------------------------------------------------------------------------------------------
# Environment facts
# --------------------------------------------------------------------------------------------
def run_policy(policy, num_envs, num_steps, seed=0):
    """Steps `num_envs` Snakes with `policy(jumanji state) -> action`; returns the first state,
    the last state and the per-step (obs, reward, done, info) stacked over time."""
    env = common_envs.make_snake(num_envs)

    def step(carry, key):
        obs, state = carry
        next_obs, state, reward, done, info = env.step(key, state, policy(state.env_state))
        return (next_obs, state), (next_obs, reward, done, info)

    @jax.jit  # the reset and the steps in one program
    def run():
        obs, state = env.reset(jax.random.PRNGKey(seed))
        keys = jax.random.split(jax.random.PRNGKey(seed + 1), num_steps)
        (_, last_state), out = jax.lax.scan(step, (obs, state), keys)
        return obs, state, last_state, out

    obs, state, last_state, out = run()
    return obs, state, last_state, jax.device_get(out)


def circle_in_block(env_state):
    """Goes round the head's 2×2 block (right, down, left, up): never dies, and the block holds
    at most 3 fruits, so the snake never outgrows it."""
    row, col = env_state.head_position.row % 2, env_state.head_position.col % 2
    return jnp.where(row == 0, jnp.where(col == 0, 1, 2), jnp.where(col == 1, 3, 0))


def test_time_limit_ends_the_episode_after_500_steps():
    obs, state, last_state, (next_obs, reward, done, info) = run_policy(circle_in_block, 64, 501)
    assert obs.shape == (64, *common_envs.SNAKE_OBS_SHAPE) and obs.dtype == jnp.float32
    # The 500th step ends every episode; jumanji gives it discount 0 (termination), and so do we.
    assert not done[:499].any() and done[499].all() and not done[500].any()
    np.testing.assert_array_equal(info["episode_length"][499], 500)
    np.testing.assert_array_equal(info["episode_return"][499], reward[:500].sum(axis=0))
    assert reward[:500].sum() > 0 and np.all(reward[:500].sum(axis=0) <= 3)  # some fruit lie in a block
    # After it the env has reset: the observation is a new length-1 snake.
    np.testing.assert_array_equal(next_obs[499][..., 0].sum(axis=(1, 2)), 1.0)
    # Every state leaf keeps its dtype (a weak type would recompile every chunk after the first).
    assert avals(state) == avals(last_state)


def test_leaving_the_board_ends_the_episode():
    obs, state, _, (_, _, done, info) = run_policy(lambda s: jnp.zeros_like(s.length), 16, 7)  # up
    rows = np.asarray(state.env_state.head_position.row)
    first_done = np.argmax(done, axis=0)
    # Moving up from row r leaves the board on the (r + 1)-th step, fruit eaten or not.
    np.testing.assert_array_equal(first_done, rows)
    np.testing.assert_array_equal(info["episode_length"][first_done, np.arange(16)], rows + 1)


# --------------------------------------------------------------------------------------------
# GAE
# --------------------------------------------------------------------------------------------
def test_gae_by_hand_with_a_terminal_in_the_middle_and_a_bootstrap_at_the_end():
    rewards = jnp.array([[1.0], [0.0], [2.0]])
    dones = jnp.array([[False], [True], [False]])
    values = jnp.array([[0.5], [1.0], [0.2], [0.7]])  # the last row is V(s_T), the bootstrap
    advantages, targets = mg_snake.gae(rewards, dones, values, 0.9, 0.5)
    # t = 2: δ = 2 + 0.9·0.7 − 0.2 = 2.43 (bootstraps from s_T)
    # t = 1: the episode ends: δ = 0 − 1.0, and nothing of t = 2 flows back
    # t = 0: δ = 1 + 0.9·1.0 − 0.5 = 1.4; A = 1.4 + 0.9·0.5·(−1.0) = 0.95
    np.testing.assert_allclose(advantages[:, 0], [0.95, -1.0, 2.43], rtol=1e-6)
    np.testing.assert_allclose(targets[:, 0], [1.45, 0.0, 2.63], rtol=1e-6)


def test_gae_gradient_in_gamma_matches_finite_difference():
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.PRNGKey(0), 3)
        rewards = jax.random.bernoulli(keys[0], 0.3, (5, 8)).astype(jnp.float64)
        dones = jax.random.bernoulli(keys[1], 0.2, (5, 8))
        values = jax.random.uniform(keys[2], (6, 8), jnp.float64)
        weights = jnp.linspace(-1.0, 2.0, 40).reshape(5, 8)
        loss = lambda gamma: jnp.sum(weights * mg_snake.gae(rewards, dones, values, gamma, 0.95)[0])
        autodiff = float(jax.grad(loss)(0.8))
        h = 1e-5
        numeric = (float(loss(0.8 + h)) - float(loss(0.8 - h))) / (2 * h)
    assert autodiff != 0.0
    assert abs(autodiff - numeric) < 1e-7 * abs(numeric), (autodiff, numeric)


# --------------------------------------------------------------------------------------------
# The convolutions as matmuls over patches
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stride, shape", [(2, (6, 6, 5)), (1, (3, 3, 32))])
def test_patch_convolution_equals_nn_conv(stride, shape):
    x = jnp.asarray(RNG.normal(size=(4, 3, *shape)), jnp.float32)  # two batch dimensions
    ours = common_envs.Conv2x2(32, stride=stride, kernel_init=mg_snake.HAIKU_INIT)
    conv = nn.Conv(32, (2, 2), strides=stride, padding="SAME", kernel_init=mg_snake.HAIKU_INIT)
    params = conv.init(jax.random.PRNGKey(1), x)
    # The same parameters, initialised identically.
    jax.tree.map(np.testing.assert_array_equal, ours.init(jax.random.PRNGKey(1), x), params)
    params = jax.tree.map(lambda p: p + 0.1, params)  # a non-zero bias too
    np.testing.assert_allclose(ours.apply(params, x), conv.apply(params, x), atol=1e-5)
    if stride == 1:  # the side SAME pads on matters: padding top/left gives other numbers
        top_left = nn.Conv(32, (2, 2), strides=1, padding=((1, 0), (1, 0)))
        assert not np.allclose(ours.apply(params, x), top_left.apply(params, x), atol=1e-2)


def test_torso_equals_the_nn_conv_torso():
    class ConvTorso(nn.Module):
        @nn.compact
        def __call__(self, obs):
            x = nn.relu(nn.Conv(32, (2, 2), strides=2, name="Conv2x2_0")(obs))
            x = nn.relu(nn.Conv(32, (2, 2), strides=1, padding="SAME", name="Conv2x2_1")(x))
            return x.reshape(*x.shape[:-3], -1)

    obs = jnp.asarray(RNG.uniform(size=(5, 7, *common_envs.SNAKE_OBS_SHAPE)), jnp.float32)
    params = mg_snake.Torso().init(jax.random.PRNGKey(1), obs)
    features = mg_snake.Torso().apply(params, obs)
    assert features.shape == (5, 7, 288)
    np.testing.assert_allclose(features, ConvTorso().apply(params, obs), atol=1e-5)


# --------------------------------------------------------------------------------------------
# The dual-head critic
# --------------------------------------------------------------------------------------------
def test_outer_head_does_not_shape_the_critic_torso():
    critic = mg_snake.Critic()
    obs = jnp.asarray(RNG.uniform(size=(10, *common_envs.SNAKE_OBS_SHAPE)), jnp.float32)
    # The critic's θ as the scripts' init makes it (a program other tests load from the compilation cache).
    params = jax.jit(mg_snake.make_train(mg_snake.Args(num_envs=8), all_parts=True).init)(0).params["critic"]
    targets = jnp.linspace(0.2, 1.0, 10)
    # The inner critic's update (RMSProp, as in the scripts) with and without the outer head's loss.
    optimizer = optax.rmsprop(5e-4, decay=0.9)

    def head_losses(params):
        inner, outer = critic.apply(params, obs)
        return jnp.mean((targets - inner) ** 2), jnp.mean((3.0 - outer) ** 2)

    @jax.jit  # one program, not one per operation
    def gradients_and_updates(params):
        opt_state = optimizer.init(params)
        inner_only = optimizer.update(jax.grad(lambda p: head_losses(p)[0])(params), opt_state, params)[0]
        both = optimizer.update(jax.grad(lambda p: sum(head_losses(p)))(params), opt_state, params)[0]
        return jax.grad(lambda p: head_losses(p)[1])(params)["params"], inner_only, both

    outer_grads, inner_only, both = gradients_and_updates(params)
    for module in ("torso", "inner_head"):
        for leaf in jax.tree.leaves(outer_grads[module]):
            assert np.all(np.asarray(leaf) == 0.0)
    assert all(np.any(np.asarray(leaf) != 0.0) for leaf in jax.tree.leaves(outer_grads["outer_head"]))
    # The inner critic's update is the same with and without the outer head's loss.
    for module in ("torso", "inner_head"):
        jax.tree.map(np.testing.assert_array_equal, inner_only["params"][module], both["params"][module])


# --------------------------------------------------------------------------------------------
# Meta-gradients against finite differences of the surrogate (float64)
# --------------------------------------------------------------------------------------------
def meta_gradient_setup(module, outer_critic):
    """Fixed inner and outer batches and every stop_gradient quantity held at η0 (the surrogate), from a
    θ one RMSProp step in, so the second-moment estimate is not zero (BMG's target optimiser
    too). Call under enable_x64."""
    args = module.Args(num_envs=8, num_steps=5, total_timesteps=40, outer_critic=outer_critic)
    fns = module.make_train(args, all_parts=True)
    # The scripts' float32 init (a program other tests load from the compilation cache), each leaf then
    # given the type the same init has under x64 (jumanji's integers are int64 there).
    with jax.enable_x64(False):
        runner = jax.jit(fns.init)(0)
    runner = jax.tree.map(lambda x, like: x.astype(like.dtype), runner, jax.eval_shape(fns.init, 0))
    to64 = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float64), tree)
    params, opt_state = to64(runner.params), to64(runner.opt_state)
    eta0 = jnp.asarray(module.gamma_inverse(0.9), jnp.float64)

    @jax.jit  # exactly as the script's update: vjp of θ′(η) (its actor part), cotangent from the meta-loss at θ′
    def meta_step(params, opt_state, target_opt_state, inner_batch, inner_values, outer_batch, outer_values, envs):
        new_params, new_opt_state, _, meta_vjp = fns.inner_update_and_vjp(eta0, params, opt_state, inner_batch, inner_values)
        cotangent, target_opt_state, _, meta_batches, _ = fns.meta_loss_grad(
            new_params, target_opt_state, outer_batch, outer_values, envs, KEY
        )
        return (meta_vjp(cotangent), cotangent["critic"], meta_batches), (new_params, new_opt_state, target_opt_state)

    # Each part jitted: run op by op, float64 would compile every operation on its own.
    rollout, baseline_values = jax.jit(fns.rollout), jax.jit(fns.baseline_values)
    env_state, obs, batch = rollout(params, runner.env_state, runner.obs, jax.random.PRNGKey(1))
    values = baseline_values(params, batch)
    # The first step (the same program): θ, its optimiser state and BMG's target optimiser state move once.
    envs = (runner.env_state, runner.obs)
    _, (params, opt_state, target_opt_state) = meta_step(
        params, opt_state, to64(runner.target_opt_state), batch, values, batch, values, envs
    )
    env_state, obs, inner_batch = rollout(params, env_state, obs, jax.random.PRNGKey(2))
    inner_values = baseline_values(params, inner_batch)

    def new_params_of(eta):
        return fns.inner_update(eta, params, opt_state, inner_batch, inner_values)

    # θ′(η0), from the same program (its meta-loss, on the inner batch here, is not used)
    _, (new_params0, _, _) = meta_step(
        params, opt_state, target_opt_state, inner_batch, inner_values, inner_batch, inner_values, envs
    )
    env_state, obs, outer_batch = rollout(new_params0, env_state, obs, jax.random.PRNGKey(3))
    outer_values = baseline_values(new_params0, outer_batch)
    envs = (env_state, obs)  # where the outer batch left the environments: BMG's matching batch starts here
    (meta_gradient, critic_cotangent, meta_batches), _ = meta_step(
        params, opt_state, target_opt_state, inner_batch, inner_values, outer_batch, outer_values, envs
    )
    # The meta-loss must not depend on the critic part of θ′: that is what lets the update skip it.
    assert all(np.all(leaf == 0) for leaf in jax.tree.leaves(critic_cotangent))
    setup = dict(new_params_of=new_params_of, new_params0=new_params0, target_opt_state=target_opt_state, envs=envs)
    setup |= dict(outer_batch=outer_batch, outer_values=outer_values, meta_batches=meta_batches)
    return fns, eta0, SimpleNamespace(**setup), float(meta_gradient)


def central_difference(loss, eta0, h=1e-4):
    return (float(loss(eta0 + h)) - float(loss(eta0 - h))) / (2 * h)


@pytest.mark.parametrize("outer_critic", [False, True])
def test_mg_meta_gradient_matches_finite_difference(outer_critic):
    with jax.enable_x64(True):
        fns, eta0, s, autodiff = meta_gradient_setup(mg_snake, outer_critic)
        surrogate = jax.jit(lambda eta: fns.outer_loss(s.new_params_of(eta)[0], s.outer_batch, s.outer_values))
        numeric = central_difference(lambda eta: surrogate(eta)[0], eta0)
        metrics = surrogate(eta0)[1]
    assert autodiff != 0.0
    assert abs(autodiff - numeric) < 1e-4 * abs(numeric), (autodiff, numeric)
    assert s.meta_batches == []  # MG samples no batch of its own
    # The advantage the outer loss uses is the outer head's with --outer-critic, else the inner head's.
    used = "meta/outer_advantage_outer_critic" if outer_critic else "meta/outer_advantage_inner_critic"
    assert float(metrics["meta/outer_advantage"]) == float(metrics[used])
    assert float(metrics["meta/outer_advantage_outer_critic"]) != float(metrics["meta/outer_advantage_inner_critic"])


def bmg_target(fns, s, learning_rate=5e-4):
    """θ̃ held at its η0 value: one RMSProp step on the outer loss from θ′(η0), with the target's own
    optimiser state (not θ′'s)."""

    @jax.jit
    def target(new_params0, outer_batch, outer_values, target_opt_state):
        grads = jax.grad(lambda p: fns.outer_loss(p, outer_batch, outer_values)[0])(new_params0)
        updates, _ = optax.rmsprop(learning_rate, decay=0.9).update(grads, target_opt_state, new_params0)
        return optax.apply_updates(new_params0, updates)

    return target(s.new_params0, s.outer_batch, s.outer_values, s.target_opt_state)


def test_bmg_meta_gradient_matches_finite_difference():
    # One variant: --outer-critic only picks the advantage inside the target, held fixed here.
    with jax.enable_x64(True):
        fns, eta0, s, autodiff = meta_gradient_setup(bmg_snake, outer_critic=True)
        actor = bmg_snake.Actor(common_envs.SNAKE_NUM_ACTIONS)
        (matching_batch,) = s.meta_batches
        target_pi = jax.jit(lambda p, obs: jax.nn.softmax(actor.apply(p, obs)))(
            bmg_target(fns, s)["actor"], matching_batch.traj.obs
        )

        def matching_loss(eta):  # KL(π_θ̃ ‖ π_θ′(η)) averaged over the matching batch's states
            log_pi = jax.nn.log_softmax(actor.apply(s.new_params_of(eta)[0]["actor"], matching_batch.traj.obs))
            return jnp.mean(jnp.sum(target_pi * (jnp.log(target_pi) - log_pi), axis=-1))

        numeric = central_difference(jax.jit(matching_loss), eta0)
    assert autodiff != 0.0
    assert abs(autodiff - numeric) < 1e-4 * abs(numeric), (autodiff, numeric)


def test_bmg_matching_batch_is_sampled_by_the_target_from_where_the_outer_batch_ends():
    # A large target step (lr 0.05), so that θ̃ and θ′ act differently on many of the 8 × 5 states.
    fns = bmg_snake.make_train(bmg_snake.Args(num_envs=8, total_timesteps=40, learning_rate=0.05), all_parts=True)
    runner = jax.jit(fns.init)(0)
    rollout = jax.jit(fns.rollout)
    env_state, obs, outer_batch = rollout(runner.params, runner.env_state, runner.obs, jax.random.PRNGKey(3))
    outer_values = jax.jit(fns.baseline_values)(runner.params, outer_batch)
    args = (runner.params, runner.target_opt_state, outer_batch, outer_values, (env_state, obs), KEY)
    _, _, (next_env_state, next_obs), meta_batches, metrics = jax.jit(fns.meta_loss_grad)(*args)
    (matching_batch,) = meta_batches
    s = SimpleNamespace(outer_batch=outer_batch, outer_values=outer_values, new_params0=runner.params)
    target = bmg_target(fns, SimpleNamespace(**vars(s), target_opt_state=runner.target_opt_state), learning_rate=0.05)
    by_target = rollout(target, env_state, obs, KEY)
    by_new_params = rollout(runner.params, env_state, obs, KEY)
    # The same episodes, from where the outer batch ended, with the target's actions (not θ′'s) ...
    np.testing.assert_array_equal(matching_batch.traj.obs[0], obs)
    np.testing.assert_array_equal(matching_batch.traj.action, by_target[2].traj.action)
    assert np.any(np.asarray(matching_batch.traj.action) != np.asarray(by_new_params[2].traj.action))
    # ... the environments go on from its end ...
    np.testing.assert_array_equal(next_obs, by_target[1])
    jax.tree.map(np.testing.assert_array_equal, next_env_state, by_target[0])
    # ... and the KL logged is taken over its states.
    actor = bmg_snake.Actor(common_envs.SNAKE_NUM_ACTIONS)

    @jax.jit
    def kl(target_actor, actor_params, obs):
        target_log_pi = jax.nn.log_softmax(actor.apply(target_actor, obs))
        log_pi = jax.nn.log_softmax(actor.apply(actor_params, obs))
        return jnp.mean(jnp.sum(jnp.exp(target_log_pi) * (target_log_pi - log_pi), axis=-1))

    np.testing.assert_allclose(
        metrics["losses/meta_loss"], kl(target["actor"], runner.params["actor"], matching_batch.traj.obs), rtol=1e-5
    )


# --------------------------------------------------------------------------------------------
# The CLI runs themselves are in test_resume.py (both scripts, with the outer critic) and
# test_reliability.py; what --no-outer-critic changes is checked here, on the outer loss.
# --------------------------------------------------------------------------------------------
@pytest.mark.slow  # the chain's twin runs in the fast tier; Snake's compiles a chunk of its own
def test_meta_lr_zero_keeps_gamma_exactly():
    # eval_every 0: the evaluation (a program of its own inside the chunk) is not what this checks.
    fns = mg_snake.make_train(mg_snake.Args(num_envs=8, meta_lr=0.0, eval_every=0), all_parts=True)
    runner = jax.jit(fns.init)(0)
    new_runner, metrics = jax.jit(fns.train)(runner, jnp.arange(2))
    assert new_runner.meta_params == runner.meta_params
    np.testing.assert_allclose(metrics["meta/gamma"], mg_snake.Args().gamma_init, rtol=1e-6)
    np.testing.assert_array_equal(metrics["meta/meta_grad"], 0.0)
    assert np.all(np.isnan(metrics["meta/outer_advantage"]))  # no outer batch was sampled
    assert avals(new_runner) == avals(runner)  # no leaf changes type: later chunks do not recompile


# --------------------------------------------------------------------------------------------
# The reference's configuration (its snake/training/setup_run.py and Haiku's defaults)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", [mg_snake, bmg_snake])
def test_first_meta_step_is_small_for_a_tiny_meta_gradient(module):
    # With eps_root = 1e-8 inside the square root, a meta-gradient of 1e-6 moves η by about
    # lr · 1e-6 / sqrt(1e-12 + 1e-8) ≈ 0.01 lr (Adam's defaults would take a full step, ≈ lr).
    args = module.Args()
    meta_optimizer = module.make_train(args, all_parts=True).meta_optimizer
    eta = jnp.float32(0.0)
    step, _ = meta_optimizer.update(jnp.float32(1e-6), meta_optimizer.init(eta))
    expected = -args.meta_lr * 1e-6 / np.sqrt(1e-12 + 1e-8)
    assert float(step) == pytest.approx(expected, rel=1e-3)


def test_initialisation_is_haikus_default():
    # θ as the scripts' init makes it (the program other tests load from the compilation cache).
    params = jax.jit(mg_snake.make_train(mg_snake.Args(num_envs=8), all_parts=True).init)(0).params
    kernels = [
        (path, np.asarray(leaf))
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if "kernel" in jax.tree_util.keystr(path)
    ]
    biases = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params) if "bias" in jax.tree_util.keystr(path)]
    assert len(kernels) == 2 * 2 + 3 + 2 * 3  # two conv torsos, the actor's MLP, the two critic heads
    assert all(np.all(np.asarray(b) == 0) for b in biases)
    truncated_std = 0.87962566103423978  # std of a unit normal truncated to (−2, 2)
    pooled = []
    for path, kernel in kernels:
        fan_in = int(np.prod(kernel.shape[:-1]))  # 2·2·C for a conv, the input width for a dense layer
        scaled = kernel * np.sqrt(fan_in)  # ~ truncated_normal(−2, 2), not rescaled
        assert np.abs(scaled).max() <= 2.0
        # Per layer, within 4 standard errors of std(scaled) (≈ 0.88 / sqrt(2n)); flax's lecun_normal
        # gives 1.0 instead.
        assert abs(scaled.std() - truncated_std) < 4 * truncated_std / np.sqrt(2 * scaled.size), jax.tree_util.keystr(path)
        pooled.append(scaled.ravel())
    assert np.concatenate(pooled).std() == pytest.approx(truncated_std, rel=0.01)


@pytest.mark.slow  # a chunk of BMG's own compiled for it: the whole suite
def test_bmg_target_has_its_own_optimiser_state_carried_across_updates():
    fns = bmg_snake.make_train(bmg_snake.Args(num_envs=8, eval_every=0), all_parts=True)
    runner = jax.jit(fns.init)(0)
    # It starts from the optimiser's initial state (zero second moment), its own object.
    for leaf in jax.tree.leaves(runner.target_opt_state):
        assert np.all(np.asarray(leaf) == 0)
    new_runner, _ = jax.jit(fns.train)(runner, jnp.arange(2))
    target_nu = jax.tree.leaves(new_runner.target_opt_state[0].nu["actor"])
    inner_nu = jax.tree.leaves(new_runner.opt_state[0].nu["actor"])
    # After two updates its second moment has moved (outer-loss gradients), and it is not θ′'s.
    assert all(np.any(np.asarray(t) > 0) for t in target_nu)
    assert all(not np.allclose(t, i) for t, i in zip(target_nu, inner_nu))
    # MG has no target: its slot stays empty.
    assert jax.eval_shape(mg_snake.make_train(mg_snake.Args(num_envs=8), all_parts=True).init, 0).target_opt_state == ()
