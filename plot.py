"""Figures from the runs' metrics.csv (paper Figures 2, 3, 5 and 6), and a table of each variant's last log point.

    python plot.py runs/<env>__<exp_name>__<seed>__<time>    # one run: writes <that run>/figure.png
    python plot.py runs/                                      # every run below runs/: writes runs/figure.png
    python plot.py docs/data/fig3/*_seeds0-2 --window 146 --mark-updates 1460 7446 14600 29346 \\
        --out docs/snake_paper_budget.png

Each path is a run directory (metrics.csv, or docs/data/'s metrics.csv.gz) or a folder searched for them at any
depth (e.g. a SLURM job array's runs/array/<variant>_s<seed>/<run>/). The seeds of one variant (variant_name,
from args.json) are pooled across runs into one curve, mean ± std over seeds, cut to the log points every seed
reached. On Snake the reference implementation's curves (10 seeds, docs/data/reference_snake_curves.csv) are
drawn dotted; they are means over 146-update epochs, as ours with `--window 146`. The tables beside the paper
and the reference are experiments/reference_tables.py's.
"""

import dataclasses
import functools
import gzip
import io
import json
import os
import sys
import types
import warnings
from collections import Counter
from typing import Annotated, Literal

import matplotlib
import matplotlib.lines
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tyro

matplotlib.use("Agg")  # no windows: the figure is only written (this works after pyplot's import)

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "docs", "data", "reference_snake_curves.csv")
VARIANT_ORDER = ["A2C", "MG", "MG + outer critic", "BMG", "BMG + outer critic"]
REFERENCE_VARIANTS = {"A2C": "A2C", "MG": "MG", "MG + outer critic": "MG+oc", "BMG": "BMG", "BMG + outer critic": "BMG+oc"}
COLORS = {"MG": "tab:red", "MG + outer critic": "tab:blue", "BMG": "tab:orange", "BMG + outer critic": "tab:cyan"}  # A2C grey
SNAKE = "Snake-6x6-v0"  # common_envs.SNAKE_ENV_ID: the Snake scripts' default --env-id (older args.json lack it)
RUN_EXAMPLE = "runs/<env>__<exp_name>__<seed>__<time>"  # the folder a plain run of a script makes
# The parts of a default exp name (mg_chain_oc_learned) in the words of the figures and tables.
NAME_WORDS = {
    "a2c": "A2C",
    "mg": "MG",
    "bmg": "BMG",
    "oc": " + outer critic",
    "learned": ", learned critic",
    "norm": ", normalised advantage",
}


@dataclasses.dataclass
class Args:
    runs: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="PATH...")] = ()
    """run directories, or folders searched for them (e.g. runs/<env>__<exp_name>__<seed>__<time>/ or runs/)"""
    out: str = ""
    """where the PNG is written; empty = figure.png in the one folder given, or in the folder holding all of them"""
    title: str = ""
    """figure title; empty = the environment"""
    x: Literal["updates", "steps"] = "updates"
    """x-axis: meta-updates (the paper's iterations), or inner environment steps of one seed"""
    window: int = 0
    """draw γ and the outer advantage as trailing means over this many updates (146: the reference's); 0 = as logged"""
    mark_updates: tuple[int, ...] = ()
    """updates marked with a vertical line on every panel"""
    reference: str = "auto"
    """reference curves (CSV: variant, metric, update, mean, std, seeds); auto: the bundled
    docs/data/reference_snake_curves.csv for Snake runs; none: no reference"""


def fail(message):
    """Bad input: one line on stderr, exit code 2, nothing written."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_args(options):
    if not options.runs:
        fail(f"give run directories or folders holding them, e.g. python plot.py {RUN_EXAMPLE} or python plot.py runs/")
    if options.window < 0:
        fail(f"--window must be >= 0 (0: as logged), got {options.window}")
    if any(u < 0 for u in options.mark_updates):
        fail(f"--mark-updates must be >= 0, got {min(options.mark_updates)}")
    if options.reference not in ("auto", "none") and not os.path.isfile(options.reference):
        fail(f"--reference {options.reference} is not a file")
    if os.path.isdir(options.out):
        fail(f"--out {options.out} is a directory; give the PNG's path")


def default_out(paths):
    """figure.png in the one folder given, or in the deepest folder holding every path given."""
    return os.path.join(os.path.commonpath([os.path.abspath(p) for p in paths]), "figure.png")


# --- Finding and reading runs ---
def find_runs(paths):
    """Every run directory (one holding args.json or metrics.csv[.gz]) given or found below the paths."""
    found = {}  # real path -> the path as given, so a run named twice counts once
    for path in paths:
        if not os.path.exists(path):
            fail(f"{path} does not exist")
        if not os.path.isdir(path):
            fail(f"{path} is not a directory: give run directories or folders holding them")
        here = []
        for root, dirs, files in os.walk(path):
            if {"args.json", "metrics.csv", "metrics.csv.gz"} & set(files):
                here.append(root)
                dirs.clear()  # below a run are only its seed<N>/ TensorBoard folders
            dirs.sort()
        if not here:
            fail(f"no run directory (with args.json, metrics.csv) in {path}")
        for root in here:
            found.setdefault(os.path.realpath(root), os.path.normpath(root))
    return sorted(found.values())


def read_metrics(run_dir):
    """A run's metrics.csv as a DataFrame of numbers (columns seed, global_step, then the metrics), one row
    per seed and log point, sorted by seed and global_step. A log point written twice (a run resumed from
    an older checkpoint) counts once, the last; a row still being written (no newline yet) is left out.
    ValueError: a value that is not a number."""
    path = os.path.join(run_dir, "metrics.csv")
    with open(path) if os.path.exists(path) else gzip.open(path + ".gz", "rt") as f:  # docs/data/ holds .gz
        text = f.read()
    frame = pd.read_csv(io.StringIO(text[: text.rfind("\n") + 1])).apply(pd.to_numeric)
    frame = frame.drop_duplicates(["seed", "global_step"], keep="last")
    return frame.sort_values(["seed", "global_step"], ignore_index=True)


def environment(args):
    """ "chain", or the Snake scripts' --env-id: Snake-6x6-v0 or a MinAtar game."""
    return "chain" if "chain" in args.get("script", "") or "mapping_seed" in args else args.get("env_id", SNAKE)


def eval_games(env):
    """Games per evaluation of the Snake scripts on `env` (sampled, and as many greedy)."""
    import common_envs  # here, not at the top: it imports JAX, which read_metrics' users do without

    return common_envs.SNAKE_EVAL_GAMES if env == SNAKE else common_envs.MINATAR_EVAL_GAMES


def steps_per_batch(args):
    """Inner environment steps of one seed per update (on the chain, one whole episode per env)."""
    import common_envs  # here, not at the top: it imports JAX, which read_metrics' users do without

    return args["num_envs"] * (common_envs.CHAIN_EPISODE_LENGTH if environment(args) == "chain" else args["num_steps"])


def load_run(run_dir):
    """(args, [per-seed {metric: array over log points}]), each seed with its "seed" id, its "update"
    and, with evaluations, "eval/update". ValueError: why the run cannot be plotted."""
    if not {"metrics.csv", "metrics.csv.gz"} & set(os.listdir(run_dir)):
        raise ValueError("no metrics.csv (the run stopped before its first log point, e.g. while compiling)")
    try:
        with open(os.path.join(run_dir, "args.json")) as f:
            args = json.load(f)
        frame = read_metrics(run_dir)
        batch = steps_per_batch(args)
        variant_name(args)
    except FileNotFoundError:
        raise ValueError("no args.json") from None
    except (OSError, ValueError, KeyError, TypeError) as error:  # a hand-edited or foreign file
        raise ValueError(f"unreadable args.json or metrics.csv ({type(error).__name__}: {error})") from None
    seeds = []
    for seed_id, rows in frame.groupby("seed"):
        m = {name: rows[name].to_numpy(float) for name in rows.columns if name != "seed"}
        m["seed"] = int(seed_id)  # an int, not a metric: what pairs the seeds of two variants
        m["update"] = m["global_step"] / batch
        if "eval/global_step" in m:
            m["eval/update"] = m["eval/global_step"] / batch
        seeds.append(m)
    if not seeds:
        raise ValueError("no log points yet in metrics.csv")
    return args, seeds


def variant_name(args):
    """The variant, from args.json, in words: the name a run gets when --exp-name is not given
    (common_run.default_exp_name: A2C for --meta-lr 0, else MG or BMG by script, + outer critic, and the
    options that make another curve: the chain's --no-true-value, --normalize-advantage)."""
    from common_run import default_exp_name  # here, not at the top: it imports JAX, which read_metrics' users do without

    options = types.SimpleNamespace(
        meta_lr=args["meta_lr"],
        outer_critic=args["outer_critic"],
        true_value=args.get("true_value", True),  # the chain's option
        normalize_advantage=args.get("normalize_advantage", False),
    )
    algorithm, _environment, *variations = default_exp_name(options, args["script"]).split("_")
    return NAME_WORDS[algorithm] + "".join(NAME_WORDS[variation] for variation in variations)


def variant_key(name):
    """A2C, MG, MG + outer critic, BMG, BMG + outer critic, each before its variations (", normalised advantage")."""
    base = name.split(",")[0]
    return (VARIANT_ORDER.index(base) if base in VARIANT_ORDER else len(VARIANT_ORDER), name)


def group_runs(runs):
    """{variant: (args of its first run, [per-seed metric dicts])}, seeds pooled over runs."""
    variants = {}
    # A2C runs at several fixed γ (e.g. MinAtar's 0.8 and 0.99) are several curves: their γ joins the name.
    a2c_gammas = {args["gamma_init"] for _, args, _ in runs if args["meta_lr"] == 0}
    for _, args, seeds in runs:
        name = variant_name(args)
        if args["meta_lr"] == 0 and len(a2c_gammas) > 1:
            name += f", γ = {args['gamma_init']:g}"
        variants.setdefault(name, (args, []))[1].extend(seeds)
    for name, (_, seeds) in variants.items():
        ends = sorted({int(s["update"][-1]) for s in seeds})
        if len(ends) > 1:
            note = f"its seeds end at different updates ({', '.join(f'{u:,}' for u in ends)}); curves and tables stop at"
            print(f"note: {name}: {note} {ends[0]:,}, the shortest", file=sys.stderr)
    return dict(sorted(variants.items(), key=lambda item: variant_key(item[0])))


def load_runs(paths):
    """(the environment, {variant: (args, seeds)}) of the runs found below `paths`; bad input exits 2."""
    runs = []
    for run_dir in find_runs(paths):
        try:
            runs.append((run_dir, *load_run(run_dir)))
        except ValueError as reason:
            print(f"skipping {run_dir}: {reason}", file=sys.stderr)
    if not runs:
        fail(f"no run with log points in {' '.join(paths)}")
    envs = Counter(environment(args) for _, args, _ in runs)
    if len(envs) > 1:
        fail(
            f"the runs mix environments ({', '.join(f'{env}: {n} runs' for env, n in sorted(envs.items()))}); "
            f"plot each environment on its own, e.g. python plot.py {RUN_EXAMPLE}"
        )
    mapping_seeds = sorted({args["mapping_seed"] for _, args, _ in runs if "mapping_seed" in args})
    if len(mapping_seeds) > 1:  # the π(paying chain | s0) panel would mix different chains
        fail(f"the chain runs pay on different chains (--mapping-seed {', '.join(map(str, mapping_seeds))}); plot them apart")
    (env,) = envs
    return env, group_runs(runs)


# --- Curves: one metric of every seed of a variant, on common log points ---
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
    """(updates, values) of one seed: Snake's evaluations at the update the evaluated policy was at (rows
    without one dropped), the training episodes' statistics at the log points where some ended; γ and the
    outer advantages as trailing means when `window` > 0."""
    if metric.startswith("eval/") and "eval/update" in seed:
        keep = ~np.isnan(seed["eval/update"])
        updates, values = seed["eval/update"][keep], seed[metric][keep]
    else:
        updates, values = seed["update"], seed[metric]
        if metric.startswith("charts/episodic_"):  # where no episode ended: dropped (Freeway's all end together)
            keep = ~np.isnan(values)
            updates, values = updates[keep], values[keep]
        if window and (metric == "meta/gamma" or metric.startswith("meta/outer_advantage")):  # --window's quantities
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


# --- The reference's curves (Snake) ---
def load_reference(path):
    """{(variant, metric): array [4, points] of update, mean, std, seeds} from the reference CSV."""
    try:
        frame = pd.read_csv(path).sort_values("update")
        columns = ["update", "mean", "std", "seeds"]
        return {key: rows[columns].to_numpy(float).T for key, rows in frame.groupby(["variant", "metric"])}
    except OSError as error:
        fail(f"--reference {path}: {error.strerror}")
    except (KeyError, TypeError, ValueError):
        fail(f"--reference {path} needs the columns variant, metric, update, mean, std, seeds (numbers in the last four)")


def reference_curve(reference, name, metric):
    """The reference's curve [update, mean, std, seeds] for our variant `name` and `metric`, or None. The
    reference logged the outer advantage its meta-loss used: with V^γ′ with the outer critic, V^γ without;
    it evaluated A2C greedily only."""
    if not reference or name not in REFERENCE_VARIANTS:
        return None
    used = "meta/outer_advantage_" + ("outer_critic" if "outer critic" in name else "inner_critic")
    keys = {"meta/gamma": "gamma", "meta/outer_advantage": "outer_advantage", used: "outer_advantage"}
    keys |= {"eval/episodic_return": "eval_return", "eval/episodic_return_greedy": "eval_return_greedy"}
    return reference.get((REFERENCE_VARIANTS[name], keys.get(metric)))


# --- The figure ---
def style(name):
    """A colour per variant: the biased methods warm, the outer-critic ones cool, as the paper's; BMG dashed;
    A2C grey, darker the higher its fixed γ when there are several."""
    if name.startswith("A2C, γ = "):
        gamma = float(name.split(" = ")[1].split(",")[0])
        return {"color": f"{min(0.7, 3 * (1 - gamma)):.2f}", "linestyle": "-"}
    return {"color": COLORS.get(name.split(",")[0], "0.45"), "linestyle": "--" if name.startswith("BMG") else "-"}


def has(variants, metric):
    return any(metric in s for _, seeds in variants.values() for s in seeds)


def panels(env, variants, window):
    """(metric, title) of each panel."""
    args = next(iter(variants.values()))[0]
    mean = f"\n(mean over the last {window} updates)" if window else ""
    names = [("meta/gamma", "discount γ" + mean)]
    if env == "chain":
        m = args["mapping_seed"]
        ret = "eval/expected_return" if has(variants, "eval/expected_return") else "charts/episodic_return"
        names.append((ret, "exact expected return" if ret == "eval/expected_return" else "training-episode return"))
        names += [
            ("meta/outer_advantage_s0", "outer-loss advantage at s0 (Figure 5)" + mean),
            (f"policy/p_chain{m}", f"π(paying chain {m} | s0)"),
            ("policy/p_chain0", "π(myopic chain 0 | s0)"),
        ]
        if any(a.get("normalize_advantage") for a, _ in variants.values()):  # Figure 6: centred by construction
            names.append(("meta/outer_advantage", "normalised outer advantage, batch mean" + mean))
    else:
        games = eval_games(env)
        names += [
            ("eval/episodic_return", f"evaluation return ({games} games, sampled actions)"),
            ("eval/episodic_return_greedy", f"evaluation return ({games} games, greedy)"),
            ("meta/outer_advantage_inner_critic", "outer-loss advantage with V^γ (inner head)" + mean),
            ("meta/outer_advantage_outer_critic", "outer-loss advantage with V^γ′ (outer head)" + mean),
            ("charts/episodic_return", "training-episode return"),
        ]
    return [(metric, title) for metric, title in names if has(variants, metric)]


def plot(variants, env, options, reference):
    in_updates = options.x == "updates"
    metric_panels = panels(env, variants, options.window)
    rows, cols = -(-len(metric_panels) // 3), 3
    spare = len(metric_panels) < rows * cols  # the legend goes into a spare panel, else below the panels
    below = 0 if spare else 0.2 + 0.22 * -(-(len(variants) + 1) // 3)  # inches for the legend's rows below the panels
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows + below), squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(metric_panels) :]:
        ax.axis("off")
    horizon = max(s["update"][-1] for _, seeds in variants.values() for s in seeds)  # the reference stops here
    legend = {}  # label -> line: one per variant (its colour), then one for all of the reference's curves
    for name, (args, seeds) in variants.items():
        scale = 1 if in_updates else steps_per_batch(args)
        for ax, (metric, _) in zip(axes, metric_panels):
            curve = stacked(seeds, metric, options.window)
            if curve is None or np.all(np.isnan(curve[1])):
                continue
            updates, values = curve
            mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
            marker = "o" if len(updates) == 1 else None  # a line through one point draws nothing
            (line,) = ax.plot(updates * scale, mean, marker=marker, **style(name))
            legend.setdefault(f"{name} ({len(seeds)} seeds)", line)
            ax.fill_between(updates * scale, mean - std, mean + std, color=style(name)["color"], alpha=0.2, linewidth=0)
            found = reference_curve(reference, name, metric)
            if found is not None:
                ref_updates, ref_mean, _, ref_seeds = found
                shown = ref_updates <= horizon
                ax.plot(ref_updates[shown] * scale, ref_mean[shown], color=line.get_color(), linestyle=":", linewidth=1.2)
                label = f"dotted: the reference implementation ({int(ref_seeds[0])} seeds)"
                legend.setdefault(label, matplotlib.lines.Line2D([], [], color="k", linestyle=":", linewidth=1.2))
    first_scale = 1 if in_updates else steps_per_batch(next(iter(variants.values()))[0])
    for ax, (_, title) in zip(axes, metric_panels):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("meta-updates (the paper's iterations)" if in_updates else "inner environment steps (one seed)")
        for update in options.mark_updates:
            ax.axvline(update * first_scale, color="0.5", linestyle=(0, (1, 3)), linewidth=0.8)
            where = dict(xy=(update * first_scale, 0.98), xycoords=("data", "axes fraction"))
            ax.annotate(f"{update:,}", **where, rotation=90, va="top", ha="right", fontsize=7)
    legend = dict(sorted(legend.items(), key=lambda item: item[0].startswith("dotted")))  # the reference's last
    if spare:
        axes[len(metric_panels)].legend(legend.values(), legend.keys(), loc="center", fontsize=8, frameon=False)
    else:
        fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=min(3, len(legend)), fontsize=8, frameon=False)
    title = {"chain": "Discounting Chain", SNAKE: "Snake 6×6"}.get(env, env)
    fig.suptitle(options.title or f"{title}: mean ± std over seeds")
    fig.tight_layout(rect=(0, below / fig.get_figheight(), 1, 1))
    os.makedirs(os.path.dirname(options.out) or ".", exist_ok=True)
    replaced = os.path.exists(options.out)
    fig.savefig(options.out, dpi=110)
    print(f"wrote {options.out}" + (" (replacing the file that was there)" if replaced else ""))
    return fig


# --- The table ---
def mean_std(values, fmt):
    if np.all(np.isnan(values)):
        return "—"
    return f"{np.nanmean(values):{fmt}} ± {np.nanstd(values):{fmt}}"


def markdown(labels, rows, note=""):
    """A markdown table (a "|" in a label escaped), below its note when there is one."""
    lines = ["| " + " | ".join(label.replace("|", "\\|") for label in labels) + " |", "|" + "---|" * len(labels)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(([note, ""] if note else []) + lines)


def table(variants, env, window):
    """Markdown table of each variant's last log point (last evaluation), mean ± std over seeds."""
    m = next(iter(variants.values()))[0].get("mapping_seed", 0)
    columns = {  # metric: (label, format), of the metrics some variant logged
        "meta/gamma": ("γ", ".4f"),
        "eval/expected_return": ("exact expected return", ".3f"),  # the chain's: the training return is left out
        "charts/episodic_return": ("return" if env == "chain" else "training return", ".3f"),
        "meta/outer_advantage": ("outer adv. (used)", ".2g"),
        "meta/outer_advantage_inner_critic": ("outer adv. V^γ", ".2g"),
        "meta/outer_advantage_outer_critic": ("outer adv. V^γ′", ".2g"),
        "meta/outer_advantage_s0": ("outer adv. at s0", ".2g"),
        f"policy/p_chain{m}": (f"π(chain {m} | s0)", ".3f"),
        "policy/p_chain0": ("π(chain 0 | s0)", ".3f"),
        "eval/episodic_return": ("eval return (sampled)", ".2f"),
        "eval/episodic_return_greedy": ("eval return (greedy)", ".2f"),
    }
    if has(variants, "eval/expected_return"):
        del columns["charts/episodic_return"]
    columns = {metric: column for metric, column in columns.items() if has(variants, metric)}
    evaluated = env != "chain" and has(variants, "eval/episodic_return")
    labels = ["variant", "seeds", "updates", *(label for label, _ in columns.values())]
    rows = []
    for name, (_, seeds) in variants.items():
        cells = [name, str(len(seeds)), f"{int(stacked(seeds, 'meta/gamma')[0][-1]):,}"]
        for metric, (_, fmt) in columns.items():
            curve = stacked(seeds, metric, window)
            cells.append(mean_std(curve[1][:, -1], fmt) if curve else "—")
        if evaluated:
            curve = stacked(seeds, "eval/episodic_return")
            cells.append(f"{int(curve[0][-1]):,}" if curve else "—")
        rows.append(cells)
    labels += ["last eval at update"] if evaluated else []
    return markdown(labels, rows, f"γ and the outer advantages: means over the last {window} updates." if window else "")


def reference_for(env, option):
    """The reference's curves to draw: --reference's file, or on Snake the bundled one (auto); None: none."""
    if option == "none" or (option == "auto" and env != SNAKE):
        return None
    if env != SNAKE:
        fail(f"--reference: the reference curves are Snake's, and these are {env} runs")
    if option == "auto" and not os.path.isfile(REFERENCE):
        print(f"note: no reference curves drawn ({REFERENCE} is missing)", file=sys.stderr)
        return None
    return load_reference(REFERENCE if option == "auto" else option)


def main():
    options = tyro.cli(Args)
    check_args(options)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # nanmean/nanstd of all-NaN columns: shown as —
    env, variants = load_runs(options.runs)
    reference = reference_for(env, options.reference)
    options = dataclasses.replace(options, out=options.out or default_out(options.runs))
    plot(variants, env, options, reference)
    print(table(variants, env, options.window))


if __name__ == "__main__":
    main()
