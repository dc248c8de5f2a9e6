"""Where the bias is catastrophic: a map of the Discounting Chain over the paying chain and γ0.

The paper shows one configuration (chain 3 pays 1.1, γ0 = 0.95). This trains MG and MG + outer
critic (and BMG, BMG + outer critic with --variants) on every paying chain but 0 (--mapping-seed
1..4: the better reward 3, 10, 30 or 100 steps away) × several γ0, several seeds each, with the
paper's other settings, and draws one heat map per variant and quantity.

    python experiments/bias_map.py run                          # the grid into runs/bias_map_<time>/, then the figure
    python experiments/bias_map.py run --variants mg mg_oc bmg bmg_oc --gamma-inits 0.93 0.95 0.97 0.99
    python experiments/bias_map.py draw runs/bias_map_<time>    # figure and tables from bias_map.csv alone (no JAX)

How the grid runs. For one (script, mapping, outer critic) the γ0 × seed cells are one program:
each γ0's runners come from that γ0's own `init` of `make_train(replace(args, gamma_init=γ0))` (so
nothing in the initial state is assumed; today only η and its float32 rounding depend on γ0),
they are stacked into γ0 × seed lanes, and one `jit(vmap(train))` trains them all. That is only
right if `train` itself does not depend on γ0 (it does not: `gamma_init` is read by `init`
alone), and the run checks it before training: the jaxpr of every γ0's `train`, constants
included, must be the same, else it stops with a message. Each lane is the separate run
`python mg_chain.py --mapping-seed M --gamma-init G --seed S`: tests/test_bias_map.py finds the
4-lane grid equal bit for bit to the γ0's own 2-seed runs on the CPU (a wider vmapped batch could
in principle reorder float32 sums; tests/test_chain.py allows 1e-6 between 1 and 2 seeds).

What is written (runs/bias_map_<time>/):
- grid.json: the options;
- bias_map.csv: one row per variant × mapping × γ0 × seed: final γ, π(chain 0 | s0), π(paying
  chain | s0), the exact expected return, `meta/outer_advantage_s0` averaged over the first
  --first-updates, the last --last-updates and the whole run, whether the seed ends on the myopic
  side, and the block's compile and training seconds;
- bias_map_curves.csv: the same lanes every --log-every updates (γ, π(0 | s0), π(paying | s0),
  expected return at the chunk's end; the outer advantage at s0 as the chunk's mean);
- bias_map.png and bias_map.md: the figure and the tables (what `draw` makes, with experiments/bias_map_figure.py).
A block (variant × mapping) is written when it finishes; `run` with the same options and
--out-dir of a stopped grid skips the blocks already there.

The myopic side. On the chain with discount γ the inner objective values chain 0 at 1 (paid at
once) and the paying chain m at 1.1·γ^(d_m − 1); every other chain is worth less than chain 0.
So below γ*_m = 1.1^(−1/(d_m − 1)) (0.9535, 0.9895, 0.9967, 0.9990 for m = 1..4) every inner
update pushes the policy towards chain 0, above it towards the paying chain. A seed **ends on the
myopic side** when its final γ < γ*_m; a cell is marked when the mean final γ over its seeds is
below γ*_m. (Both are in the CSV and the table with π(0 | s0) and π(paying | s0) beside them.)
"""

import dataclasses
import json
import os
import sys
import time
from collections import defaultdict
from typing import Literal

import tyro

from bias_map_figure import CURVE_FIELDS, ROW_FIELDS, VARIANTS, DrawArgs, draw, fail, read_rows, write_rows
from chain_facts import DELAYS, gamma_star

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Variant = Literal["mg", "mg_oc", "bmg", "bmg_oc"]


@dataclasses.dataclass
class RunArgs:
    """Train the grid, write bias_map.csv and bias_map_curves.csv, then draw the figure."""

    variants: tuple[Variant, ...] = ("mg", "mg_oc")
    """which variants: mg, mg_oc (MG + outer critic), bmg, bmg_oc"""
    mappings: tuple[int, ...] = (1, 2, 3, 4)
    """paying chains (--mapping-seed, 1..4: the better reward 3, 10, 30, 100 steps away)"""
    gamma_inits: tuple[float, ...] = (0.91, 0.93, 0.95, 0.97, 0.99)
    """initial discounts γ0, each in (0.9, 1)"""
    seed: int = 0
    """first seed; every cell trains seeds seed .. seed + num_seeds − 1 (the same in every cell)"""
    num_seeds: int = 5
    """seeds per cell"""
    num_updates: int = 5000
    """meta-updates per run"""
    log_every: int = 100
    """updates per jitted chunk: one point of bias_map_curves.csv per lane"""
    first_updates: int = 1000
    """adv_s0_first averages meta/outer_advantage_s0 over the first this many updates (a multiple of
    --log-every; at most the run)"""
    last_updates: int = 500
    """adv_s0_last averages it over the last this many updates (a multiple of --log-every; at most the run)"""
    num_envs: int = 128
    """environments per batch (the paper's 128; smaller only to test)"""
    out_dir: str = ""
    """where the grid is written (default runs/bias_map_<time>); an existing grid of the same options is continued"""
    draw: bool = True
    """draw the figure and the tables when the grid is done"""


def check_run_args(a: RunArgs):
    rules = [
        (
            "--variants",
            a.variants,
            len(a.variants) >= 1 and len(set(a.variants)) == len(a.variants),
            "must name at least one variant, each once",
        ),
        (
            "--mappings",
            a.mappings,
            len(a.mappings) >= 1 and len(set(a.mappings)) == len(a.mappings) and all(1 <= m <= 4 for m in a.mappings),
            "must be distinct values in 1..4 (chain 0 paying is not biased)",
        ),
        (
            "--gamma-inits",
            a.gamma_inits,
            len(a.gamma_inits) >= 1
            and len(set(a.gamma_inits)) == len(a.gamma_inits)
            and all(0.9 < g < 1.0 for g in a.gamma_inits),
            "must be distinct values in (0.9, 1.0)",
        ),
        ("--seed", a.seed, a.seed >= 0, "must be >= 0"),
        ("--num-seeds", a.num_seeds, a.num_seeds >= 1, "must be >= 1"),
        ("--seed", a.seed, a.seed + a.num_seeds <= 2**31, "+ --num-seeds must be <= 2^31 (a JAX int32 key)"),
        ("--num-updates", a.num_updates, a.num_updates >= 1, "must be >= 1"),
        (
            "--log-every",
            a.log_every,
            1 <= a.log_every <= a.num_updates and a.num_updates % a.log_every == 0,
            f"must divide --num-updates ({a.num_updates})",
        ),
        (
            "--first-updates",
            a.first_updates,
            a.first_updates >= 1 and a.first_updates % a.log_every == 0,
            f"must be a positive multiple of --log-every ({a.log_every})",
        ),
        (
            "--last-updates",
            a.last_updates,
            a.last_updates >= 1 and a.last_updates % a.log_every == 0,
            f"must be a positive multiple of --log-every ({a.log_every})",
        ),
        ("--num-envs", a.num_envs, a.num_envs >= 1, "must be >= 1"),
    ]
    for option, value, ok, allowed in rules:
        if not ok:
            shown = " ".join(map(str, value)) if isinstance(value, tuple) else value
            fail(f"{option} {allowed}, got {shown}")


# ------------------------------------------------------------------------------------------------
# The grid
# ------------------------------------------------------------------------------------------------
def import_script(name):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    return __import__(name)


def program_fingerprint(fns, runner, update_indices):
    """What one γ0's vmapped `train` computes: its jaxpr and closed-over constants."""
    import jax
    import numpy as np

    closed = jax.make_jaxpr(jax.vmap(fns.train, in_axes=(0, None)))(runner, update_indices)
    return str(closed.jaxpr), [np.asarray(c) for c in closed.consts]


def same_fingerprint(a, b):
    import numpy as np

    return (
        a[0] == b[0]
        and len(a[1]) == len(b[1])
        and all(x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True) for x, y in zip(a[1], b[1]))
    )


def run_block(module, base_args, gamma_inits, seeds, num_updates, log_every, on_chunk=None):
    """Trains every (γ0, seed) lane of one (script, mapping, outer critic) in one jit(vmap(train)).
    Returns (per-chunk metrics as numpy [lanes, chunks] per name, compile seconds, training seconds);
    lane = γ0 index × len(seeds) + seed index. Raises ValueError if `train` depends on γ0."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    fns = [module.make_train(dataclasses.replace(base_args, gamma_init=g), all_parts=True) for g in gamma_inits]
    seeds = jnp.asarray(seeds)
    runners = [jax.jit(jax.vmap(f.init))(seeds) for f in fns]
    chunk = jnp.arange(log_every)
    reference = program_fingerprint(fns[0], runners[0], chunk)
    for g, f, r in zip(gamma_inits[1:], fns[1:], runners[1:]):
        if not same_fingerprint(program_fingerprint(f, r, chunk), reference):
            raise ValueError(
                f"train() of {module.__name__} differs between --gamma-init {gamma_inits[0]} and {g}: "
                "the γ0 lanes cannot share one program"
            )
    runner = jax.tree.map(lambda *xs: jnp.concatenate(xs), *runners)
    start = time.time()
    train = jax.jit(jax.vmap(fns[0].train, in_axes=(0, None)), donate_argnums=0).lower(runner, chunk).compile()
    compile_s = time.time() - start
    num_actions = len(DELAYS)
    paying = base_args.mapping_seed
    out = defaultdict(list)
    start = time.time()
    for begin in range(0, num_updates, log_every):
        runner, metrics = train(runner, jnp.arange(begin, begin + log_every))
        m = jax.device_get(
            {
                k: metrics[k]
                for k in (
                    "meta/gamma",
                    "eval/expected_return",
                    "meta/outer_advantage_s0",
                    *(f"policy/p_chain{k}" for k in range(num_actions)),
                )
            }
        )
        point = {
            "gamma": m["meta/gamma"][:, -1],
            "p_chain0": m["policy/p_chain0"][:, -1],
            "p_paying": m[f"policy/p_chain{paying}"][:, -1],
            "expected_return": m["eval/expected_return"][:, -1],
            "adv_s0": m["meta/outer_advantage_s0"].astype(np.float64).mean(axis=1),
        }
        bad = ~np.all([np.isfinite(v) for v in point.values()], axis=0)
        if bad.any():
            lane = int(np.argmax(bad))
            raise FloatingPointError(
                f"non-finite γ, π or advantage by update {begin + log_every} in lane {lane} "
                f"(γ0 {gamma_inits[lane // len(seeds)]}, seed {int(seeds[lane % len(seeds)])})"
            )
        for k, v in point.items():
            out[k].append(np.asarray(v, dtype=np.float64))
        if on_chunk:
            on_chunk(begin + log_every)
    train_s = time.time() - start
    return {k: np.stack(v, axis=1) for k, v in out.items()}, compile_s, train_s


def run(a: RunArgs):
    check_run_args(a)
    out_dir = a.out_dir or os.path.join("runs", f"bias_map_{time.strftime('%Y%m%d-%H%M%S')}")
    grid = {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(a).items() if k not in ("out_dir", "draw")
    }
    grid_path, rows_path = os.path.join(out_dir, "grid.json"), os.path.join(out_dir, "bias_map.csv")
    curves_path = os.path.join(out_dir, "bias_map_curves.csv")
    if os.path.exists(grid_path):
        with open(grid_path) as f:
            saved = json.load(f)
        for k, v in grid.items():
            if saved.get(k) != v:
                fail(
                    f"--out-dir {out_dir} holds a grid with --{k.replace('_', '-')} {saved.get(k)}, not {v}: "
                    "give its options to continue it, or another --out-dir"
                )
    else:
        try:
            os.makedirs(out_dir, exist_ok=True)
            with open(grid_path, "w") as f:
                json.dump(grid, f, indent=2)
        except OSError as error:
            fail(f"--out-dir {out_dir!r} is not writable ({error.strerror})")
    # The blocks with all their rows in bias_map.csv are done; the rows of any other block (a stop
    # between or during the two files' writes) are dropped from both files and computed again.
    lanes = len(a.gamma_inits) * a.num_seeds
    counts = defaultdict(int)
    for r in read_rows(rows_path):
        counts[(r["variant"], int(r["mapping_seed"]))] += 1
    done = {block for block, n in counts.items() if n == lanes}
    for path, fields in ((rows_path, ROW_FIELDS), (curves_path, CURVE_FIELDS)):
        rows = read_rows(path)
        kept = [r for r in rows if (r["variant"], int(r["mapping_seed"])) in done]
        if len(kept) < len(rows):
            os.remove(path)
            if kept:
                write_rows(path, fields, kept)

    import jax

    blocks = [(v, m) for v in a.variants for m in a.mappings]
    todo = [b for b in blocks if b not in done]
    seeds = list(range(a.seed, a.seed + a.num_seeds))
    print(
        f"grid: {out_dir} | {len(a.variants)} variants × {len(a.mappings)} mappings × {len(a.gamma_inits)} γ0 × "
        f"{a.num_seeds} seeds × {a.num_updates} updates | {len(blocks) - len(todo)} of {len(blocks)} blocks done "
        f"| devices {jax.devices()}",
        flush=True,
    )
    grid_start = time.time()
    try:
        for i, (variant, mapping) in enumerate(todo):
            script, outer_critic, label = VARIANTS[variant]
            module = import_script(script)
            base = dataclasses.replace(
                module.Args(),
                mapping_seed=mapping,
                outer_critic=outer_critic,
                num_envs=a.num_envs,
                num_updates=a.num_updates,
                log_every=a.log_every,
                seed=a.seed,
                num_seeds=a.num_seeds,
            )
            block_start = time.time()

            def progress(updates, label=label, mapping=mapping, block_start=block_start):
                if updates % max(a.num_updates // 5, a.log_every) == 0 or updates == a.num_updates:
                    elapsed = time.time() - block_start
                    print(f"  {label}, chain {mapping}: update {updates}/{a.num_updates} | {elapsed:.0f}s", flush=True)

            try:
                curves, compile_s, train_s = run_block(
                    module, base, a.gamma_inits, seeds, a.num_updates, a.log_every, progress
                )
            except (ValueError, FloatingPointError) as error:
                sys.exit(f"error: {error}")
            write_rows(curves_path, CURVE_FIELDS, curve_rows(curves, variant, mapping, a, seeds))
            write_rows(rows_path, ROW_FIELDS, final_rows(curves, variant, mapping, a, seeds, compile_s, train_s))
            print(
                f"block {len(blocks) - len(todo) + i + 1}/{len(blocks)}: {label}, chain {mapping} "
                f"(d = {DELAYS[mapping]}): compiled in {compile_s:.1f}s, trained {lanes} lanes × {a.num_updates} "
                f"updates in {train_s:.0f}s ({train_s / a.num_updates * 1000 / lanes:.2f} ms per lane-update) | "
                f"final γ by γ0: "
                + " ".join(
                    f"{g}: {curves['gamma'][j * a.num_seeds : (j + 1) * a.num_seeds, -1].mean():.4f}"
                    for j, g in enumerate(a.gamma_inits)
                ),
                flush=True,
            )
    except KeyboardInterrupt:
        print(
            f"interrupted; the finished blocks are in {out_dir}; continue with the same options and --out-dir {out_dir}",
            file=sys.stderr,
        )
        sys.exit(130)
    print(f"grid done in {time.time() - grid_start:.0f}s: {rows_path}", flush=True)
    if a.draw:
        draw(DrawArgs(grid=out_dir))
        print(f"redraw the figure from the CSV alone: python experiments/bias_map.py draw {out_dir}")
    else:
        print(f"draw the figure: python experiments/bias_map.py draw {out_dir}")


def lane_cells(a, seeds):
    return [(g, s) for g in a.gamma_inits for s in seeds]


def curve_rows(curves, variant, mapping, a, seeds):
    rows = []
    for lane, (g, s) in enumerate(lane_cells(a, seeds)):
        for c in range(curves["gamma"].shape[1]):
            rows.append(
                {
                    "variant": variant,
                    "mapping_seed": mapping,
                    "gamma_init": g,
                    "seed": s,
                    "update": (c + 1) * a.log_every,
                    **{k: float(curves[k][lane, c]) for k in CURVE_FIELDS[5:]},
                }
            )
    return rows


def final_rows(curves, variant, mapping, a, seeds, compile_s, train_s):
    script, outer_critic, label = VARIANTS[variant]
    first, last = (min(n, a.num_updates) // a.log_every for n in (a.first_updates, a.last_updates))
    rows = []
    for lane, (g, s) in enumerate(lane_cells(a, seeds)):
        final_gamma = float(curves["gamma"][lane, -1])
        rows.append(
            {
                "variant": variant,
                "label": label,
                "script": script,
                "outer_critic": outer_critic,
                "mapping_seed": mapping,
                "delay": DELAYS[mapping],
                "gamma_star": gamma_star(mapping),
                "gamma_init": g,
                "seed": s,
                "updates": a.num_updates,
                "gamma_final": final_gamma,
                "p_chain0": float(curves["p_chain0"][lane, -1]),
                "p_paying": float(curves["p_paying"][lane, -1]),
                "expected_return": float(curves["expected_return"][lane, -1]),
                "adv_s0_first": float(curves["adv_s0"][lane, :first].mean()),
                "adv_s0_last": float(curves["adv_s0"][lane, -last:].mean()),
                "adv_s0_all": float(curves["adv_s0"][lane].mean()),
                "myopic": final_gamma < gamma_star(mapping),
                "compile_s": round(compile_s, 2),
                "train_s": round(train_s, 2),
            }
        )
    return rows


def main():
    command = tyro.extras.subcommand_cli_from_dict({"run": RunArgs, "draw": DrawArgs}, description=__doc__.split("\n")[0])
    (run if isinstance(command, RunArgs) else draw)(command)


if __name__ == "__main__":
    main()
