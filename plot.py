"""Figures and result tables from runs/*/metrics.csv (paper Figures 2, 3, 5 and 6).

    python plot.py runs/*chain* --out docs/chain.png          # γ, return, outer advantage, π(paying chain | s0)
    python plot.py runs/*snake* --out docs/snake.png

Runs are grouped into variants by their args.json (A2C, MG, MG + outer critic, BMG, ...):
several invocations of the same variant (e.g. more seeds later) are pooled. Curves are the
mean ± std over seeds against global_step (inner-batch environment steps, the paper's x-axis).
The table printed (markdown) gives each variant's last log point, mean ± std over seeds (ddof 0).
"""

import csv
import dataclasses
import json
import os
import sys
from collections import defaultdict

import numpy as np
import tyro


@dataclasses.dataclass
class Args:
    runs: tyro.conf.Positional[tuple[str, ...]]
    """run directories (each with args.json and metrics.csv)"""
    out: str = "figure.png"
    """where the PNG is written"""
    title: str = ""
    """figure title (default: the environment)"""


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


def load_run(run_dir):
    with open(os.path.join(run_dir, "args.json")) as f:
        args = json.load(f)
    by_seed = defaultdict(lambda: defaultdict(list))
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        for row in csv.DictReader(f):
            for name, value in row.items():
                if name != "seed":
                    by_seed[int(row["seed"])][name].append(float(value))
    seeds = {seed: {k: np.asarray(v) for k, v in m.items()} for seed, m in by_seed.items()}
    for m in seeds.values():
        if "meta/outer_critic_v_s0" in m:  # the chain's learned outer head against the truth
            error = np.abs(m["meta/outer_critic_v_s0"] - m["meta/true_outer_v_s0"])
            m["derived/outer_v_s0_error"] = error
            m["derived/outer_v_s0_error_mean"] = np.cumsum(error) / np.arange(1, len(error) + 1)
    return args, seeds


def group_runs(run_dirs):
    """{variant: (args of its first run, [per-seed metric dicts])}, seeds pooled over runs."""
    variants = {}
    for run_dir in run_dirs:
        args, seeds = load_run(run_dir)
        if not seeds:
            print(f"skipping {run_dir}: no log points yet", file=sys.stderr)
            continue
        name = variant_name(args)
        variants.setdefault(name, (args, []))[1].extend(seeds.values())
    return dict(sorted(variants.items(), key=lambda item: variant_key(item[0])))


def stacked(seeds, name):
    """[seeds, log points] over the log points every seed reached."""
    length = min(len(s[name]) for s in seeds)
    return np.stack([s[name][:length] for s in seeds]), seeds[0]["global_step"][:length]


VARIANT_ORDER = ["A2C", "MG", "MG + outer critic", "BMG", "BMG + outer critic"]


def style(name):
    """As the paper: the biased methods red, the outer-critic methods blue; BMG dashed."""
    if name.startswith("A2C"):
        return {"color": "0.45"}
    return {"color": "tab:blue" if "outer critic" in name else "tab:red",
            "linestyle": "--" if name.startswith("BMG") else "-"}


def variant_key(name):
    base = name.split(",")[0]
    return (VARIANT_ORDER.index(base) if base in VARIANT_ORDER else len(VARIANT_ORDER), name)


def panels(args):
    names = [("meta/gamma", "discount γ"), ("charts/episodic_return", "training-episode return"),
             ("meta/outer_advantage", "outer-loss advantage (mean, Figure 5)")]
    if "mapping_seed" in args:  # the chain's Figure 5 quantity is the advantage at the decision state
        m = args["mapping_seed"]
        names[2] = ("meta/outer_advantage_s0", "outer-loss advantage at s0 (Figure 5)")
        names += [(f"policy/p_chain{m}", f"π(paying chain {m} | s0)"), ("policy/p_chain0", "π(myopic chain 0 | s0)")]
        if args.get("normalize_advantage"):  # Figure 6: over the whole batch it is centred by construction
            names.append(("meta/outer_advantage", "normalised outer advantage, batch mean"))
    return names


def plot(variants, out, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first_args = next(iter(variants.values()))[0]
    metric_panels = panels(first_args)
    cols = 3
    rows = -(-len(metric_panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(metric_panels):]:
        ax.axis("off")
    for name, (args, seeds) in variants.items():
        for ax, (metric, label) in zip(axes, metric_panels):
            values, steps = stacked(seeds, metric)
            if np.all(np.isnan(values)):
                continue
            mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
            ax.plot(steps, mean, label=f"{name} ({len(seeds)} seeds)", **style(name))
            ax.fill_between(steps, mean - std, mean + std, color=style(name)["color"], alpha=0.2, linewidth=0)
            ax.set_title(label)
            ax.set_xlabel("inner environment steps")
    axes[0].legend(fontsize=7)
    env = "Discounting Chain" if "mapping_seed" in first_args else "Snake 6×6"
    fig.suptitle(title or f"{env}: mean ± std over seeds")
    fig.tight_layout()
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def table(variants):
    """Markdown table of each variant's last log point, mean ± std over seeds."""
    first_args = next(iter(variants.values()))[0]
    columns = [("meta/gamma", "γ", ".4f"), ("charts/episodic_return", "return", ".3f"),
               ("meta/outer_advantage", "outer adv. (used)", ".2g"),
               ("meta/outer_advantage_inner_critic", "outer adv. V^γ", ".2g"),
               ("meta/outer_advantage_outer_critic", "outer adv. V^γ′", ".2g")]
    chain = "mapping_seed" in first_args
    if chain:
        m = first_args["mapping_seed"]
        columns += [("meta/outer_advantage_s0", "outer adv. at s0", ".2g"), (f"policy/p_chain{m}", f"π(chain {m} | s0)", ".3f"),
                    ("policy/p_chain0", "π(chain 0 | s0)", ".3f")]
        if not first_args.get("true_value", True):
            columns += [("derived/outer_v_s0_error", "|V̂′(s0) − V^{π,γ′}(s0)| at the end", ".3f"),
                        ("derived/outer_v_s0_error_mean", "same, mean over training", ".3f")]
    labels = ["variant", "seeds", "updates"] + [label for _, label, _ in columns] + (["paper's side"] if chain else [])
    lines = ["| " + " | ".join(label.replace("|", "\\|") for label in labels) + " |", "|" + "---|" * len(labels)]
    for name, (args, seeds) in variants.items():
        final = {metric: stacked(seeds, metric)[0][:, -1] for metric, _, _ in columns}
        steps = stacked(seeds, "meta/gamma")[1]
        updates = int(steps[-1]) // (args["num_envs"] * (100 if chain else args.get("num_steps", 5)))
        cells = [f" {np.mean(final[k]):{d}} ± {np.std(final[k]):{d}} |" for k, _, d in columns]
        line = f"| {name} | {len(seeds)} | {updates:,} |" + "".join(cells)
        if chain:
            line += f" {paper_side(name, seeds, args['mapping_seed'])} |"
        lines.append(line.replace("nan ± nan", "—"))
    return "\n".join(lines)


def paper_side(name, seeds, mapping_seed):
    """Seeds that end where the paper's Figure 2 does: without the outer critic γ ≤ 0.91 with
    π(chain 0 | s0) still growing over the second half; with it γ ≥ 0.99 with π(paying chain | s0)
    still growing."""
    if name.startswith("A2C"):
        return "—"
    chain = mapping_seed if "outer critic" in name else 0
    gamma = stacked(seeds, "meta/gamma")[0][:, -1]
    p = stacked(seeds, f"policy/p_chain{chain}")[0]
    growing = p[:, -1] > p[:, p.shape[1] // 2]
    ok = (gamma >= 0.99) & growing if "outer critic" in name else (gamma <= 0.91) & growing
    return f"{int(ok.sum())}/{len(seeds)}"


def main():
    args = tyro.cli(Args)
    missing = [r for r in args.runs if not os.path.exists(os.path.join(r, "metrics.csv"))]
    if missing:
        print(f"error: no metrics.csv in {', '.join(missing)}", file=sys.stderr)
        sys.exit(2)
    variants = group_runs(args.runs)
    plot(variants, args.out, args.title)
    print(table(variants))


if __name__ == "__main__":
    main()
