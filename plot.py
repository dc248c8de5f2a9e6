"""Figures and result tables from the runs' metrics.csv (paper Figures 2, 3, 5 and 6).

    python plot.py runs/chain_<time> --out docs/chain.png    # γ, exact expected return, outer advantage at s0, π(· | s0)
    python plot.py runs/snake_<time> --out docs/snake.png    # γ, evaluation return, outer advantage, training return
    python plot.py runs/snake_early_<time> --window 146 --mark-updates 438 584 1460 --at-updates 438 584 1460
    mkdir -p docs/data/gpu && tar xzf results.tar.gz -C docs/data/gpu && python plot.py docs/data/gpu --out docs/snake_gpu.png

Each path is a run directory (runs/<env>__<exp_name>__<seed>__<time>/) or a folder searched for
them, at any depth. A run without log points (no metrics.csv: it stopped while compiling) is
skipped with a line on stderr. One environment per call: chain and Snake runs together are refused.

Runs are grouped into variants by their args.json (A2C, MG, MG + outer critic, BMG, ...): several
invocations of the same variant (e.g. more seeds later) are pooled, and cut to the log points
every seed reached (stderr says so when their budgets differ). Curves are the mean ± std over
seeds. The x-axis (`--x`) is updates ("Iterations" in the paper) by default on Snake, where the
reference curves and `--mark-updates` are in updates, and inner environment steps of one seed
by default on the chain, as docs/chain.png.

Returns. Where runs have an evaluation, it is drawn: on Snake `eval/episodic_return` (512 fresh
games, sampled actions; its x is the update the evaluated policy was at, `eval/global_step`)
beside the training-episode return; on the chain `eval/expected_return`, the exact expected return
of the current policy, in place of the training return.

The reference. On Snake the mean curves of the reference implementation (10 seeds, `--reference`,
by default docs/data/reference_snake_curves.csv; see docs/data/README.md) are drawn dotted in the
variant's colour on the γ, evaluation-return and outer-advantage panels, up to our last update.
The reference logged γ and the outer advantage as means over 146-update epochs; `--window 146`
turns ours into the same: at each log point u, the mean over the updates (u − 146, u], where a
log point stands for the updates since the previous one (a `--log-every` chunk) and is weighted
by how many of them fall in the window. That is exact for the chunk means (the outer advantage)
and counts γ, logged at each chunk's end, for its whole chunk.

Tables (markdown, on stdout, and with `--tables-out FILE` in that file too): each variant's last log
point, mean ± std over seeds (ddof 0). Where a method is there with and without the outer critic, on
the same seeds (MG and MG + outer critic, BMG and BMG + outer critic), a paired comparison of their
final evaluation return (Snake: 512 games, sampled actions; chain: the exact expected return) at the
last update both evaluated: each seed's difference, their mean ± std, and the two-sided p-values of
Welch's t-test and of the paired t-test (Student's t distribution through the regularised incomplete
beta function; no SciPy). With `--at-updates U ...`, at those updates: γ, the evaluation returns
(sampled, greedy) and the outer-loss advantage with each head (γ and the advantages as means over the
`--window`, by default the reference's 146 updates on Snake), mean ± std beside the reference's; each
seed's values; and, for each method with and without the outer critic, the same seed's difference in
γ and in the returns, their mean ± std and the paired t-test's p, at a log point both have.
"""

import csv
import dataclasses
import functools
import json
import math
import os
import sys
import warnings
from collections import defaultdict
from typing import Annotated, Literal, NamedTuple

import numpy as np
import tyro

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "docs", "data", "reference_snake_curves.csv")
REFERENCE_EPOCH = 146  # updates per logged epoch in the reference: its γ and outer advantage are means over one
CHAIN_EPISODE = 100  # steps per chain batch (one aligned episode)
EVAL_METRICS = ("eval/episodic_return", "eval/episodic_return_greedy", "eval/episodic_length")  # Snake, not every row
WINDOWED = (
    "meta/gamma",
    "meta/outer_advantage",
    "meta/outer_advantage_s0",
    "meta/outer_advantage_inner_critic",
    "meta/outer_advantage_outer_critic",
)
VARIANT_ORDER = ["A2C", "MG", "MG + outer critic", "BMG", "BMG + outer critic"]
REFERENCE_VARIANTS = {"A2C": "A2C", "MG": "MG", "MG + outer critic": "MG+oc", "BMG": "BMG", "BMG + outer critic": "BMG+oc"}
REFERENCE_METRICS = {"meta/gamma": "gamma", "meta/outer_advantage": "outer_advantage", "eval/episodic_return": "eval_return"}


@dataclasses.dataclass
class Args:
    runs: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="PATH...")] = ()
    """run directories, or folders searched for them (e.g. runs/snake_<time>/ or runs/)"""
    out: str = "figure.png"
    """where the PNG is written"""
    title: str = ""
    """figure title; empty = the environment"""
    x: Literal["auto", "steps", "updates"] = "auto"
    """x-axis: updates, or inner environment steps of one seed; auto = updates on Snake, steps on the chain"""
    window: int = 0
    """draw γ and the outer advantage as trailing means over this many updates (146: the reference's); 0 = as logged"""
    mark_updates: tuple[int, ...] = ()
    """updates marked with a vertical line on every panel"""
    at_updates: tuple[int, ...] = ()
    """also print tables at these updates: γ, the evaluation returns and the outer advantages beside the
    reference's, each seed's values, and with − without the outer critic seed by seed"""
    reference: str = "auto"
    """reference curves (CSV: variant, metric, update, mean, std, seeds); auto: the bundled
    docs/data/reference_snake_curves.csv for Snake runs; none: no reference"""
    tables_out: str = ""
    """also write the tables (markdown, as printed) to this file; empty = stdout only"""


def fail(message):
    """Bad input: one line on stderr, exit code 2, nothing written."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_args(options):
    if not options.runs:
        fail("give run directories or folders holding them, e.g. python plot.py runs/chain_<time>")
    if options.window < 0:
        fail(f"--window must be >= 0 (0: as logged), got {options.window}")
    for flag, updates in (("--mark-updates", options.mark_updates), ("--at-updates", options.at_updates)):
        if any(u < 0 for u in updates):
            fail(f"{flag} must be >= 0, got {min(updates)}")
    if options.reference not in ("auto", "none") and not os.path.isfile(options.reference):
        fail(f"--reference {options.reference} is not a file")
    if os.path.isdir(options.out):
        fail(f"--out {options.out} is a directory; give the PNG's path")
    if options.tables_out and os.path.isdir(options.tables_out):
        fail(f"--tables-out {options.tables_out} is a directory; give the markdown file's path")


# ---------------------------------------------------------------------------------------------
# Finding and reading runs
# ---------------------------------------------------------------------------------------------
def find_runs(paths):
    """Every run directory (one holding args.json or metrics.csv) given or found below the paths."""
    found = {}  # real path -> the path as given, so a run named twice counts once
    for path in paths:
        if not os.path.exists(path):
            fail(f"{path} does not exist")
        if not os.path.isdir(path):
            fail(f"{path} is not a directory: give run directories or folders holding them")
        here = []
        for root, dirs, files in os.walk(path):
            if "args.json" in files or "metrics.csv" in files:
                here.append(root)
                dirs.clear()  # below a run are only its seed<N>/ TensorBoard folders
            dirs.sort()
        if not here:
            fail(f"no run directory (with args.json, metrics.csv) in {path}")
        for root in here:
            found.setdefault(os.path.realpath(root), os.path.normpath(root))
    return sorted(found.values())


def steps_per_batch(args):
    """Inner environment steps of one seed per update."""
    return args["num_envs"] * (CHAIN_EPISODE if environment(args) == "chain" else args["num_steps"])


def environment(args):
    return "chain" if "chain" in args.get("script", "") or "mapping_seed" in args else "snake"


def load_run(run_dir):
    """(args, [per-seed {metric: array over log points}]). Each seed's rows are sorted by global_step
    and a log point written twice (a run resumed from an older checkpoint) counts once, the last.
    Every seed also gets "update" and, with evaluations, "eval/update". ValueError: why the run
    cannot be plotted."""
    if not os.path.exists(os.path.join(run_dir, "metrics.csv")):
        raise ValueError("no metrics.csv (the run stopped before its first log point, e.g. while compiling)")
    try:
        with open(os.path.join(run_dir, "args.json")) as f:
            args = json.load(f)
        by_seed = defaultdict(dict)  # seed -> {global_step: row}
        with open(os.path.join(run_dir, "metrics.csv")) as f:
            for row in csv.DictReader(f):
                by_seed[int(row["seed"])][float(row["global_step"])] = row
        seeds = []
        for seed_id, rows in sorted(by_seed.items()):
            ordered = [rows[step] for step in sorted(rows)]
            seeds.append({name: np.array([float(r[name]) for r in ordered]) for name in ordered[0] if name != "seed"})
            seeds[-1]["seed"] = seed_id  # an int, not a metric: what pairs the seeds of two variants
        batch = steps_per_batch(args)
        variant_name(args)
    except FileNotFoundError:
        raise ValueError("no args.json") from None
    except (OSError, ValueError, KeyError, TypeError) as error:  # a hand-edited or foreign file
        raise ValueError(f"unreadable args.json or metrics.csv ({type(error).__name__}: {error})") from None
    if not seeds:
        raise ValueError("no log points yet in metrics.csv")
    for m in seeds:
        m["update"] = m["global_step"] / batch
        if "eval/global_step" in m:
            m["eval/update"] = m["eval/global_step"] / batch
        if "meta/outer_critic_v_s0" in m:  # the chain's learned outer head against the truth
            error = np.abs(m["meta/outer_critic_v_s0"] - m["meta/true_outer_v_s0"])
            m["derived/outer_v_s0_error"] = error
            m["derived/outer_v_s0_error_mean"] = np.cumsum(error) / np.arange(1, len(error) + 1)
    return args, seeds


def variant_name(args):
    algorithm = "BMG" if args["script"].startswith("bmg") else "MG"
    if args["meta_lr"] == 0:
        name = "A2C"
    else:
        name = algorithm + (" + outer critic" if args["outer_critic"] else "")
    if args.get("normalize_advantage"):
        name += ", normalised advantage"
    if not args.get("true_value", True):
        name += ", learned critic"
    return name


def variant_key(name):
    base = name.split(",")[0]
    return (VARIANT_ORDER.index(base) if base in VARIANT_ORDER else len(VARIANT_ORDER), name)


def group_runs(runs):
    """{variant: (args of its first run, [per-seed metric dicts])}, seeds pooled over runs."""
    variants = {}
    for _, args, seeds in runs:
        variants.setdefault(variant_name(args), (args, []))[1].extend(seeds)
    for name, (_, seeds) in variants.items():
        ends = sorted({int(s["update"][-1]) for s in seeds})
        if len(ends) > 1:
            print(
                f"note: {name}: its seeds end at different updates ({', '.join(f'{u:,}' for u in ends)}); "
                f"curves and tables stop at {ends[0]:,}, the shortest",
                file=sys.stderr,
            )
    return dict(sorted(variants.items(), key=lambda item: variant_key(item[0])))


# ---------------------------------------------------------------------------------------------
# Curves: one metric of every seed of a variant, on common log points
# ---------------------------------------------------------------------------------------------
def window_mean(updates, values, window):
    """Trailing mean over the `window` updates (u − window, u] ending at each log point u. Log point
    i stands for the updates (u_{i−1}, u_i] since the previous one and is weighted by how many of
    them fall in the window; NaN log points are left out."""
    starts = np.concatenate([[0.0], updates[:-1]])
    valid = ~np.isnan(values)

    def integral(per_update, x):
        """Σ over updates in (0, x] of per_update[chunk of the update], x in [−window, u_last]."""
        before = np.concatenate([[0.0], np.cumsum(per_update * (updates - starts))])  # chunks that end before
        k = np.searchsorted(updates, x)  # the chunk holding x
        return before[k] + per_update[k] * np.clip(x - starts[k], 0, None)

    total = integral(np.where(valid, values, 0.0), updates) - integral(np.where(valid, values, 0.0), updates - window)
    count = integral(valid.astype(float), updates) - integral(valid.astype(float), updates - window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def per_seed(seed, metric, window=0):
    """(updates, values) of one seed: evaluations at the update the evaluated policy was at (rows
    without one dropped); γ and the outer advantages as trailing means when `window` > 0."""
    if metric in EVAL_METRICS and "eval/update" in seed:
        keep = ~np.isnan(seed["eval/update"])
        updates, values = seed["eval/update"][keep], seed[metric][keep]
    else:
        updates, values = seed["update"], seed[metric]
        if window and metric in WINDOWED:
            values = window_mean(updates, values, window)
    updates, first = np.unique(updates, return_index=True)  # sorted, each update once
    return updates, values[first]


def stacked(seeds, metric, window=0):
    """(updates, values [seeds, points]) at the updates every seed has `metric` at, so pooled runs
    of unequal length stop at the shortest; None when no seed has it."""
    series = [per_seed(s, metric, window) for s in seeds if metric in s]
    if not series:
        return None
    common = functools.reduce(np.intersect1d, [updates for updates, _ in series])
    if len(common) == 0:
        return None
    return common, np.stack([values[np.searchsorted(updates, common)] for updates, values in series])


# ---------------------------------------------------------------------------------------------
# The reference's curves (Snake)
# ---------------------------------------------------------------------------------------------
def load_reference(path):
    """{(variant, metric): array [4, points] of update, mean, std, seeds} from the reference CSV."""
    curves = defaultdict(list)
    try:
        with open(path) as f:
            for row in csv.DictReader(f):
                curves[row["variant"], row["metric"]].append(
                    (int(row["update"]), float(row["mean"]), float(row["std"]), int(row["seeds"]))
                )
    except OSError as error:
        fail(f"--reference {path}: {error.strerror}")
    except (KeyError, TypeError, ValueError):
        fail(f"--reference {path} needs the columns variant, metric, update, mean, std, seeds (numbers in the last four)")
    return {key: np.array(sorted(rows)).T for key, rows in curves.items()}


def reference_curve(reference, name, metric):
    """The reference's curve [update, mean, std, seeds] for our variant `name` and `metric`, or None.
    The reference evaluated A2C greedily only, so A2C's evaluation curve is the greedy one."""
    if not reference or name not in REFERENCE_VARIANTS or metric not in REFERENCE_METRICS:
        return None
    variant, key = REFERENCE_VARIANTS[name], REFERENCE_METRICS[metric]
    if (variant, key) not in reference and key == "eval_return":
        key = "eval_return_greedy"
    return reference.get((variant, key))


def reference_label(reference, name, seeds):
    greedy = (REFERENCE_VARIANTS[name], "eval_return") not in reference
    return f"{name} (reference, {seeds} seeds{'; its evaluation greedy' if greedy else ''})"


# ---------------------------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------------------------
def style(name):
    """As the paper: the biased methods red, the outer-critic methods blue; BMG dashed."""
    if name.startswith("A2C"):
        return {"color": "0.45"}
    return {"color": "tab:blue" if "outer critic" in name else "tab:red", "linestyle": "--" if name.startswith("BMG") else "-"}


def has(variants, metric):
    return any(metric in s for _, seeds in variants.values() for s in seeds)


def panels(env, variants, window):
    """(metric, title) of each panel."""
    args = next(iter(variants.values()))[0]
    mean = f"\n(mean over the last {window} updates)" if window else ""
    names = [("meta/gamma", "discount γ" + mean)]
    if env == "chain":
        m = args["mapping_seed"]
        names.append(
            ("eval/expected_return", "exact expected return")
            if has(variants, "eval/expected_return")
            else ("charts/episodic_return", "training-episode return")
        )
        # The chain's Figure 5 quantity is the advantage at the decision state.
        names += [
            ("meta/outer_advantage_s0", "outer-loss advantage at s0 (Figure 5)" + mean),
            (f"policy/p_chain{m}", f"π(paying chain {m} | s0)"),
            ("policy/p_chain0", "π(myopic chain 0 | s0)"),
        ]
        if any(a.get("normalize_advantage") for a, _ in variants.values()):  # Figure 6: centred by construction
            names.append(("meta/outer_advantage", "normalised outer advantage, batch mean" + mean))
    else:
        if has(variants, "eval/episodic_return"):
            names.append(("eval/episodic_return", "evaluation return (512 games, sampled actions)"))
        names += [
            ("meta/outer_advantage", "outer-loss advantage, batch mean (Figure 5)" + mean),
            ("charts/episodic_return", "training-episode return"),
        ]
    return names


def plot(variants, env, options, reference):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    in_updates = options.x == "updates" or (options.x == "auto" and env == "snake")
    metric_panels = panels(env, variants, options.window)
    cols = 3
    rows = -(-len(metric_panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(metric_panels) :]:
        ax.axis("off")
    horizon = max(s["update"][-1] for _, seeds in variants.values() for s in seeds)  # the reference stops here
    legend = {}  # label -> line, variant by variant: ours, then the reference's
    for name, (args, seeds) in variants.items():
        scale = 1 if in_updates else steps_per_batch(args)
        for ax, (metric, _) in zip(axes, metric_panels):
            curve = stacked(seeds, metric, options.window)
            if curve is None or np.all(np.isnan(curve[1])):
                continue
            updates, values = curve
            mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
            (line,) = ax.plot(updates * scale, mean, **style(name))
            legend.setdefault(f"{name} ({len(seeds)} seeds)", line)
            ax.fill_between(updates * scale, mean - std, mean + std, color=style(name)["color"], alpha=0.2, linewidth=0)
            found = reference_curve(reference, name, metric)
            if found is not None:
                ref_updates, ref_mean, _, ref_seeds = found
                shown = ref_updates <= horizon
                dots = (0, (1, 3)) if name.startswith("BMG") else (0, (1, 1.5))  # dotted; BMG's sparser, as it is dashed
                (line,) = ax.plot(
                    ref_updates[shown] * scale, ref_mean[shown], color=style(name)["color"], linestyle=dots, linewidth=1.2
                )
                legend.setdefault(reference_label(reference, name, int(ref_seeds[0])), line)
    first_scale = 1 if in_updates else steps_per_batch(next(iter(variants.values()))[0])
    for ax, (_, title) in zip(axes, metric_panels):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("updates (the paper's iterations)" if in_updates else "inner environment steps (one seed)")
        for update in options.mark_updates:
            ax.axvline(update * first_scale, color="0.5", linestyle=(0, (1, 3)), linewidth=0.8)
    # The legend goes in the first empty panel, or below the panels: ours, then the reference's, per variant.
    env_name = "Discounting Chain" if env == "chain" else "Snake 6×6"
    fig.suptitle(options.title or f"{env_name}: mean ± std over seeds")
    if len(metric_panels) < len(axes):
        axes[len(metric_panels)].legend(legend.values(), legend.keys(), loc="center", fontsize=7.5, frameon=False)
        fig.tight_layout()
    else:
        legend_rows = -(-len(legend) // cols)
        fig.set_figheight(fig.get_figheight() + 0.2 * legend_rows)
        fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=cols, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, (0.2 * legend_rows + 0.1) / fig.get_figheight(), 1, 1))
    os.makedirs(os.path.dirname(options.out) or ".", exist_ok=True)
    replaced = os.path.exists(options.out)
    fig.savefig(options.out, dpi=110)
    print(f"wrote {options.out}" + (" (replacing the file that was there)" if replaced else ""))
    return fig


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
def mean_std(values, fmt):
    if np.all(np.isnan(values)):
        return "—"
    return f"{np.nanmean(values):{fmt}} ± {np.nanstd(values):{fmt}}"


def number(x, fmt):
    return "—" if math.isnan(x) else f"{x:{fmt}}"


def markdown(labels, rows, note=""):
    """A markdown table (a "|" in a label escaped), below its note when there is one."""
    lines = ["| " + " | ".join(label.replace("|", "\\|") for label in labels) + " |", "|" + "---|" * len(labels)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(([note, ""] if note else []) + lines)


def table(variants, env, window):
    """Markdown table of each variant's last log point (last evaluation), mean ± std over seeds."""
    args = next(iter(variants.values()))[0]
    if env == "chain":
        ret = (
            ("eval/expected_return", "exact expected return", ".3f")
            if has(variants, "eval/expected_return")
            else ("charts/episodic_return", "return", ".3f")
        )
    else:
        ret = ("charts/episodic_return", "training return", ".3f")
    columns = [
        ("meta/gamma", "γ", ".4f"),
        ret,
        ("meta/outer_advantage", "outer adv. (used)", ".2g"),
        ("meta/outer_advantage_inner_critic", "outer adv. V^γ", ".2g"),
        ("meta/outer_advantage_outer_critic", "outer adv. V^γ′", ".2g"),
    ]
    if env == "chain":
        m = args["mapping_seed"]
        columns += [
            ("meta/outer_advantage_s0", "outer adv. at s0", ".2g"),
            (f"policy/p_chain{m}", f"π(chain {m} | s0)", ".3f"),
            ("policy/p_chain0", "π(chain 0 | s0)", ".3f"),
        ]
        if not args.get("true_value", True):
            columns += [
                ("derived/outer_v_s0_error", "|V̂′(s0) − V^{π,γ′}(s0)| at the end", ".3f"),
                ("derived/outer_v_s0_error_mean", "same, mean over training", ".3f"),
            ]
    evaluated = env == "snake" and has(variants, "eval/episodic_return")
    if evaluated:
        columns += [
            ("eval/episodic_return", "eval return (sampled)", ".2f"),
            ("eval/episodic_return_greedy", "eval return (greedy)", ".2f"),
        ]
    labels = (
        ["variant", "seeds", "updates"]
        + [label for _, label, _ in columns]
        + (["last eval at update"] if evaluated else [])
        + (["paper's side"] if env == "chain" else [])
    )
    rows = []
    for name, (args, seeds) in variants.items():
        cells = [name, str(len(seeds)), f"{int(stacked(seeds, 'meta/gamma')[0][-1]):,}"]
        for metric, _, fmt in columns:
            curve = stacked(seeds, metric, window)
            cells.append(mean_std(curve[1][:, -1], fmt) if curve else "—")
        if evaluated:
            curve = stacked(seeds, "eval/episodic_return")
            cells.append(f"{int(curve[0][-1]):,}" if curve else "—")
        if env == "chain":
            cells.append(paper_side(name, seeds, args["mapping_seed"]))
        rows.append(cells)
    return markdown(labels, rows, f"γ and the outer advantages: means over the last {window} updates." if window else "")


def paper_side(name, seeds, mapping_seed):
    """Seeds that end where the paper's Figure 2 does: without the outer critic γ ≤ 0.91 with
    π(chain 0 | s0) still growing over the second half; with it γ ≥ 0.99 with π(paying chain | s0)
    still growing."""
    if name.startswith("A2C"):
        return "—"
    chain = mapping_seed if "outer critic" in name else 0
    gamma = stacked(seeds, "meta/gamma")[1][:, -1]
    p = stacked(seeds, f"policy/p_chain{chain}")[1]
    growing = p[:, -1] > p[:, p.shape[1] // 2]
    ok = (gamma >= 0.99) & growing if "outer critic" in name else (gamma <= 0.91) & growing
    return f"{int(ok.sum())}/{len(seeds)}"


class Quantity(NamedTuple):
    """A quantity of the --at-updates tables, and how it is read at an update."""

    metric: str
    label: str
    fmt: str
    window: int = 0  # > 0: the trailing mean over this many updates (γ, the outer advantages)
    nearest: bool = False  # the log point nearest the update, not the last one ≤ it (Snake's evaluations)


def at_updates_quantities(variants, env, window):
    """{the reference's metric: (its column's label, [our quantities beside it])}: γ, the evaluation
    returns and the outer-loss advantage with each head, in the order of the --at-updates tables."""
    snake = env == "snake"  # Snake evaluates every --eval-every updates, between log points: the nearest one
    returns = [
        Quantity("eval/episodic_return", "eval return", ".2f", nearest=True)
        if snake
        else Quantity("eval/expected_return", "exact expected return", ".2f")
    ]
    if has(variants, "eval/episodic_return_greedy"):
        returns.append(Quantity("eval/episodic_return_greedy", "eval return, greedy", ".2f", nearest=True))
    advantages = [
        Quantity(metric, label, ".3f", window)
        for metric, label in (
            ("meta/outer_advantage_inner_critic", "outer adv. V^γ"),
            ("meta/outer_advantage_outer_critic", "outer adv. V^γ′"),
        )
        if has(variants, metric)
    ]
    groups = {
        "meta/gamma": ("γ", [Quantity("meta/gamma", "γ", ".3f", window)]),
        "eval/episodic_return": ("eval return", returns),
        "meta/outer_advantage": ("outer adv., the one used", advantages),
    }
    return {metric: group for metric, group in groups.items() if group[1]}


def at_updates_table(variants, env, updates, window, reference, groups):
    """The --at-updates quantities at the given updates: ours (mean ± std over seeds) beside the
    reference's (mean ± std over its seeds, from the CSV's row at that update)."""
    note = (
        f'γ: mean over the {window} updates ending at the update, ours at the last log point ≤ it ("at" when that differs)'
        if window
        else 'γ: at the last log point ≤ the update ("at" when it differs)'
    )
    note += (
        "; evaluation return: ours is the evaluation nearest the update (512 games, sampled actions; "
        '"at" the update its policy was at)'
        if env == "snake"
        else "; exact expected return at the last log point ≤ the update"
    )
    if "meta/outer_advantage" in groups:
        note += "; outer-loss advantage (batch mean) with the inner head V^γ and with the outer head V^γ′: read as γ" + (
            "; the reference logged the one its outer loss used (V^γ′ with the outer critic, V^γ without)" if reference else ""
        )
    labels = ["variant", "update"]
    for reference_label, ours in groups.values():
        labels += [f"{q.label} (ours)" for q in ours] + ([f"{reference_label} (reference)"] if reference else [])
    rows = []
    for name, (_, seeds) in variants.items():
        for update in updates:
            cells = [f"{name} ({len(seeds)} seeds)", f"{update:,}"]
            for reference_metric, (_, ours) in groups.items():
                cells += [ours_at(seeds, q, update) for q in ours]
                if reference:
                    cells.append(reference_at(reference, name, reference_metric, update, ours[0].fmt))
            rows.append(cells)
    return markdown(labels, rows, note + ".")


def at_updates_seeds_table(variants, updates, groups):
    """Each seed's value of the --at-updates quantities, read as in at_updates_table."""
    quantities = [q for _, ours in groups.values() for q in ours]
    rows = []
    for name, (_, seeds) in variants.items():
        ids = [s["seed"] for s in seeds]
        for update in updates:
            cells = [name, f"{update:,}", ", ".join(map(str, ids))]
            for q in quantities:
                found = seed_values_at(seeds, q, update)
                if found is None or all(math.isnan(v) for _, v in found[1]):
                    cells.append("—")
                    continue
                at, values = found
                named = [s for s, _ in values] != ids  # some seed has no such metric: name each seed
                cells.append(", ".join((f"{s}: " if named else "") + f"{v:{q.fmt}}" for s, v in values) + at_note(at, update))
            rows.append(cells)
    labels = ["variant", "update", "seeds"] + [q.label for q in quantities]
    return markdown(labels, rows, "Seed by seed, the same quantities (in the order of the seeds column).")


def seed_values_at(seeds, quantity, update, among=None):
    """(the update of the log point read, [(seed id, value)]) of a quantity at `update`: at the last
    log point ≤ it, or at the nearest one (quantity.nearest), among the log points every seed has (and,
    given `among`, that are in it); None when there is none."""
    curve = stacked(seeds, quantity.metric, quantity.window)
    if curve is None:
        return None
    updates, values = curve
    candidates = updates if among is None else np.intersect1d(updates, among)
    if quantity.nearest and len(candidates):
        at = candidates[np.argmin(np.abs(candidates - update))]
    else:
        i = int(np.searchsorted(candidates, update, side="right")) - 1
        if i < 0:
            return None
        at = candidates[i]
    column = values[:, int(np.searchsorted(updates, at))]
    return float(at), [(s["seed"], float(v)) for s, v in zip([s for s in seeds if quantity.metric in s], column)]


def at_note(at, update):
    return f" (at {at:,.0f})" if at != update else ""


def ours_at(seeds, quantity, update):
    """mean ± std over seeds at `update` (see seed_values_at), "at" the log point's update when it differs."""
    found = seed_values_at(seeds, quantity, update)
    if found is None:
        return "—"
    at, values = found
    text = mean_std(np.array([v for _, v in values]), quantity.fmt)
    return text if text == "—" else text + at_note(at, update)


def reference_at(reference, name, metric, update, fmt):
    found = reference_curve(reference, name, metric)
    if found is None:
        return "—"
    updates, mean, std, seeds = found
    i = int(np.argmin(np.abs(updates - update)))
    greedy = ", greedy" if metric in EVAL_METRICS and (REFERENCE_VARIANTS[name], "eval_return") not in reference else ""
    at = f", at {updates[i]:,.0f}" if updates[i] != update else ""
    return f"{mean[i]:{fmt}} ± {std[i]:{fmt}} ({int(seeds[i])} seeds{greedy}{at})"


# ---------------------------------------------------------------------------------------------
# With and without the outer critic, seed by seed
# ---------------------------------------------------------------------------------------------
def incomplete_beta(a, b, x):
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified
    Lentz; Numerical Recipes, 3rd ed., 6.4), to ~1e-14."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast below this point; use the symmetry
        return 1.0 - incomplete_beta(b, a, 1.0 - x)
    tiny = 1e-300
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * fraction


def t_test_p(t, df):
    """Two-sided p-value of Student's t with df degrees of freedom: P(|T| ≥ |t|) = I_{df/(df+t²)}(df/2, 1/2)."""
    if math.isnan(t) or math.isnan(df) or df <= 0:
        return math.nan
    if math.isinf(t):
        return 0.0
    return incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def welch_t_test(a, b):
    """(t, Welch–Satterthwaite df, two-sided p) of mean(a) − mean(b), sample variances (ddof 1)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return math.nan, math.nan, math.nan
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df, t_test_p(t, df)


def paired_t_test(differences):
    """(t, df, two-sided p) of the mean of paired differences against 0."""
    d = np.asarray(differences, float)
    if len(d) < 2 or d.std(ddof=1) == 0:
        return math.nan, math.nan, math.nan
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    return t, len(d) - 1, t_test_p(t, len(d) - 1)


def outer_critic_pairs(variants):
    """{method: (seeds with the outer critic, seeds without)} of each method (MG, BMG) run both ways on
    the same seeds; a note on stderr where its seeds differ or repeat."""
    pairs = {}
    for method in ("MG", "BMG"):
        if method not in variants or f"{method} + outer critic" not in variants:
            continue
        with_oc, without = variants[f"{method} + outer critic"][1], variants[method][1]
        ids = [sorted(s["seed"] for s in seeds) for seeds in (with_oc, without)]
        if ids[0] != ids[1] or len(set(ids[0])) != len(ids[0]):
            print(
                f"note: no paired comparison of {method} with and without the outer critic: their seeds "
                f"differ or repeat ({', '.join(map(str, ids[0]))} and {', '.join(map(str, ids[1]))})",
                file=sys.stderr,
            )
            continue
        pairs[method] = (with_oc, without)
    return pairs


def paired_values(with_oc, without, quantity, update=math.inf):
    """(the update read, seed ids, values with the outer critic, values without, in the ids' order) of
    a quantity at `update` (by default the last) as seed_values_at reads it, among the log points both
    variants have; None when they have none there."""
    curves = [stacked(seeds, quantity.metric, quantity.window) for seeds in (with_oc, without)]
    if curves[0] is None or curves[1] is None:
        return None
    common = np.intersect1d(curves[0][0], curves[1][0])
    found = [seed_values_at(seeds, quantity, update, among=common) for seeds in (with_oc, without)]
    if found[0] is None:  # so is found[1]: the same log points
        return None
    (at, a), (_, b) = found
    a, b = dict(a), dict(b)
    order = sorted(a)
    if order != sorted(b):  # a seed without the metric on one side
        return None
    return at, order, np.array([a[s] for s in order]), np.array([b[s] for s in order])


def difference_cells(order, difference, fmt):
    """Each seed's difference, their mean ± std (ddof 0), and the paired t-test's two-sided p."""
    return [
        ", ".join(f"{s}: {d:+{fmt}}" for s, d in zip(order, difference)),
        f"{difference.mean():{fmt}} ± {difference.std():{fmt}}",
        number(paired_t_test(difference)[2], ".3g"),
    ]


def paired_comparisons(pairs, env):
    """Markdown table: each method with the outer critic against without it, seed by seed, at the
    last update both evaluated; "" when no method is there both ways on the same seeds."""
    quantity = Quantity("eval/episodic_return" if env == "snake" else "eval/expected_return", "", ".2f")
    rows = []
    for method, (with_oc, without) in pairs.items():
        found = paired_values(with_oc, without, quantity)
        if found is None:  # no evaluation
            continue
        update, order, a, b = found
        t, df, p = welch_t_test(a, b)
        per_seed, mean, p_paired = difference_cells(order, a - b, ".2f")
        rows.append(
            [
                f"{method} + outer critic − {method}",
                str(len(order)),
                f"{int(update):,}",
                per_seed,
                mean,
                f"{number(t, '.2f')} ({number(df, '.1f')})",
                number(p, ".3g"),
                p_paired,
            ]
        )
    if not rows:
        return ""
    what = "evaluation return (512 games, sampled actions)" if env == "snake" else "exact expected return"
    labels = [
        "comparison",
        "seeds",
        "at update",
        "difference per seed (seed: with − without)",
        "difference, mean ± std (ddof 0)",
        "Welch's t (df)",
        "p, Welch (two-sided)",
        "p, paired t (two-sided)",
    ]
    return markdown(labels, rows, f"With and without the outer critic, seed by seed: the final {what}.")


def at_updates_differences(pairs, updates, groups):
    """Markdown table: each method with the outer critic against without it, seed by seed, at the
    given updates, for γ and the evaluation returns; "" when there is no pair."""
    quantities = groups["meta/gamma"][1] + groups["eval/episodic_return"][1]
    rows = []
    for method, (with_oc, without) in pairs.items():
        for update in updates:
            for q in quantities:
                found = paired_values(with_oc, without, q, update)
                if found is not None:
                    at, order, a, b = found
                    rows.append(
                        [
                            f"{method} + outer critic − {method}",
                            f"{update:,}",
                            q.label,
                            f"{at:,.0f}",
                            str(len(order)),
                            *difference_cells(order, a - b, q.fmt),
                        ]
                    )
    if not rows:
        return ""
    labels = [
        "comparison",
        "update",
        "quantity",
        "read at update",
        "seeds",
        "difference per seed (seed: with − without)",
        "difference, mean ± std (ddof 0)",
        "p, paired t (two-sided)",
    ]
    return markdown(
        labels,
        rows,
        "With and without the outer critic at the updates, seed by seed: each quantity "
        "read as above, at a log point both variants have.",
    )


def main():
    options = tyro.cli(Args)
    check_args(options)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # nanmean/nanstd of all-NaN columns: shown as —
    runs = []
    for run_dir in find_runs(options.runs):
        try:
            runs.append((run_dir, *load_run(run_dir)))
        except ValueError as reason:
            print(f"skipping {run_dir}: {reason}", file=sys.stderr)
    if not runs:
        fail(f"no run with log points in {' '.join(options.runs)}")
    envs = defaultdict(list)
    for run_dir, args, _ in runs:
        envs[environment(args)].append(run_dir)
    if len(envs) > 1:
        fail(
            f"the runs mix the Discounting Chain ({len(envs['chain'])} runs) and Snake ({len(envs['snake'])} runs); "
            "plot each environment on its own, e.g. python plot.py runs/chain_<time>"
        )
    (env,) = envs
    mapping_seeds = sorted({args["mapping_seed"] for _, args, _ in runs if "mapping_seed" in args})
    if len(mapping_seeds) > 1:  # the π(paying chain | s0) panel would mix different chains
        fail(f"the chain runs pay on different chains (--mapping-seed {', '.join(map(str, mapping_seeds))}); plot them apart")
    if options.reference not in ("auto", "none") and env == "chain":
        fail("--reference: the reference curves are Snake's, and these are chain runs")
    reference = None
    if options.reference == "auto" and env == "snake":
        if os.path.isfile(REFERENCE):
            reference = load_reference(REFERENCE)
        else:
            print(f"note: no reference curves drawn ({REFERENCE} is missing)", file=sys.stderr)
    elif options.reference not in ("auto", "none"):
        reference = load_reference(options.reference)

    variants = group_runs(runs)
    plot(variants, env, options, reference)
    pairs = outer_critic_pairs(variants)
    tables = [table(variants, env, options.window), paired_comparisons(pairs, env)]
    if options.at_updates:
        window = options.window or (REFERENCE_EPOCH if env == "snake" else 0)
        groups = at_updates_quantities(variants, env, window)
        tables += [
            at_updates_table(variants, env, options.at_updates, window, reference, groups),
            at_updates_seeds_table(variants, options.at_updates, groups),
            at_updates_differences(pairs, options.at_updates, groups),
        ]
    text = "\n\n".join(t for t in tables if t)
    print(text)
    if options.tables_out:
        os.makedirs(os.path.dirname(options.tables_out) or ".", exist_ok=True)
        with open(options.tables_out, "w") as f:
            f.write(text + "\n")
        print(f"wrote {options.tables_out}")


if __name__ == "__main__":
    main()
