"""Where the time of a Snake update goes: each phase of one MG (+ outer critic) update compiled and timed
alone, jitted and vmapped over seeds as main() runs them, beside its FLOPs (XLA's cost analysis, scans
unrolled), the time of its matmuls alone (the same dot shapes, replayed in one program) and so the
time of everything else (the environment, sampling, elementwise work, gathers, copies).

    python experiments/profile_snake.py                      # MG + outer critic, 1 and 10 seeds
    python experiments/profile_snake.py --num-seeds 1 --no-outer-critic

The phases: the inner rollout (512 envs × 5 steps sampled by θ), the critic's values on its 6 × 512
observations, the inner step θ → θ′ (gradient and RMSProp), the same two on the outer batch (sampled
by θ′), the outer loss's gradient at θ′, the meta-gradient's backward pass through the inner step
(timed as inner step + backward, less the inner step), and one evaluation over the 150 updates
between two. The whole update is timed as a chunk of --updates updates without an evaluation.
"""

import dataclasses
import os
import re
import sys

import jax
import jax.numpy as jnp
import tyro

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchmark  # noqa: E402  (the scripts live at the repository's root)
import bmg_snake  # noqa: E402
import common_envs  # noqa: E402
import mg_snake  # noqa: E402


@dataclasses.dataclass
class Args:
    script: str = "mg_snake"
    """mg_snake or bmg_snake"""
    outer_critic: bool = True
    """the variant with the outer critic"""
    num_seeds: tuple[int, ...] = (1, 10)
    """seed counts to profile (vmapped)"""
    updates: int = 10
    """updates per timed chunk of the whole update"""
    repeats: int = 5
    """timed calls of each phase; the best is reported"""


def replay_dots(hlo_text):
    """A function running every dot of an optimized HLO module alone, on zeros of the same shapes and
    dimension numbers: the time the phase's matmuls take by themselves."""
    shapes = dict(re.findall(r"%(\S+) = \w+\[([\d,]*)\]", hlo_text))
    dims = lambda text: tuple(int(d) for d in text.split(",") if d)
    pattern = r"dot\(%(\S+?), %(\S+?)\),(.*?)(?:, operand_precision|, metadata|$)"
    dots = []
    for lhs, rhs, rest in re.findall(pattern, hlo_text, re.M):
        numbers = dict(re.findall(r"(\w+_dims)=\{([\d,]*)\}", rest))
        get = lambda key, numbers=numbers: dims(numbers.get(key, ""))
        contracting = (get("lhs_contracting_dims"), get("rhs_contracting_dims"))
        dots.append((dims(shapes[lhs]), dims(shapes[rhs]), (contracting, (get("lhs_batch_dims"), get("rhs_batch_dims")))))
    operands = [(jnp.ones(a), jnp.ones(b)) for a, b, _ in dots]

    def run(operands):
        return [jax.lax.dot_general(a, b, numbers) for (a, b), (*_, numbers) in zip(operands, dots)]

    return jax.jit(run), operands


def measure(fn, args, repeats, loop_trips=1):
    """(best ms of fn(*args), GFLOP, matmul GFLOP, best ms of its matmuls alone). Counted with the scans
    unrolled, or for the evaluation (500 steps: minutes to compile unrolled) its loop's body × loop_trips."""
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    ms = 1e3 * benchmark.time_steps(lambda _: compiled(*args), None, repeats)
    jax.clear_caches()  # else the scans' bodies traced above are reused, not unrolled
    with benchmark.unrolled_scans(True if loop_trips == 1 else 1):
        counted = jax.jit(fn).lower(*args).compile()
    flops, matmul = benchmark.cost(counted)
    dots, operands = replay_dots(counted.as_text())
    jax.block_until_ready(dots(operands))
    dots_ms = 1e3 * benchmark.time_steps(lambda _: dots(operands), None, repeats)
    return ms, loop_trips * flops / 1e9, loop_trips * matmul / 1e9, loop_trips * dots_ms


def profile(module, args, num_seeds, updates, repeats):
    fns = module.make_train(args)
    vmap = lambda f, in_axes=0: jax.vmap(f, in_axes=in_axes)
    runner = jax.jit(vmap(fns.init))(jnp.arange(num_seeds))
    runner, _ = jax.jit(vmap(fns.train, (0, None)))(runner, jnp.arange(3))  # a trained state, not the initial one
    # The update's intermediate values, computed once, to feed each phase as the update does.
    keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, 3)))(runner.key)
    env_state, obs, inner_batch = jax.jit(vmap(fns.rollout))(runner.params, runner.env_state, runner.obs, keys[:, 0])
    inner_values = jax.jit(vmap(fns.baseline_values))(runner.params, inner_batch)
    step = vmap(lambda m, p, o, b, v: fns.inner_update(m, p, o, b, v)[0])
    new_params = jax.jit(step)(runner.meta_params, runner.params, runner.opt_state, inner_batch, inner_values)
    _, _, outer_batch = jax.jit(vmap(fns.rollout))(new_params, env_state, obs, keys[:, 1])
    outer_values = jax.jit(vmap(fns.baseline_values))(new_params, outer_batch)
    meta_loss_grad = vmap(lambda p, t, b, v: fns.meta_loss_grad(p, t, b, v)[0])
    cotangent = jax.jit(meta_loss_grad)(new_params, runner.target_opt_state, outer_batch, outer_values)

    def meta_gradient(meta_params, params, opt_state, batch, values, cotangent):
        """θ′ and the meta-gradient, as the update computes them (θ′ alone would drop the vjp's residuals)."""
        new_params, _, _, meta_vjp = fns.inner_update_and_vjp(meta_params, params, opt_state, batch, values)
        return new_params, meta_vjp(cotangent)

    def evaluation(actor_params):
        return fns.evaluate(actor_params, 150)

    train = vmap(fns.train, (0, None))
    inner = (runner.meta_params, runner.params, runner.opt_state, inner_batch, inner_values)
    phases = [
        (
            "inner rollout (θ samples 512 envs × 5 steps)",
            vmap(fns.rollout),
            (runner.params, runner.env_state, runner.obs, keys[:, 0]),
        ),
        ("inner batch: critic values on 6 × 512 obs", vmap(fns.baseline_values), (runner.params, inner_batch)),
        ("inner step θ → θ′ (gradient, RMSProp)", step, inner),
        ("outer rollout (θ′ samples)", vmap(fns.rollout), (new_params, env_state, obs, keys[:, 1])),
        ("outer batch: critic values", vmap(fns.baseline_values), (new_params, outer_batch)),
        ("outer loss gradient at θ′", meta_loss_grad, (new_params, runner.target_opt_state, outer_batch, outer_values)),
        ("inner step + meta-gradient backward", vmap(meta_gradient), (*inner, cotangent)),
        ("evaluation (512 + 512 games × 500 steps)", vmap(evaluation), (runner.params["actor"],)),
    ]
    trips = {phases[-1][0]: common_envs.SNAKE_TIME_LIMIT}
    rows = {name: measure(fn, fn_args, repeats, trips.get(name, 1)) for name, fn, fn_args in phases}
    chunk = jnp.arange(updates)
    whole = jax.jit(train).lower(runner, chunk).compile()
    jax.block_until_ready(whole(runner, chunk))
    update_ms = 1e3 * benchmark.time_steps(lambda _: whole(runner, chunk), None, max(repeats // 2, 1)) / updates
    return rows, update_ms


def main():
    bench = tyro.cli(Args)
    module = {"mg_snake": mg_snake, "bmg_snake": bmg_snake}.get(bench.script.removesuffix(".py"))
    if module is None or not bench.num_seeds or min(bench.num_seeds) < 1 or min(bench.updates, bench.repeats) < 1:
        print("error: --script must be mg_snake or bmg_snake; --num-seeds, --updates, --repeats >= 1", file=sys.stderr)
        sys.exit(2)
    peak = benchmark.matmul_peak(4096, 5)
    print(f"measured matmul peak: {peak:.1f} GFLOP/s (float32 4096×4096, best of 5)")
    for num_seeds in bench.num_seeds:
        args = dataclasses.replace(module.Args(), outer_critic=bench.outer_critic, num_seeds=num_seeds, eval_every=150)
        rows, update_ms = profile(module, args, num_seeds, bench.updates, bench.repeats)
        step_ms = rows["inner step θ → θ′ (gradient, RMSProp)"][0]
        name = "inner step + meta-gradient backward"
        ms, flops, matmul, dots_ms = rows.pop(name)
        s_ms, s_flops, s_matmul, s_dots = rows["inner step θ → θ′ (gradient, RMSProp)"]
        rows["meta-gradient backward (second order), by difference"] = (
            ms - step_ms,
            flops - s_flops,
            matmul - s_matmul,
            dots_ms - s_dots,
        )
        evaluation = "evaluation (512 + 512 games × 500 steps)"
        rows[evaluation + ", per update (/150)"] = tuple(x / 150 for x in rows.pop(evaluation))
        total = [sum(r[i] for r in rows.values()) for i in range(4)]
        print(f"\n{bench.script}, outer critic {bench.outer_critic}, {num_seeds} seed(s): whole update {update_ms:.1f} ms")
        print("| phase | ms | share | GFLOP | matmul GFLOP | GFLOP/s | of peak | matmuls alone ms | rest ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for phase, (ms, flops, matmul, dots_ms) in [*rows.items(), ("sum of the phases", tuple(total))]:
            print(
                f"| {phase} | {ms:.2f} | {ms / total[0]:.1%} | {flops:.3f} | {matmul:.3f} | {flops / ms * 1e3:.1f} | "
                f"{flops / ms * 1e3 / peak:.1%} | {dots_ms:.2f} | {ms - dots_ms:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
