"""Steady-state throughput of the training scripts, timed through their own make_train.

    python benchmark.py                                  # all four scripts, 1 and 10 seeds
    python benchmark.py --scripts mg_chain --num-seeds 10

For each script and seed count it times A2C (--meta-lr 0) and the meta-gradient variant without
and with the outer critic in the same process, so the meta-gradient's and the outer critic's costs
are ratios measured under the same conditions; compile time is reported apart. The raw environment
(uniform random actions, the same envs, as many rollouts as a chunk) is the upper limit on inner
steps/s.

How close to the machine's limit: the floating-point operations of one update come from XLA's cost
analysis of one update compiled alone, its scans unrolled (a loop's body is counted once), for one
seed; the matmul peak is a large float32 matmul through JAX, best of --repeats, in the same run.
Achieved GFLOP/s = FLOPs per update × seeds / time per update.
"""

import contextlib
import dataclasses
import importlib
import math
import re
import sys
import time

import tyro

SCRIPTS = ("mg_chain", "bmg_chain", "mg_snake", "bmg_snake")


@dataclasses.dataclass
class Args:
    scripts: tuple[str, ...] = SCRIPTS
    """the training scripts to time (mg_chain or mg_chain.py, ...)"""
    num_seeds: tuple[int, ...] = (1, 10)
    """seed counts to time (vmapped)"""
    updates: int = 20
    """updates per timed chunk"""
    repeats: int = 3
    """timed chunks; the best is reported"""
    peak_size: int = 4096
    """the side of the square float32 matmul that measures the peak"""
    env_id: str = ""
    """the Snake scripts' --env-id, e.g. Breakout-MinAtar (empty: their default, Snake)"""
    num_envs: int = 0
    """the scripts' --num-envs (0: each script's default)"""


def check_args(bench):
    """Bad input stops here with one line and exit code 2, before JAX is imported (seconds)."""
    bench.scripts = tuple(name.removesuffix(".py") for name in bench.scripts)  # mg_chain.py works too
    unknown = [name for name in bench.scripts if name not in SCRIPTS]
    rules = [
        ("--scripts", " ".join(unknown) or "none", bench.scripts and not unknown, f"must be among {', '.join(SCRIPTS)}"),
        (
            "--num-seeds",
            " ".join(str(n) for n in bench.num_seeds if n < 1) or "none",
            bench.num_seeds and min(bench.num_seeds) >= 1,
            "must be one or more seed counts >= 1",
        ),
        ("--updates", bench.updates, bench.updates >= 1, "must be >= 1"),
        ("--repeats", bench.repeats, bench.repeats >= 1, "must be >= 1"),
        ("--peak-size", bench.peak_size, bench.peak_size >= 1, "must be >= 1"),
        ("--num-envs", bench.num_envs, bench.num_envs >= 0, "must be >= 0 (0: the scripts' default)"),
        (
            "--env-id",
            bench.env_id,
            not bench.env_id or all(n.endswith("snake") for n in bench.scripts),
            "is for mg_snake and bmg_snake only",
        ),
    ]
    for option, value, ok, allowed in rules:
        if not ok:
            print(f"error: {option} {allowed}, got {value}", file=sys.stderr)
            sys.exit(2)


def time_steps(step, state, repeats):
    """Best wall time of `state = step(state)` over `repeats` calls (already compiled)."""
    import jax

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        state = jax.block_until_ready(step(state))
        best = min(best, time.perf_counter() - start)
    return best


@contextlib.contextmanager
def unrolled_scans(unroll=True):
    """Every jax.lax.scan traced inside is unrolled (fully, or `unroll` iterations per loop trip): XLA's cost
    analysis counts a loop's body once. Yields the list of the scans' lengths, filled as they are traced.
    (What loops remain are threefry's rounds inside jax.random: integer work, no matmul.)"""
    import jax

    scan, lengths = jax.lax.scan, []

    def unrolled(f, init, xs=None, length=None, **kw):
        lengths.append(length if length is not None else len(jax.tree.leaves(xs)[0]))
        return scan(f, init, xs, length, **{**kw, "unroll": unroll})

    jax.lax.scan = unrolled
    try:
        yield lengths
    finally:
        jax.lax.scan = scan


def dot_flops(hlo_text):
    """FLOPs of the matmuls (HLO dot) of an optimized HLO module: 2 × output elements × contracted size each."""
    shapes = dict(re.findall(r"%(\S+) = \w+\[([\d,]*)\]", hlo_text))  # instruction names are unique in a module
    dims = lambda shape: [int(d) for d in shape.split(",") if d]
    total = 0
    for out, lhs, contracting in re.findall(
        r"= \w+\[([\d,]*)\]\S* dot\(%(\S+?),.*?lhs_contracting_dims=\{([\d,]*)\}", hlo_text
    ):
        lhs_dims = dims(shapes[lhs])
        total += 2 * math.prod(dims(out)) * math.prod(lhs_dims[int(i)] for i in contracting.split(",") if i)
    return total


def cost(compiled):
    """(all FLOPs by XLA's cost analysis, the matmuls' FLOPs) of a compiled function."""
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis  # older jax: one dict per device
    return analysis["flops"], dot_flops(compiled.as_text())


def update_flops(module, args, max_unroll=16):
    """(FLOPs, matmul FLOPs) of one update of one seed, compiled alone with its scans unrolled.

    Scans of at most `max_unroll` steps (Snake's 5) are unrolled fully: a program without loops. Longer
    ones (the chain's 100-step episodes) would take minutes to compile unrolled; they must all have the
    same length n, and the update is compiled twice, one and two steps per loop trip: a trip costs
    c2 − c1, and one update c1 + (n − 1)(c2 − c1)."""
    import jax
    import jax.numpy as jnp

    # The timed chunks evaluate nothing (their updates come before the first evaluation): neither does this one.
    no_eval = {"eval_every": 0} if hasattr(args, "eval_every") else {}
    fns = module.make_train(dataclasses.replace(args, num_seeds=1, **no_eval), all_parts=True)
    runner = jax.jit(fns.init)(0)

    def count(unroll):
        with unrolled_scans(unroll) as lengths:
            jax.clear_caches()  # else the scans' bodies traced before, unrolled or not, are reused
            lowered = jax.jit(fns.train).lower(runner, jnp.arange(1))
        return cost(lowered.compile()), {n for n in lengths if n > 1}  # the chunk's own scan: 1 update

    (flops, matmul), lengths = count(1)
    if max(lengths) <= max_unroll:
        return count(True)[0]
    if len(lengths) != 1:
        raise ValueError(f"scans of several lengths {sorted(lengths)}: unroll them fully")
    (n,), (flops2, matmul2) = lengths, count(2)[0]
    return flops + (n - 1) * (flops2 - flops), matmul + (n - 1) * (matmul2 - matmul)


def matmul_peak(size, repeats):
    """GFLOP/s of the best of `repeats` float32 [size, size] @ [size, size] matmuls through JAX."""
    import jax
    import jax.numpy as jnp

    a, b = jax.random.normal(jax.random.PRNGKey(0), (2, size, size), jnp.float32)
    matmul = jax.jit(lambda a, b: jnp.dot(a, b, precision="highest")).lower(a, b).compile()
    jax.block_until_ready(matmul(a, b))  # warm-up
    return 2 * size**3 / time_steps(lambda _: matmul(a, b), None, repeats) / 1e9


def time_training(module, args, num_seeds, updates, repeats):
    """One chunk of `updates` updates, jitted and donated exactly as the script's main() does."""
    import jax
    import jax.numpy as jnp

    fns = module.make_train(args, all_parts=True)
    runner = jax.jit(jax.vmap(fns.init))(jnp.arange(num_seeds))
    train = jax.jit(jax.vmap(fns.train, in_axes=(0, None)), donate_argnums=0)
    chunk = jnp.arange(updates)
    start = time.perf_counter()
    compiled = train.lower(runner, chunk).compile()
    compile_s = time.perf_counter() - start
    seconds = time_steps(lambda r: compiled(r, chunk)[0], runner, repeats) / updates
    batches = fns.batches_per_update
    inner_steps = fns.steps_per_batch * num_seeds
    return {
        "compile_s": compile_s,
        "update_ms": 1e3 * seconds,
        "updates_per_s": 1 / seconds,
        "inner_sps": inner_steps / seconds,
        "all_sps": batches * inner_steps / seconds,
    }


def time_environment(module, args, num_seeds, updates, repeats):
    """`updates` rollouts of the script's own environment with uniform random actions: the upper
    limit on inner steps/s, all seeds together."""
    import jax
    import jax.numpy as jnp

    fns = module.make_train(args, all_parts=True)

    def rollouts(runner):
        # Zero policy parameters make the policy uniform: actions cost what they cost in training.
        uniform = jax.tree.map(jnp.zeros_like, runner.params)

        def one(carry, key):
            env_state, obs, _ = fns.rollout(uniform, *carry, key)
            return (env_state, obs), None

        keys = jax.random.split(runner.key, updates)
        (env_state, obs), _ = jax.lax.scan(one, (runner.env_state, runner.obs), keys)
        return runner._replace(env_state=env_state, obs=obs)

    runner = jax.jit(jax.vmap(fns.init))(jnp.arange(num_seeds))
    step = jax.jit(jax.vmap(rollouts), donate_argnums=0)
    runner = jax.block_until_ready(step(runner))  # compile
    return fns.steps_per_batch * num_seeds * updates / time_steps(step, runner, repeats)


def main():
    bench = tyro.cli(Args)
    check_args(bench)
    import jax  # here, not at the top: a typo in the options is reported before JAX loads

    print(f"devices: {jax.devices()}")
    peak = matmul_peak(bench.peak_size, max(bench.repeats, 5))
    print(
        f"measured matmul peak: {peak:.1f} GFLOP/s "
        f"(float32 {bench.peak_size}×{bench.peak_size}, best of {max(bench.repeats, 5)})"
    )
    header = (
        "| script | seeds | variant | compile s | ms/update | updates/s | inner steps/s | all steps/s "
        f"| vs A2C | raw env steps/s | inner / raw env | time vs {bench.num_seeds[0]} seed(s) "
        "| GFLOP/update/seed | matmul share | GFLOP/s | of peak |"
    )
    print(header + "\n|" + "---|" * (header.count("|") - 1), flush=True)
    first_ms = {}  # (script, variant) -> ms/update at the first seed count: how cost scales with seeds
    flops = {}  # (script, variant) -> (FLOPs, matmul FLOPs) of one update of one seed
    for name in bench.scripts:
        module = importlib.import_module(name)
        for num_seeds in bench.num_seeds:
            base = dataclasses.replace(module.Args(), num_seeds=num_seeds)
            if bench.num_envs:
                base = dataclasses.replace(base, num_envs=bench.num_envs)
            if bench.env_id:
                base = dataclasses.replace(base, env_id=bench.env_id)
            raw = time_environment(module, base, num_seeds, bench.updates, bench.repeats)
            algorithm = name.split("_")[0].upper()  # MG or BMG
            a2c = None
            for variant, args in [
                ("A2C", dataclasses.replace(base, meta_lr=0.0)),
                (algorithm, base),
                (f"{algorithm} + oc", dataclasses.replace(base, outer_critic=True)),
            ]:
                r = time_training(module, args, num_seeds, bench.updates, bench.repeats)
                a2c = a2c or r["update_ms"]
                first = first_ms.setdefault((name, variant), r["update_ms"])
                if (name, variant) not in flops:
                    flops[name, variant] = update_flops(module, args)
                total, matmul = flops[name, variant]
                gflops_s = total * num_seeds / r["update_ms"] / 1e6
                print(
                    f"| {name} | {num_seeds} | {variant} | {r['compile_s']:.1f} | {r['update_ms']:.1f} | "
                    f"{r['updates_per_s']:.1f} | {r['inner_sps']:,.0f} | {r['all_sps']:,.0f} | "
                    f"{r['update_ms'] / a2c:.2f}× | {raw:,.0f} | {r['inner_sps'] / raw:.2f} | "
                    f"{r['update_ms'] / first:.2f}× | {total / 1e9:.4f} | {matmul / total:.3f} | "
                    f"{gflops_s:.2f} | {gflops_s / peak:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
