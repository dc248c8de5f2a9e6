"""The bias map's files and its drawing (experiments/bias_map.py draws through this module): the columns
of bias_map.csv and bias_map_curves.csv, their reading and writing, the figure and the tables. numpy and
matplotlib, no JAX: `python experiments/bias_map.py draw DIR` redraws a grid in seconds."""

import csv
import dataclasses
import json
import os
import sys
from collections import defaultdict
from typing import Annotated

import tyro

from chain_facts import DELAYS, gamma_star, initial_bias_s0  # experiments/chain_facts.py

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from plot import fail  # noqa: E402  (plot.py lives at the repository's root)

VARIANTS = {  # name: (script module, --outer-critic, label as plot.py writes it)
    "mg": ("mg_chain", False, "MG"),
    "mg_oc": ("mg_chain", True, "MG + outer critic"),
    "bmg": ("bmg_chain", False, "BMG"),
    "bmg_oc": ("bmg_chain", True, "BMG + outer critic"),
}
ROW_FIELDS = (
    "variant",
    "label",
    "script",
    "outer_critic",
    "mapping_seed",
    "delay",
    "gamma_star",
    "gamma_init",
    "seed",
    "updates",
    "gamma_final",
    "p_chain0",
    "p_paying",
    "expected_return",
    "adv_s0_first",
    "adv_s0_last",
    "adv_s0_all",
    "myopic",
    "compile_s",
    "train_s",
)
CURVE_FIELDS = (
    "variant",
    "mapping_seed",
    "gamma_init",
    "seed",
    "update",
    "gamma",
    "p_chain0",
    "p_paying",
    "expected_return",
    "adv_s0",
)


@dataclasses.dataclass
class DrawArgs:
    """Draw the figure and print the tables from a grid's bias_map.csv alone (no JAX)."""

    grid: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DIR_OR_CSV")]
    """a grid directory (runs/bias_map_<time>) or its bias_map.csv"""
    out: str = ""
    """the PNG (default: bias_map.png beside the CSV); the tables go to stdout and to the same name with .md"""


def fmt(v):
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.9g}"  # float32 values round-trip exactly
    return str(v)


def read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def write_rows(path, fields, rows):
    """Appends whole rows in one write (the header first if the file is new): a crash leaves whole rows."""
    new = not os.path.exists(path)
    text = (",".join(fields) + "\n" if new else "") + "".join(",".join(fmt(r[k]) for k in fields) + "\n" for r in rows)
    with open(path, "a") as f:
        f.write(text)


# ------------------------------------------------------------------------------------------------
# The figure and the tables
# ------------------------------------------------------------------------------------------------
def summarize(rows):
    """{variant: {(mapping, γ0): cell}}, cell = means over seeds and the count of myopic seeds."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["variant"], int(r["mapping_seed"]), float(r["gamma_init"]))].append(r)
    cells = defaultdict(dict)
    for (variant, mapping, g), rs in groups.items():
        mean = lambda k, rs=rs: sum(float(r[k]) for r in rs) / len(rs)
        cells[variant][(mapping, g)] = {
            "seeds": len(rs),
            "gamma": mean("gamma_final"),
            "p_chain0": mean("p_chain0"),
            "p_paying": mean("p_paying"),
            "expected_return": mean("expected_return"),
            "adv_s0_first": mean("adv_s0_first"),
            "adv_s0_last": mean("adv_s0_last"),
            "myopic_seeds": sum(int(r["myopic"]) for r in rs),
            "myopic": mean("gamma_final") < gamma_star(mapping),
            "updates": int(rs[0]["updates"]),
        }
    return cells


def tables(cells, mappings, gammas):
    lines = []
    head = "| variant | paying chain (delay) | γ* | " + " | ".join(f"γ0 = {g}" for g in gammas) + " |"
    rule = "|---|---|---|" + "---|" * len(gammas)
    any_cell = next(iter(next(iter(cells.values())).values()))
    lines += [
        f"Final γ / π(paying chain | s0) / seeds on the myopic side (final γ < γ*), mean over "
        f"{any_cell['seeds']} seeds after {any_cell['updates']:,} updates; **bold**: the mean γ is below γ*.",
        "",
        head,
        rule,
    ]
    for variant in [v for v in VARIANTS if v in cells]:
        for m in mappings:
            row = []
            for g in gammas:
                c = cells[variant].get((m, g))
                if c is None:
                    row.append("—")
                    continue
                text = f"{c['gamma']:.4f} / {c['p_paying']:.2f} / {c['myopic_seeds']}/{c['seeds']}"
                row.append(f"**{text}**" if c["myopic"] else text)
            lines.append(f"| {VARIANTS[variant][2]} | {m} ({DELAYS[m]}) | {gamma_star(m):.4f} | " + " | ".join(row) + " |")
    lines += [
        "",
        "Outer-loss advantage at s0 (`meta/outer_advantage_s0`), mean over the first updates (`adv_s0_first`) "
        "and over the last (`adv_s0_last`), mean over seeds; and the expected advantage the inner critic would "
        "give at the start (uniform π, γ0): (1 − γ0)·Σ_{a≥1} ρ_a γ0^(d_a − 2) / 5.",
        "",
        "| variant | paying chain (delay) | " + " | ".join(f"γ0 = {g}" for g in gammas) + " |",
        "|---|---|" + "---|" * len(gammas),
    ]
    for m in mappings:
        lines.append(
            f"| bias at the start (expected) | {m} ({DELAYS[m]}) | "
            + " | ".join(f"{initial_bias_s0(m, g):.4f}" for g in gammas)
            + " |"
        )
    for variant in [v for v in VARIANTS if v in cells]:
        for m in mappings:
            lines.append(
                f"| {VARIANTS[variant][2]}: first / last | {m} ({DELAYS[m]}) | "
                + " | ".join(
                    f"{c['adv_s0_first']:+.4f} / {c['adv_s0_last']:+.4f}" if (c := cells[variant].get((m, g))) else "—"
                    for g in gammas
                )
                + " |"
            )
    counts = [
        f"{VARIANTS[v][2]}: {sum(c['myopic'] for c in cells[v].values())} of {len(cells[v])} cells"
        for v in VARIANTS
        if v in cells
    ]
    lines += ["", "Cells whose mean final γ is on the myopic side: " + "; ".join(counts) + "."]
    return "\n".join(lines) + "\n"


def draw(d: DrawArgs):
    path = d.grid if d.grid.endswith(".csv") else os.path.join(d.grid, "bias_map.csv")
    if not os.path.isfile(path):
        fail(f"{path} does not exist: give a grid directory made by `bias_map.py run` or its bias_map.csv")
    try:
        rows = read_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        fail(f"cannot read {path} ({error})")
    if not rows or set(ROW_FIELDS) - set(rows[0]):
        fail(f"{path} holds no rows of a bias map (columns {', '.join(ROW_FIELDS)})")
    out = d.out or os.path.join(os.path.dirname(path) or ".", "bias_map.png")
    cells = summarize(rows)
    mappings = sorted({m for v in cells.values() for m, _ in v})
    gammas = sorted({g for v in cells.values() for _, g in v})
    variants = [v for v in VARIANTS if v in cells]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = [
        ("gamma", "final γ", "viridis", (0.9, 1.0)),
        ("p_paying", "π(paying chain | s0)", "magma", (0.0, 1.0)),
        ("adv_s0_first", None, "RdBu_r", None),
    ]
    first = int(rows[0]["updates"])  # only for the title; the window is in grid.json
    try:
        with open(os.path.join(os.path.dirname(path), "grid.json")) as f:
            first = min(json.load(f)["first_updates"], first)
    except (OSError, ValueError, KeyError):
        pass
    adv_max = max([abs(c["adv_s0_first"]) for v in variants for c in cells[v].values()] + [1e-4])
    fig, axes = plt.subplots(len(variants), len(panels), figsize=(4.6 * len(panels), 0.5 + 2.9 * len(variants)), squeeze=False)
    for i, variant in enumerate(variants):
        for j, (key, title, cmap, limits) in enumerate(panels):
            ax = axes[i, j]
            values = np.full((len(mappings), len(gammas)), np.nan)
            for (m, g), c in cells[variant].items():
                values[mappings.index(m), gammas.index(g)] = c[key]
            vmin, vmax = limits or (-adv_max, adv_max)
            image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
            for (m, g), c in cells[variant].items():
                y, x = mappings.index(m), gammas.index(g)
                text = {
                    "gamma": f"{c['gamma']:.3f}\n{c['myopic_seeds']}/{c['seeds']}",
                    "p_paying": f"{c['p_paying']:.2f}\nπ0 {c['p_chain0']:.2f}",
                    "adv_s0_first": f"{c['adv_s0_first']:+.4f}",
                }[key]
                shade = (c[key] - vmin) / (vmax - vmin)
                ax.text(
                    x,
                    y,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if (shade < 0.45 if key != "adv_s0_first" else abs(shade - 0.5) > 0.3) else "black",
                )
                if c["myopic"]:
                    ax.add_patch(
                        plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="//", edgecolor="red", linewidth=1.5)
                    )
            ax.set_xticks(range(len(gammas)), [f"{g:g}" for g in gammas])
            ax.set_yticks(range(len(mappings)), [f"chain {m}\nd = {DELAYS[m]}" for m in mappings])
            ax.set_xlabel("γ0")
            label = title or f"outer advantage at s0, first {first:,} updates"
            ax.set_title(f"{VARIANTS[variant][2]}: {label}", fontsize=9)
    c0 = next(iter(cells[variants[0]].values()))
    fig.suptitle(
        f"Discounting Chain: final state over the paying chain (delay d) × γ0, mean of {c0['seeds']} seeds "
        f"after {c0['updates']:,} meta-updates\nhatched red: on the myopic side, mean final γ < γ* = "
        f"1.1^(−1/(d−1)) (the inner objective prefers chain 0); γ panels: mean γ and the seeds below γ*",
        fontsize=9,
    )
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=120)
    except OSError as error:
        fail(f"--out {out!r} cannot be written ({error.strerror})")
    text = tables(cells, mappings, gammas)
    with open(os.path.splitext(out)[0] + ".md", "w") as f:
        f.write(text)
    print(text + f"\nfigure: {out}")
