"""Does γ track the return across seeds? Each seed's final γ against its final evaluation return, ours over
the reference implementation's 10 seeds, and when each seed first reaches the board's maximum.

    python experiments/gamma_return_scatter.py docs/data/fig3 --out docs/snake_gamma_return.png

Ours: γ as the mean over the 146 updates (the reference's epoch) ending at the last log point, and the last
evaluation's return (512 games, sampled actions). The reference's (docs/data/reference_snake_seeds.csv, the
last rows of its snake/data/ CSVs): γ of its last epoch (update 29,346) and its last evaluation (update
29,200). A 6×6 board holds 35 points; a seed "reaches the maximum" at its first evaluation ≥ 34.
Printed (markdown): per variant and source, γ and return (mean ± std), Kendall's rank correlation of γ
and return across seeds (scipy.stats), and how many seeds reached the maximum and when; then ours seed
by seed.
"""

import dataclasses
import os
import sys
from typing import Annotated

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tyro
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import plot  # noqa: E402  (plot.py lives at the repository's root)

matplotlib.use("Agg")
SEEDS_CSV = os.path.join(os.path.dirname(plot.REFERENCE), "reference_snake_seeds.csv")
EPOCH = 146  # the reference's γ is a mean over one epoch of 146 updates
MAX_RETURN = 34.0  # an evaluation return at or above this counts as the maximum (35 points), as in the seeds CSV


@dataclasses.dataclass
class Args:
    runs: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="PATH...")] = ()
    """Snake run directories, or folders searched for them (as plot.py)"""
    out: str = "gamma_return.png"
    """where the scatter (PNG) is written"""
    reference: str = SEEDS_CSV
    """the reference's seeds (CSV: variant, run, last_gamma, last_return, first_step_return_ge_34); none: without"""


def check_args(options):
    if not options.runs:
        plot.fail("give Snake run directories, e.g. python experiments/gamma_return_scatter.py docs/data/fig3")
    if options.reference != "none" and not os.path.isfile(options.reference):
        plot.fail(f"--reference {options.reference} is not a file")
    if os.path.isdir(options.out):
        plot.fail(f"--out {options.out} is a directory; give the PNG's path")


def our_seeds(variants):
    """{variant: DataFrame of seed, gamma, return, update (of the last evaluation), first_max (update or NaN)}."""
    found = {}
    for name, (_, seeds) in variants.items():
        rows = []
        for seed in seeds:
            gammas = plot.per_seed(seed, "meta/gamma", EPOCH)[1]
            updates, returns = plot.per_seed(seed, "eval/episodic_return")
            reached = updates[returns >= MAX_RETURN]
            first = reached[0] if len(reached) else np.nan
            rows.append(dict(seed=seed["seed"], gamma=gammas[-1], ret=returns[-1], update=updates[-1], first_max=first))
        found[name] = pd.DataFrame(rows)
    return found


def reference_seeds(path, names):
    """{our variant name: DataFrame of run, gamma, return, first_max} for the variants we also ran."""
    frame = pd.read_csv(path)
    found = {}
    for name in names:
        rows = frame[frame["variant"] == plot.REFERENCE_VARIANTS.get(name)]
        if len(rows):
            columns = {"last_gamma": "gamma", "last_return": "ret", "first_step_return_ge_34": "first_max"}
            found[name] = rows.rename(columns=columns)[["run", "gamma", "ret", "first_max"]].reset_index(drop=True)
    return found


def kendall(gamma, ret):
    """Kendall's rank correlation with its two-sided p-value, exact for these few seeds (scipy.stats)."""
    result = stats.kendalltau(gamma, ret)
    return f"{result.statistic:+.2f} (p {result.pvalue:.2g})"


def summary_rows(source, frames):
    rows = []
    for name, f in frames.items():
        first = f["first_max"].dropna()
        when = f"{first.min():,.0f}–{first.max():,.0f} (median {first.median():,.0f})" if len(first) else "—"
        rows.append(
            [
                name,
                source,
                str(len(f)),
                plot.mean_std(f["gamma"].to_numpy(), ".3f"),
                plot.mean_std(f["ret"].to_numpy(), ".2f"),
                kendall(f["gamma"], f["ret"]),
                f"{len(first)}/{len(f)}",
                when,
            ]
        )
    pooled = pd.concat(frames.values())
    rows.append(["all of the above", source, str(len(pooled)), "", "", kendall(pooled["gamma"], pooled["ret"]), "", ""])
    return rows


def scatter(ours, reference, options):
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for name, f in reference.items():
        color = plot.style(name)["color"]
        ax.scatter(
            f["gamma"], f["ret"], facecolors="none", edgecolors=color, s=30, label=f"{name}, the reference ({len(f)} seeds)"
        )
    for name, f in ours.items():
        color = plot.style(name)["color"]
        ax.scatter(f["gamma"], f["ret"], color=color, s=40, marker="D", zorder=3, label=f"{name}, ours ({len(f)} seeds)")
        for _, row in f.iterrows():
            ax.annotate(
                str(int(row["seed"])), (row["gamma"], row["ret"]), xytext=(4, -3), textcoords="offset points", fontsize=7
            )
    ax.axhline(35, color="0.5", linestyle=":", linewidth=0.8)
    ax.annotate("35: the board's maximum", (0, 35), xycoords=("axes fraction", "data"), va="bottom", fontsize=7, color="0.4")
    ax.set_xlabel(f"final γ (mean over the last {EPOCH} updates)")
    ax.set_ylabel("final evaluation return (512 games, sampled)")
    ax.set_title("Snake 6×6: each seed's final γ and return", fontsize=10)
    ax.legend(fontsize=7.5, frameon=False, loc="upper left", bbox_to_anchor=(0, 0.95))
    fig.tight_layout()
    os.makedirs(os.path.dirname(options.out) or ".", exist_ok=True)
    fig.savefig(options.out, dpi=110)
    print(f"wrote {options.out}")


def main():
    options = tyro.cli(Args)
    check_args(options)
    env, variants = plot.load_runs(options.runs)
    if env != plot.SNAKE:
        plot.fail(f"these are {env} runs: the scatter is of Snake's evaluation returns, beside the reference's")
    if not plot.has(variants, "eval/episodic_return"):
        plot.fail("the runs have no evaluation (--eval-every 0)")
    ours = our_seeds(variants)
    reference = {} if options.reference == "none" else reference_seeds(options.reference, ours)
    scatter(ours, reference, options)
    last = sorted({f"{u:,.0f}" for f in ours.values() for u in f["update"]})
    labels = ["variant", "source", "seeds", "final γ", "final return", "Kendall τ(γ, return)", "seeds ≥ max", "first at"]
    rows = summary_rows(f"ours (last evaluation at {', '.join(last)})", ours)
    if reference:
        rows += summary_rows("the reference (29,200)", reference)
    print(plot.markdown(labels, rows, f"Maximum: an evaluation return ≥ {MAX_RETURN:g}; first at: the update."))
    print()
    seed_rows = []
    for name, f in ours.items():
        for _, r in f.iterrows():
            first = "never" if np.isnan(r["first_max"]) else f"{r['first_max']:,.0f}"
            seed_rows.append([name, str(int(r["seed"])), f"{r['gamma']:.3f}", f"{r['ret']:.2f}", first])
    print(plot.markdown(["variant", "seed", "final γ", "final return", f"first evaluation ≥ {MAX_RETURN:g}"], seed_rows))


if __name__ == "__main__":
    main()
