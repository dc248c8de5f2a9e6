"""The bias of the meta-gradient, measured along training: how often each critic head's meta-gradient
has the sign of the exact one.

    python experiments/meta_grad_bias.py runs/meta_grad_bias_<time>                  # figure + table
    python experiments/meta_grad_bias.py runs/meta_grad_bias_<time> --window 20 --out bias.png

Reads the chain runs below DIR that were trained with `--measure-bias` (experiments/meta_grad_bias.sh
trains them: MG, MG + outer critic, BMG, BMG + outer critic × oracle values / learned critic × the
better reward 10, 30, 100 steps away). At every update such a run computed the meta-gradient with the
exact outer value V^{π,γ′} of θ′ (the unbiased one) and with each head's values in its place, on the
same θ′, batches and BMG target; `meta/sign_agreement_<head>` is, per log point, the fraction of the
chunk's updates whose meta-gradient has the exact one's sign. With the oracle (`--true-value`) the
inner head is V^{π,γ} (the bias) and the outer head is V^{π,γ′}, so the outer head's meta-gradient is
the exact one; with `--no-true-value` both are the learned dual-head critic.

The figure: one column per paying chain (by delay), per critic mode a row of the inner head's sign
agreement, a row of the outer head's (left out, and said so, where it is 1 at every log point, as
with the oracle), and a row of γ; every variant's mean over seeds with a ± std band, agreement as a
trailing mean over --window log points. The red dotted line on the γ panels is γ* = 1.1^(−1/(d−1)),
below which the inner objective prefers chain 0; the triangles mark the median update at which the
seeds lean to the myopic chain.

The table (printed, and written beside the figure as <figure>.md), per critic mode × chain × variant,
mean ± std over seeds (ddof 0):
- the sign agreement of the head the variant uses (inner without --outer-critic, outer with it) and
  of the other head over the last --last-updates updates (the log points whose chunks lie in them,
  each weighted by its chunk's number of updates);
- the final γ (the last log point);
- when the policy leans to the myopic chain: the first log point at which π(chain 0 | s0) >
  --lean-threshold (default 0.5: chain 0 holds more mass than all other chains together). At the
  uniform start π(0 | s0) = π(paying | s0), and the inner objective at γ0 = 0.95 already prefers
  chain 0, so π(0 | s0) > π(paying | s0) holds from the first log point on and would split nothing;
  π(0 | s0) ≈ 0.5 is where γ turns (docs/chain.md, Figure 2: the five variants);
- how often each head's meta-gradient points the wrong way (1 − agreement) before the lean (the
  updates up to and including the chunk in which π(0 | s0) crosses the threshold) and after it (every
  later update, also if π(0 | s0) falls back). The inner head's is the biased meta-gradient. Seeds
  that never lean count in "before" only; "after" is over the seeds that leaned.

numpy, pandas (plot.read_metrics) and matplotlib, no JAX: the figure is redrawn in seconds.
"""

import dataclasses
import json
import os
import sys
from typing import Annotated

import numpy as np
import tyro

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import plot  # noqa: E402  (read_metrics: plot.py lives at the repository's root)
from chain_facts import DELAYS, gamma_star  # noqa: E402  (experiments/chain_facts.py)

STEPS_PER_BATCH_PER_ENV = 100  # one 100-step episode per environment per batch
VARIANTS = {"mg": "MG", "mg_oc": "MG + outer critic", "bmg": "BMG", "bmg_oc": "BMG + outer critic"}
CRITICS = {"oracle": "oracle values (--true-value)", "learned": "learned critic (--no-true-value)"}
HEADS = ("inner_head", "outer_head")
AGREEMENT = {head: f"meta/sign_agreement_{head}" for head in HEADS}


# ------------------------------------------------------------------------------------------------
# Reading the runs
# ------------------------------------------------------------------------------------------------
def load_run(run_dir):
    """A run as a dict, or a string saying why it is left out."""
    with open(os.path.join(run_dir, "args.json")) as f:
        args = json.load(f)
    script = args.get("script", "")
    if script not in ("mg_chain.py", "bmg_chain.py"):
        return f"not a chain run (script {script!r})"
    if not args.get("measure_bias", False):
        return "trained without --measure-bias"
    if args.get("meta_lr", 0.1) == 0:
        return "A2C (--meta-lr 0): no meta-gradient"
    mapping = int(args.get("mapping_seed", 3))
    if not {"metrics.csv", "metrics.csv.gz"} & set(os.listdir(run_dir)):  # docs/data/ holds .gz
        return "no log point yet (no metrics.csv)"
    needed = ["meta/gamma", "policy/p_chain0", f"policy/p_chain{mapping}", *AGREEMENT.values()]
    frame = plot.read_metrics(run_dir)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        return f"metrics.csv lacks {', '.join(missing)}"
    if frame.empty:
        return "no log point yet (metrics.csv holds no row)"
    columns = ["global_step", *needed]
    seeds = {int(seed): {c: rows[c].to_numpy(np.float64) for c in columns} for seed, rows in frame.groupby("seed")}
    length = min(len(m["global_step"]) for m in seeds.values())  # a torn write: the common prefix
    batch = STEPS_PER_BATCH_PER_ENV * int(args.get("num_envs", 128))
    for m in seeds.values():
        for k in m:
            m[k] = m[k][:length]
        m["update"] = m.pop("global_step") / batch
    updates = next(iter(seeds.values()))["update"]
    if any(not np.array_equal(m["update"], updates) for m in seeds.values()):
        return "its seeds were logged at different updates"
    variant = ("bmg" if script.startswith("bmg") else "mg") + ("_oc" if args.get("outer_critic") else "")
    return {
        "dir": run_dir,
        "variant": variant,
        "critic": "oracle" if args.get("true_value", True) else "learned",
        "mapping": mapping,
        "update": updates,
        "seeds": seeds,
    }


def find_runs(folder):
    """Every usable run below `folder` (a directory with args.json), and notes on those left out."""
    runs, notes = [], []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if "args.json" in files:
            dirs[:] = []  # TensorBoard's seed<N>/ folders below a run are not runs
            try:
                run = load_run(root)
            except (OSError, ValueError, UnicodeDecodeError) as error:
                run = f"cannot be read ({error})"
            if isinstance(run, str):
                notes.append(f"left out {root}: {run}")
            else:
                runs.append(run)
    return runs, notes


# ------------------------------------------------------------------------------------------------
# The numbers
# ------------------------------------------------------------------------------------------------
def chunk_lengths(updates):
    """Updates per log point: each log point is the mean over the updates since the previous one."""
    return np.diff(np.concatenate([[0.0], updates]))


def weighted_mean(values, weights, mask):
    w = weights[mask]
    return float(np.sum(values[mask] * w) / np.sum(w)) if w.sum() > 0 else float("nan")


def last_window_mask(updates, last_updates):
    """The log points whose chunks lie in the last `last_updates` updates (at least the last one)."""
    starts = updates - chunk_lengths(updates)
    mask = starts >= updates[-1] - last_updates - 1e-9
    mask[-1] = True
    return mask


def lean_index(p_chain0, threshold):
    """The first log point with π(chain 0 | s0) > threshold, or None."""
    above = np.flatnonzero(p_chain0 > threshold)
    return int(above[0]) if len(above) else None


def seed_numbers(m, last_updates, threshold):
    """One seed's numbers: agreement of each head over the last updates, final γ, the lean's update,
    and each head's wrong-way fraction before and after the lean (NaN after if it never leans)."""
    updates = m["update"]
    weights = chunk_lengths(updates)
    last = last_window_mask(updates, last_updates)
    lean = lean_index(m["policy/p_chain0"], threshold)
    before = np.arange(len(updates)) <= (len(updates) - 1 if lean is None else lean)
    out = {"gamma": float(m["meta/gamma"][-1]), "lean": float("nan") if lean is None else float(updates[lean])}
    for head in HEADS:
        agreement = m[AGREEMENT[head]]
        out[f"agree_{head}"] = weighted_mean(agreement, weights, last)
        out[f"wrong_before_{head}"] = 1 - weighted_mean(agreement, weights, before)
        out[f"wrong_after_{head}"] = 1 - weighted_mean(agreement, weights, ~before)
    return out


def summarize(run, last_updates, threshold):
    """The run's table row: per quantity the seeds' values (numpy arrays), plus what it is."""
    per_seed = [seed_numbers(m, last_updates, threshold) for m in run["seeds"].values()]
    values = {k: np.array([s[k] for s in per_seed]) for k in per_seed[0]}
    used = "outer_head" if run["variant"].endswith("_oc") else "inner_head"
    other = "inner_head" if used == "outer_head" else "outer_head"
    return {
        **{k: run[k] for k in ("variant", "critic", "mapping")},
        "seeds": len(per_seed),
        "updates": int(round(run["update"][-1])),
        "window": min(last_updates, int(round(run["update"][-1]))),
        "used": used,
        "agree_used": values[f"agree_{used}"],
        "agree_other": values[f"agree_{other}"],
        **values,
    }


def mean_std(values, digits=3):
    """'mean ± std' over the finite values (ddof 0), '—' if none."""
    v = values[np.isfinite(values)]
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}" if len(v) else "—"


def lean_text(leans):
    done = leans[np.isfinite(leans)]
    if not len(done):
        return f"never (0/{len(leans)})"
    return f"{np.median(done):,.0f} ({len(done)}/{len(leans)})"


def table(rows, last_updates, threshold):
    lines = [
        f"Sign agreement of each head's meta-gradient with the exact one (V^{{π,γ′}} of θ′), over the last "
        f"{last_updates:,} updates of each run; the head the variant uses: inner without --outer-critic, outer "
        f"with it. Wrong way = 1 − agreement, before and after the policy leans to the myopic chain (the first "
        f"log point with π(chain 0 | s0) > {threshold:g}; after: over the seeds that leaned). Mean ± std over "
        "seeds (ddof 0); leans at: the median update over the seeds that leaned (how many).",
    ]
    labels = [
        "variant",
        "chain (delay)",
        "seeds",
        "updates",
        "head used",
        "agreement, head used",
        "agreement, other head",
        "final γ",
        "leans at",
        "inner head wrong, before lean",
        "inner head wrong, after lean",
        "outer head wrong, before lean",
        "outer head wrong, after lean",
    ]
    for critic in [c for c in CRITICS if any(r["critic"] == c for r in rows)]:
        lines += ["", f"**{CRITICS[critic]}**", "", "| " + " | ".join(labels) + " |", "|" + "---|" * len(labels)]
        for r in rows:
            if r["critic"] != critic:
                continue
            window = "" if r["window"] == last_updates else f" (last {r['window']:,})"
            cells = [
                VARIANTS[r["variant"]],
                f"{r['mapping']} ({DELAYS[r['mapping']]})",
                str(r["seeds"]),
                f"{r['updates']:,}{window}",
                r["used"].split("_")[0],
                mean_std(r["agree_used"]),
                mean_std(r["agree_other"]),
                mean_std(r["gamma"], 4),
                lean_text(r["lean"]),
                mean_std(r["wrong_before_inner_head"]),
                mean_std(r["wrong_after_inner_head"]),
                mean_std(r["wrong_before_outer_head"]),
                mean_std(r["wrong_after_outer_head"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rolling_mean(values, window):
    """Trailing mean over the last `window` log points (fewer at the start), along the last axis."""
    cumulative = np.cumsum(np.concatenate([np.zeros(values.shape[:-1] + (1,)), values], axis=-1), axis=-1)
    n = values.shape[-1]
    ends = np.arange(1, n + 1)
    starts = np.maximum(ends - window, 0)
    return (cumulative[..., ends] - cumulative[..., starts]) / (ends - starts)


# ------------------------------------------------------------------------------------------------
# The figure
# ------------------------------------------------------------------------------------------------
def draw(runs, summaries, out, window, threshold):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    mappings = sorted({r["mapping"] for r in runs}, key=lambda m: DELAYS[m])
    critics = [c for c in CRITICS if any(r["critic"] == c for r in runs)]
    panel_rows = []  # (critic, quantity, title note)
    for critic in critics:
        own = [r for r in runs if r["critic"] == critic]
        outer_all_one = all(np.all(m[AGREEMENT["outer_head"]] == 1) for r in own for m in r["seeds"].values())
        note = " (outer head: 1 at every log point, not drawn)" if outer_all_one else ""
        panel_rows.append((critic, "inner_head", note))
        if not outer_all_one:
            panel_rows.append((critic, "outer_head", ""))
        panel_rows.append((critic, "gamma", ""))
    fig, axes = plt.subplots(
        len(panel_rows), len(mappings), figsize=(4.6 * len(mappings), 0.9 + 2.3 * len(panel_rows)), squeeze=False, sharex="col"
    )
    by_key = {(r["variant"], r["critic"], r["mapping"]): (r, s) for r, s in zip(runs, summaries)}
    for i, (critic, quantity, note) in enumerate(panel_rows):
        for j, mapping in enumerate(mappings):
            ax = axes[i, j]
            for variant in VARIANTS:
                if (variant, critic, mapping) not in by_key:
                    continue
                run, summary = by_key[(variant, critic, mapping)]
                seeds = list(run["seeds"].values())
                if quantity == "gamma":
                    values = np.stack([m["meta/gamma"] for m in seeds])
                else:
                    values = rolling_mean(np.stack([m[AGREEMENT[quantity]] for m in seeds]), window)
                mean, std = values.mean(axis=0), values.std(axis=0)
                ax.plot(run["update"], mean, linewidth=1.3, **plot.style(VARIANTS[variant]))
                ax.fill_between(
                    run["update"],
                    mean - std,
                    mean + std,
                    color=plot.style(VARIANTS[variant])["color"],
                    alpha=0.15,
                    linewidth=0,
                )
                leans = summary["lean"][np.isfinite(summary["lean"])]
                if len(leans):
                    marker = "v" if variant.startswith("mg") else "^"
                    ax.plot(
                        [np.median(leans)],
                        [0.03],
                        marker=marker,
                        markersize=6,
                        color=plot.style(VARIANTS[variant])["color"],
                        transform=ax.get_xaxis_transform(),
                        clip_on=False,
                        linestyle="none",
                    )
            if quantity == "gamma":
                ax.axhline(gamma_star(mapping), color="tab:red", linestyle=(0, (1, 2)), linewidth=1)
                ax.set_ylim(0.895, 1.004)
                ax.set_ylabel(f"γ, {critic}")
            else:
                ax.axhline(0.5, color="0.6", linewidth=0.6)
                ax.set_ylim(-0.02, 1.02)
                ax.set_ylabel(f"{quantity.split('_')[0]} head agreement,\n{critic}")
            if i == 0:
                ax.set_title(f"better reward {DELAYS[mapping]} steps away (--mapping-seed {mapping})", fontsize=9)
            if quantity == "inner_head" and note:
                ax.text(0.99, 0.97, note.strip(" ()"), transform=ax.transAxes, ha="right", va="top", fontsize=7, color="0.35")
            if i == len(panel_rows) - 1:
                ax.set_xlabel("meta-updates")
            ax.grid(alpha=0.25)
    handles = [Line2D([], [], linewidth=1.3, label=VARIANTS[v], **plot.style(VARIANTS[v])) for v in VARIANTS]
    handles += [
        Line2D([], [], color="tab:red", linestyle=(0, (1, 2)), label="γ* (inner objective indifferent)"),
        Line2D(
            [], [], color="0.3", marker="v", linestyle="none", label=f"median lean (▼ MG, ▲ BMG): π(0 | s0) > {threshold:g}"
        ),
    ]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(
        f"Sign agreement of each critic head's meta-gradient with the exact one (trailing mean over {window} log points; "
        "mean ± std over seeds), and γ",
        fontsize=10,
        y=1 - 0.35 / fig.get_figheight(),
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig.get_figheight()))
    try:
        fig.savefig(out, dpi=110)
    except OSError as error:
        plot.fail(f"--out {out!r} cannot be written ({error.strerror})")
    plt.close(fig)


@dataclasses.dataclass
class Args:
    dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DIR")]
    """a folder of runs (runs/meta_grad_bias_<time>)"""
    out: str = ""
    """the PNG (default DIR/meta_grad_bias.png); the table also goes to <out>.md"""
    window: int = 10
    """log points in the trailing mean of the agreement curves"""
    last_updates: int = 1000
    """the table's agreement window, in updates"""
    lean_threshold: float = 0.5
    """the policy leans to chain 0 when π(0 | s0) exceeds this"""


def main():
    a = tyro.cli(Args, description=" ".join(__doc__.split("\n\n")[0].split()))
    for name, holds, allowed in [
        ("window", a.window >= 1, "must be a positive integer"),
        ("last_updates", a.last_updates >= 1, "must be a positive integer"),
        ("lean_threshold", 0 < a.lean_threshold < 1, "must be in (0, 1)"),
    ]:
        if not holds:
            plot.fail(f"--{name.replace('_', '-')} {allowed}, got {getattr(a, name)}")
    if not os.path.isdir(a.dir):
        plot.fail(f"DIR {a.dir!r} is not a directory")
    runs, notes = find_runs(a.dir)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not runs:
        plot.fail(f"no chain run trained with --measure-bias below {a.dir}")
    seen = {}
    for run in runs:
        key = (run["variant"], run["critic"], run["mapping"])
        if key in seen:
            plot.fail(
                f"two runs of {VARIANTS[key[0]]}, {key[1]}, mapping {key[2]}: {seen[key]} and {run['dir']}; move one out"
            )
        seen[key] = run["dir"]
    order = {v: i for i, v in enumerate(VARIANTS)}
    runs.sort(key=lambda r: (list(CRITICS).index(r["critic"]), DELAYS[r["mapping"]], order[r["variant"]]))
    summaries = [summarize(r, a.last_updates, a.lean_threshold) for r in runs]
    out = a.out or os.path.join(a.dir, "meta_grad_bias.png")
    draw(runs, summaries, out, a.window, a.lean_threshold)
    text = table(summaries, a.last_updates, a.lean_threshold)
    markdown = os.path.splitext(out)[0] + ".md"
    with open(markdown, "w") as f:
        f.write(text)
    print(text + f"\nfigure: {out}\ntable: {markdown}")


if __name__ == "__main__":
    main()
