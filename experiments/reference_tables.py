"""The docs' tables beside the paper and the reference implementation, from the runs' metrics.csv.

    python experiments/reference_tables.py runs/chain_<time>                                  # the chain: the paper's side
    python experiments/reference_tables.py runs/snake_early_<time> --at-updates 438 584 1460  # Snake: beside the reference
    python experiments/reference_tables.py docs/data/fig3 --at-updates 1460 7446 14600 29346 --out fig3.md  # a file too
    python experiments/reference_tables.py runs/minatar_breakout --reference none                  # no reference: ours alone

The runs are found and grouped into variants as plot.py does (plot.load_runs). The tables (markdown, on
stdout, and with --out in that file too):
- plot.py's table: each variant's last log point, mean ± std over seeds (the population std, ddof 0,
  as the reference's curves give theirs: every "mean ± std" of a variant is);
- on the chain, the seeds on the paper's side (Figure 2): without the outer critic γ ≤ 0.91 with
  π(chain 0 | s0) still growing over the second half, with it γ ≥ 0.99 with π(paying chain | s0) still
  growing; with the learned critic (--no-true-value), the outer head's error |V̂′(s0) − V^{π,γ′}(s0)|;
- where a method ran with and without the outer critic on the same seeds (MG and MG + outer critic, BMG
  and BMG + outer critic): the final evaluation return (Snake: 512 games, MinAtar: 64, sampled actions; chain: the
  exact expected return) at the last update both evaluated, each seed's difference, their mean ± sample
  std (ddof 1, the spread the paired t-test uses), and the two-sided p-values of Welch's t-test and of
  the paired t-test (scipy.stats);
- with --at-updates U ...: at those updates, γ, the evaluation returns (sampled, greedy) and the
  outer-loss advantage with each head (γ and the advantages as means over --window updates, by default
  the reference's 146 on Snake), mean ± std beside the reference's; each seed's values; and for each
  method with and without the outer critic, the same seed's difference in γ and in the returns, their
  mean ± sample std (ddof 1) and the paired t-test's p, at a log point both have; beside the reference's γ
  and evaluation return, how far ours is from it in standard errors of the difference (Welch).
A value read at an update other than the one its row names (the last log point ≤ it, or for Snake's
evaluations the nearest) says where: "(at 7,500)" in the cell, or the "read at update" column.
"""

import dataclasses
import math
import os
import sys
import warnings
from typing import Annotated, NamedTuple

import numpy as np
import tyro
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import plot  # noqa: E402  (plot.py lives at the repository's root)
from plot import fail, has, markdown, mean_std, stacked  # noqa: E402

REFERENCE_EPOCH = 146  # updates per logged epoch in the reference: its γ and outer advantage are means over one
# What the tables' spreads are: a variant's mean ± std over seeds with the population std, as the reference's curves
# (its CSV: np.std over its seeds); the paired differences with the sample std that the paired t-test uses.
POPULATION = "mean ± std over seeds with the population std (ddof 0), as the reference's curves"
PAIRED = (
    "paired: the per-seed differences' mean ± sample std (ddof 1), the spread the paired t-test uses "
    "(scipy.stats.ttest_rel: t = mean / (std / √seeds), seeds − 1 df), and its two-sided p"
)


def with_note(table, note):
    """A markdown table (as plot.markdown writes it) with `note` before its own note, if it has one."""
    if not table:
        return table
    return note + "." + ("\n\n" if table.startswith("|") else " ") + table


@dataclasses.dataclass
class Args:
    runs: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="PATH...")] = ()
    """run directories, or folders searched for them (as plot.py)"""
    at_updates: tuple[int, ...] = ()
    """also the tables at these updates: γ, the evaluation returns and the outer advantages beside the
    reference's, each seed's values, and with − without the outer critic seed by seed"""
    window: int = -1
    """γ and the outer advantages as trailing means over this many updates; -1 = the reference's 146 on Snake, else 0"""
    reference: str = plot.REFERENCE
    """the reference's curves (CSV: variant, metric, update, mean, std, seeds), for Snake; none: no reference"""
    out: str = ""
    """also write the tables (markdown, as printed) to this file; empty = stdout only"""


def check_args(options):
    if not options.runs:
        fail("give run directories or folders holding them, e.g. python experiments/reference_tables.py runs/")
    if options.window < -1:
        fail(f"--window must be >= 0 (or -1: 146 on Snake, else 0), got {options.window}")
    if any(u < 0 for u in options.at_updates):
        fail(f"--at-updates must be >= 0, got {min(options.at_updates)}")
    if options.reference != "none" and not os.path.isfile(options.reference):
        fail(f"--reference {options.reference} is not a file")
    if options.out and os.path.isdir(options.out):
        fail(f"--out {options.out} is a directory; give the markdown file's path")


# ---------------------------------------------------------------------------------------------
# The chain: the paper's side
# ---------------------------------------------------------------------------------------------
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


def chain_table(variants):
    """Markdown table: each variant's seeds on the paper's side and, with the learned critic, the outer
    head's error at s0 at the end and averaged over training (mean ± std over seeds)."""
    learned = has(variants, "meta/outer_critic_v_s0")
    rows = []
    for name, (args, seeds) in variants.items():
        cells = [name, str(len(seeds)), paper_side(name, seeds, args["mapping_seed"])]
        if learned:
            errors = [
                np.abs(s["meta/outer_critic_v_s0"] - s["meta/true_outer_v_s0"]) for s in seeds if "meta/outer_critic_v_s0" in s
            ]
            cells += [
                mean_std(np.array([e[-1] for e in errors]), ".3f"),
                mean_std(np.array([e.mean() for e in errors]), ".3f"),
            ]
        rows.append(cells)
    labels = ["variant", "seeds", "paper's side"]
    labels += ["|V̂′(s0) − V^{π,γ′}(s0)| at the end", "same, mean over training"] if learned else []
    return markdown(labels, rows, f"The outer head's error: {POPULATION}." if learned else "")


# ---------------------------------------------------------------------------------------------
# At given updates, beside the reference
# ---------------------------------------------------------------------------------------------
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
    snake = env != "chain"  # Snake (and MinAtar) evaluate every --eval-every updates, between log points: the nearest one
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
    note = f"Ours and the reference's: {POPULATION}; "
    note += (
        f'γ: mean over the {window} updates ending at the update, ours at the last log point ≤ it ("at" when that differs)'
        if window
        else 'γ: at the last log point ≤ the update ("at" when it differs)'
    )
    note += (
        f"; evaluation return: ours is the evaluation nearest the update ({plot.eval_games(env)} games, sampled actions; "
        '"at" the update its policy was at)'
        if env != "chain"
        else "; exact expected return at the last log point ≤ the update"
    )
    if "meta/outer_advantage" in groups:
        note += "; outer-loss advantage (batch mean) with the inner head V^γ and with the outer head V^γ′: read as γ" + (
            "; the reference logged the one its outer loss used (V^γ′ with the outer critic, V^γ without)" if reference else ""
        )
    if reference:
        note += (
            "; \"ours … s.e.\": our mean − the reference's in standard errors of the difference (Welch: each side's "
            "sample variance, ddof 1), with the update ours was read at when it is not the row's"
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
                    found = seed_values_at(seeds, ours[0], update)  # the distance for γ and the return (not the heads)
                    found = found if reference_metric != "meta/outer_advantage" else None
                    values = np.array([v for _, v in found[1]]) if found else np.array([])
                    at = found[0] if found else update
                    cells.append(reference_at(reference, name, reference_metric, update, ours[0].fmt, values, at))
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


def reference_at(reference, name, metric, update, fmt, ours=(), ours_at=None):
    """The reference's mean ± std (its CSV's, ddof 0) at the update, and how far our seeds' mean `ours` is from
    it in standard errors of the difference (Welch's: each side's sample variance over its seeds), saying
    where ours was read (`ours_at`) when that is not `update`."""
    found = plot.reference_curve(reference, name, metric)
    greedy = ""
    if found is None and metric == "eval/episodic_return":  # the reference evaluated A2C greedily only
        found = plot.reference_curve(reference, name, metric + "_greedy")
        greedy = ", greedy"
    if found is None:
        return "—"
    updates, mean, std, seeds = found
    i = int(np.argmin(np.abs(updates - update)))
    at = f", at {updates[i]:,.0f}" if updates[i] != update else ""
    se = math.sqrt(np.var(ours, ddof=1) / len(ours) + std[i] ** 2 / (seeds[i] - 1)) if len(ours) > 1 else 0.0
    where = f" (at {ours_at:,.0f})" if ours_at is not None and ours_at != update else ""
    distance = f"; ours{where} {(np.mean(ours) - mean[i]) / se:+.1f} s.e." if se > 0 and not greedy else ""
    return f"{mean[i]:{fmt}} ± {std[i]:{fmt}} ({int(seeds[i])} seeds{greedy}{at}){distance}"


# ---------------------------------------------------------------------------------------------
# With and without the outer critic, seed by seed
# ---------------------------------------------------------------------------------------------
def welch_t_test(a, b):
    """(t, Welch–Satterthwaite df, two-sided p) of mean(a) − mean(b); NaN where it cannot be computed."""
    if len(a) < 2 or len(b) < 2 or a.var(ddof=1) + b.var(ddof=1) == 0:
        return math.nan, math.nan, math.nan
    result = stats.ttest_ind(a, b, equal_var=False)
    return result.statistic, result.df, result.pvalue


def paired_t_test(a, b):
    """(the sample std (ddof 1) of the differences a − b, the two-sided p of scipy.stats.ttest_rel(a, b),
    whose t is their mean over that std / √n); NaN where it cannot be computed (one seed; p: no spread)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2:
        return math.nan, math.nan
    spread = float(d.std(ddof=1))
    return spread, (stats.ttest_rel(a, b).pvalue if spread > 0 else math.nan)


def number(x, fmt):
    return "—" if math.isnan(x) else f"{x:{fmt}}"


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


def difference_cells(order, a, b, fmt):
    """Each seed's difference a − b, their mean ± sample std (ddof 1, the paired t-test's), and the
    paired t-test's two-sided p."""
    difference = a - b
    spread, p = paired_t_test(a, b)
    return [
        ", ".join(f"{s}: {d:+{fmt}}" for s, d in zip(order, difference)),
        f"{difference.mean():{fmt}} ± {number(spread, fmt)}",
        number(p, ".3g"),
    ]


def paired_comparisons(pairs, env):
    """Markdown table: each method with the outer critic against without it, seed by seed, at the
    last update both evaluated; "" when no method is there both ways on the same seeds."""
    quantity = Quantity("eval/expected_return" if env == "chain" else "eval/episodic_return", "", ".2f")
    rows = []
    for method, (with_oc, without) in pairs.items():
        found = paired_values(with_oc, without, quantity)
        if found is None:  # no evaluation
            continue
        update, order, a, b = found
        t, df, p = welch_t_test(a, b)
        per_seed, mean, p_paired = difference_cells(order, a, b, ".2f")
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
    what = "exact expected return" if env == "chain" else f"evaluation return ({plot.eval_games(env)} games, sampled actions)"
    labels = [
        "comparison",
        "seeds",
        "at update",
        "difference per seed (seed: with − without)",
        "difference, mean ± sample std (ddof 1)",
        "Welch's t (df)",
        "p, Welch (two-sided)",
        "p, paired t (two-sided)",
    ]
    return markdown(labels, rows, f"With and without the outer critic, seed by seed: the final {what}; {PAIRED}.")


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
                            *difference_cells(order, a, b, q.fmt),
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
        "difference, mean ± sample std (ddof 1)",
        "p, paired t (two-sided)",
    ]
    return markdown(
        labels,
        rows,
        "With and without the outer critic at the updates, seed by seed: each quantity read as above, at a log "
        f'point both variants have ("read at update": the log point read, which can differ from the row\'s update); {PAIRED}.',
    )


def main():
    options = tyro.cli(Args)
    check_args(options)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # nanmean/nanstd of all-NaN columns: shown as —
    env, variants = plot.load_runs(options.runs)
    reference = plot.load_reference(options.reference) if env == plot.SNAKE and options.reference != "none" else None
    window = options.window if options.window >= 0 else (REFERENCE_EPOCH if env == plot.SNAKE else 0)
    pairs = outer_critic_pairs(variants)
    tables = [with_note(plot.table(variants, env, window), f"Each variant's last log point, {POPULATION}")]
    if env == "chain":
        tables.append(chain_table(variants))
    tables.append(paired_comparisons(pairs, env))
    if options.at_updates:
        groups = at_updates_quantities(variants, env, window)
        tables += [
            at_updates_table(variants, env, options.at_updates, window, reference, groups),
            at_updates_seeds_table(variants, options.at_updates, groups),
            at_updates_differences(pairs, options.at_updates, groups),
        ]
    text = "\n\n".join(t for t in tables if t)
    print(text)
    if options.out:
        os.makedirs(os.path.dirname(options.out) or ".", exist_ok=True)
        with open(options.out, "w") as f:
            f.write(text + "\n")
        print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
