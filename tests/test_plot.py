"""plot.py on synthetic run directories written here (no training): the command line's errors, how
runs are found, the evaluation curves, the window mean and the table beside the reference's."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

import plot

SNAKE_BATCH = 512 * 5
REFERENCE_CSV = os.path.join(ROOT, "docs", "data", "reference_snake_curves.csv")


def gamma_at(update, outer_critic):
    """γ of the synthetic runs: linear in the update, so window means have a closed form."""
    return 0.8 + (2e-4 if outer_critic else 1e-4) * update


def write_snake_run(
    folder,
    exp_name,
    *,
    outer_critic=False,
    meta_lr=3e-3,
    script="mg_snake.py",
    seeds=(0, 1),
    updates=1460,
    log_every=20,
    eval_every=150,
    eval_bonus=None,
    offsets=None,
):
    """A run directory as mg_snake.py writes it, with evaluations every `eval_every` updates
    (return u / 100 + seed at update u, plus eval_bonus[i] for the i-th seed); offsets[metric][i] is
    added to every log point's `metric` of the i-th seed."""
    run_dir = folder / f"Snake-6x6-v0__{exp_name}__{seeds[0]}__1"
    run_dir.mkdir(parents=True)
    args = {
        "script": script,
        "exp_name": exp_name,
        "seed": seeds[0],
        "num_seeds": len(seeds),
        "runs_dir": str(folder),
        "total_timesteps": updates * SNAKE_BATCH,
        "log_every": log_every,
        "eval_every": eval_every,
        "num_envs": 512,
        "num_steps": 5,
        "outer_critic": outer_critic,
        "normalize_advantage": False,
        "meta_lr": meta_lr,
        "gamma_init": 0.8,
    }
    (run_dir / "args.json").write_text(json.dumps(args))
    eval_names = ["eval/episodic_return", "eval/episodic_return_greedy", "eval/episodic_length", "eval/global_step"]
    header = [
        "seed",
        "global_step",
        "charts/episodic_return",
        "meta/gamma",
        "meta/outer_advantage",
        "meta/outer_advantage_inner_critic",
        "meta/outer_advantage_outer_critic",
        *eval_names,
    ]
    lines = [",".join(header)]
    for end in range(log_every, updates + 1, log_every):
        evaluated = [u for u in range(end - log_every + 1, end + 1) if u % eval_every == 0]
        for seed in seeds:
            gamma = gamma_at(end, outer_critic) if meta_lr else 0.8
            row = [seed, end * SNAKE_BATCH, 1 + end / 1000, gamma, 0.0 if outer_critic else 0.4, 0.4, 0.0]
            if evaluated:  # the return of the evaluation at update u: u / 100 + seed (+ the bonus)
                u = evaluated[-1]
                bonus = eval_bonus[seeds.index(seed)] if eval_bonus else 0
                row += [u / 100 + seed + bonus, u / 100 + seed + 0.5, 50, u * SNAKE_BATCH]
            else:
                row += ["nan"] * 4
            for metric, added in (offsets or {}).items():
                row[header.index(metric)] += added[seeds.index(seed)]
            lines.append(",".join(map(str, row)))
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    (run_dir / f"seed{seeds[0]}").mkdir()  # TensorBoard folders sit below a run: not runs themselves
    return run_dir


def write_chain_run(folder, exp_name, *, outer_critic=False, updates=40, log_every=10):
    run_dir = folder / f"DiscountingChain-bsuite__{exp_name}__0__1"
    run_dir.mkdir(parents=True)
    args = {
        "script": "mg_chain.py",
        "exp_name": exp_name,
        "seed": 0,
        "num_seeds": 1,
        "num_updates": updates,
        "log_every": log_every,
        "num_envs": 128,
        "mapping_seed": 3,
        "outer_critic": outer_critic,
        "normalize_advantage": False,
        "true_value": True,
        "meta_lr": 0.1,
    }
    (run_dir / "args.json").write_text(json.dumps(args))
    header = [
        "seed",
        "global_step",
        "charts/episodic_return",
        "eval/expected_return",
        "meta/gamma",
        "meta/outer_advantage",
        "meta/outer_advantage_s0",
        *[f"policy/p_chain{k}" for k in range(5)],
    ]
    lines = [",".join(header)]
    for end in range(log_every, updates + 1, log_every):
        lines.append(",".join(map(str, [0, end * 128 * 100, 1.0, 1.0 + end / 1000, 0.95, 0.0, 0.01, 0.2, 0.2, 0.2, 0.2, 0.2])))
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    return run_dir


def run_plot(*arguments):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "plot.py"), *map(str, arguments)], capture_output=True, text=True, timeout=120
    )


def markdown_rows(stdout, first_cell):
    """The cells of the markdown rows whose first cell starts with `first_cell`."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in stdout.splitlines() if line.startswith("|")]
    return [r for r in rows if r[0].startswith(first_cell)]


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_no_argument_and_paths_that_are_not_runs_exit_2_with_one_line(tmp_path):
    figure = tmp_path / "figure.png"
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a run")
    assert_one_line_error(run_plot("--out", figure), "python plot.py runs/")
    assert_one_line_error(run_plot(tmp_path / "missing", "--out", figure), "missing does not exist")
    assert_one_line_error(run_plot(tmp_path / "notes.txt", "--out", figure), "is not a directory")
    assert_one_line_error(run_plot(tmp_path / "empty", "--out", figure), "no run directory", "empty")
    assert_one_line_error(run_plot(tmp_path / "empty", "--window", "-1", "--out", figure), "--window must be >= 0")
    assert_one_line_error(
        run_plot(tmp_path / "empty", "--reference", tmp_path / "no.csv", "--out", figure), "no.csv is not a file"
    )
    assert not figure.exists()


def test_runs_found_at_any_depth_dead_runs_skipped_unequal_budgets_noted(tmp_path):
    batch = tmp_path / "runs" / "snake_1"
    write_snake_run(batch / "nested", "mg_snake", seeds=(0,))
    write_snake_run(batch, "mg_snake_more", seeds=(1,), updates=1000)  # the same variant, a shorter run
    write_snake_run(batch, "mg_snake_oc", outer_critic=True)
    dead = batch / "Snake-6x6-v0__bmg_snake__0__2"  # died while compiling: args.json and TensorBoard only
    (dead / "seed0").mkdir(parents=True)
    (dead / "args.json").write_text(json.dumps({"script": "bmg_snake.py"}))
    figure = tmp_path / "out" / "snake.png"
    result = run_plot(tmp_path / "runs", "--out", figure)
    assert result.returncode == 0, result.stderr
    assert f"skipping {dead}: no metrics.csv" in result.stderr
    assert "note: MG: its seeds end at different updates (1,000, 1,460); curves and tables stop at 1,000" in result.stderr
    assert [r[:3] for r in markdown_rows(result.stdout, "MG") if "−" not in r[0]] == [
        ["MG", "2", "1,000"],
        ["MG + outer critic", "2", "1,460"],
    ]
    assert figure.stat().st_size > 10_000 and figure.read_bytes()[:4] == b"\x89PNG"
    # Nothing but dead runs: the line saying why each was skipped, then the error.
    result = run_plot(dead, "--out", tmp_path / "dead.png")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"skipping {dead}: no metrics.csv (the run stopped before its first log point, e.g. while compiling)",
        f"error: no run with log points in {dead}",
    ]
    assert not (tmp_path / "dead.png").exists()


def test_chain_and_snake_runs_together_are_refused(tmp_path):
    write_snake_run(tmp_path / "runs", "mg_snake")
    write_chain_run(tmp_path / "runs", "mg_chain")
    assert_one_line_error(
        run_plot(tmp_path / "runs", "--out", tmp_path / "f.png"), "Discounting Chain (1 runs)", "Snake (1 runs)"
    )
    # The reference curves are Snake's.
    chain_run = write_chain_run(tmp_path / "chain", "mg_chain")
    assert_one_line_error(run_plot(chain_run, "--reference", REFERENCE_CSV, "--out", tmp_path / "f.png"), "Snake's")
    assert not (tmp_path / "f.png").exists()


def test_evaluation_return_is_drawn_at_its_updates_and_in_the_table(tmp_path):
    run_dir = write_snake_run(tmp_path, "mg_snake_oc", outer_critic=True, updates=470)
    variants = plot.group_runs([(run_dir, *plot.load_run(run_dir))])
    options = plot.Args(runs=(str(run_dir),), out=str(tmp_path / "f.png"), mark_updates=(438,))
    figure = plot.plot(variants, "snake", options, plot.load_reference(REFERENCE_CSV))
    panels = {ax.get_title(): ax for ax in figure.axes}
    assert "training-episode return" in panels
    ours, reference = panels["evaluation return (512 games, sampled actions)"].get_lines()[:2]
    # Evaluations at 150, 300 and 450 (the rows without one dropped), mean over seeds 0 and 1.
    assert list(ours.get_xdata()) == [150, 300, 450]
    assert list(ours.get_ydata()) == pytest.approx([2.0, 3.5, 5.0])
    # The reference's MG + oc evaluation, up to our last update (460).
    with open(REFERENCE_CSV) as f:
        rows = [
            r for r in csv.DictReader(f) if (r["variant"], r["metric"]) == ("MG+oc", "eval_return") and int(r["update"]) <= 460
        ]
    assert list(reference.get_xdata()) == [int(r["update"]) for r in rows] == [3, 146, 292, 438]
    assert list(reference.get_ydata()) == [float(r["mean"]) for r in rows]
    (legend,) = figure.legends + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    assert [t.get_text() for t in legend.get_texts()] == [
        "MG + outer critic (2 seeds)",
        "MG + outer critic (reference, 10 seeds)",
    ]
    table = plot.table(variants, "snake", 0)
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    (row,) = markdown_rows(table, "MG + outer critic")
    cells = dict(zip(header, row))
    assert cells["eval return (sampled)"] == "5.00 ± 0.50" and cells["eval return (greedy)"] == "5.50 ± 0.50"
    assert cells["last eval at update"] == "450" and cells["updates"] == "460"


def test_chain_draws_the_exact_expected_return(tmp_path):
    run_dir = write_chain_run(tmp_path, "mg_chain")
    variants = plot.group_runs([(run_dir, *plot.load_run(run_dir))])
    figure = plot.plot(variants, "chain", plot.Args(runs=(str(run_dir),), out=str(tmp_path / "f.png")), None)
    panel = next(ax for ax in figure.axes if ax.get_title() == "exact expected return")
    assert list(panel.get_lines()[0].get_xdata()) == [10 * 12800, 20 * 12800, 30 * 12800, 40 * 12800]  # x: inner steps
    assert list(panel.get_lines()[0].get_ydata()) == pytest.approx([1.01, 1.02, 1.03, 1.04])
    assert "| exact expected return |" in plot.table(variants, "chain", 0)
    assert "| MG | 1 | 40 | 0.9500 ± 0.0000 | 1.040 ± 0.000 |" in plot.table(variants, "chain", 0)


def test_window_mean_weights_each_log_point_by_its_updates_in_the_window():
    updates = np.array([20.0, 40, 60, 80, 100, 110])  # the last chunk is short (10 updates)
    values = updates / 100
    means = plot.window_mean(updates, values, 50)
    # At 100: (50, 100] holds 10 updates of the point at 60, and all 20 of 80 and of 100.
    assert means[4] == pytest.approx((0.6 * 10 + 0.8 * 20 + 1.0 * 20) / 50)  # 0.84
    # At 110: 20 updates of 80 (its chunk (60, 80] is in (60, 110]), 20 of 100, 10 of 110.
    assert means[5] == pytest.approx((0.8 * 20 + 1.0 * 20 + 1.1 * 10) / 50)
    assert means[0] == pytest.approx(0.2)  # a window reaching before update 0 averages what there is
    values[3] = np.nan  # a NaN log point is left out
    assert plot.window_mean(updates, values, 50)[4] == pytest.approx((0.6 * 10 + 1.0 * 20) / 30)


def test_at_updates_table_gives_ours_beside_the_reference_rows(tmp_path):
    write_snake_run(tmp_path, "a2c_snake", meta_lr=0.0)
    write_snake_run(tmp_path, "mg_snake")
    write_snake_run(tmp_path, "bmg_snake_oc", outer_critic=True, script="bmg_snake.py")
    result = run_plot(tmp_path, "--out", tmp_path / "f.png", "--window", "146", "--at-updates", "438", "584", "1460")
    assert result.returncode == 0, result.stderr
    with open(REFERENCE_CSV) as f:
        reference = {(r["variant"], r["metric"], int(r["update"])): r for r in csv.DictReader(f)}
    rows = {(r[0], int(r[1].replace(",", ""))): r for r in markdown_rows(result.stdout, "") if r[1][:1].isdigit()}
    assert rows[("MG (2 seeds)", 438)][3].startswith("0.826 ± 0.005 (10 seeds)")  # the CSV's 0.82588 ± 0.00497
    for name, ours, outer_critic in [("A2C", "A2C", False), ("MG", "MG", False), ("BMG+oc", "BMG + outer critic", True)]:
        for update in (438, 584, 1460):
            _, _, gamma, gamma_ref, eval_ours, _, eval_ref = rows[(f"{ours} (2 seeds)", update)][:7]
            row = reference[(name, "gamma", update)]
            assert gamma_ref.startswith(f"{float(row['mean']):.3f} ± {float(row['std']):.3f} (10 seeds")
            metric = "eval_return_greedy" if name == "A2C" else "eval_return"  # the reference's A2C was greedy
            row = reference[(name, metric, update)]
            assert eval_ref.startswith(f"{float(row['mean']):.2f} ± {float(row['std']):.2f} (10 seeds")
            assert ("greedy" in eval_ref) == (name == "A2C")
            # Ours: the 146 updates ending at the last log point ≤ update, each update counted with the
            # γ logged at the end of its 20-update chunk.
            end = update // 20 * 20
            expected = np.mean([gamma_at(math.ceil(u / 20) * 20, outer_critic) for u in range(end - 145, end + 1)])
            if name == "A2C":
                expected = 0.8
            at = f" (at {end:,})" if end != update else ""
            assert gamma == f"{expected:.3f} ± 0.000{at}"
            # The evaluation nearest the update, with the update it was taken at (seeds 0 and 1: +0.5).
            nearest = min(range(150, 1461, 150), key=lambda u: abs(u - update))
            assert eval_ours == f"{nearest / 100 + 0.5:.2f} ± 0.50 (at {nearest:,})"
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_student_t_p_values_equal_the_closed_forms():
    for t in (0.0, 0.1, 1.0, 2.5, 10.0, -3.0):
        a = abs(t)
        theta = math.atan(a / 2)
        assert plot.t_test_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(a), rel=1e-12, abs=1e-15)  # Cauchy
        assert plot.t_test_p(t, 2) == pytest.approx(1 - a / math.sqrt(2 + t * t), rel=1e-12, abs=1e-15)
        assert plot.t_test_p(t, 4) == pytest.approx(1 - math.sin(theta) * (1 + math.cos(theta) ** 2 / 2), rel=1e-12, abs=1e-15)
        assert plot.t_test_p(t, 1e8) == pytest.approx(math.erfc(a / math.sqrt(2)), rel=1e-6)  # the normal's tails
    # A fractional df (Welch's): 1 − 2 ∫_0^t of the density, by Simpson's rule on 20,000 intervals.
    for t, df in ((2.0, 2.5), (1.3, 7.3), (4.0, 17.9)):
        x = np.linspace(0, t, 20_001)
        density = (
            math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2))
            / math.sqrt(df * math.pi)
            * (1 + x**2 / df) ** (-(df + 1) / 2)
        )
        simpson = (x[1] - x[0]) / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum() + 2 * density[2:-1:2].sum())
        assert plot.t_test_p(t, df) == pytest.approx(1 - 2 * simpson, rel=1e-9)
    assert plot.t_test_p(math.inf, 3) == 0.0 and math.isnan(plot.t_test_p(math.nan, 3))


def test_paired_comparison_with_and_without_the_outer_critic_by_hand(tmp_path):
    # Final evaluation (update 1,350, the last ≤ 1,460 of every 150): MG 13.5 + (0, 1, 2); MG + outer
    # critic the same plus (3, 1, 2). Differences 3, 1, 2: mean 2, std (ddof 0) sqrt(2/3) = 0.82.
    # Welch: both sample variances 1, t = 2 / sqrt(1/3 + 1/3) = sqrt(6) = 2.449, df = 4, and with
    # tan θ = t / 2, p = 1 − sin θ (1 + cos² θ / 2) = 1 − sqrt(0.6) · 1.2 = 0.0705. Paired: the
    # differences' sample std is 1, t = 2 / (1 / sqrt(3)) = 3.464, df = 2, p = 1 − t / sqrt(2 + t²) = 0.0742.
    write_snake_run(tmp_path / "runs", "mg_snake", seeds=(0, 1, 2))
    write_snake_run(tmp_path / "runs", "mg_snake_oc", outer_critic=True, seeds=(0, 1, 2), eval_bonus=(3, 1, 2))
    write_snake_run(tmp_path / "runs", "bmg_snake_oc", outer_critic=True, script="bmg_snake.py", seeds=(0, 1, 2))
    result = run_plot(tmp_path / "runs", "--out", tmp_path / "f.png")
    assert result.returncode == 0, result.stderr
    assert "With and without the outer critic, seed by seed: the final evaluation return" in result.stdout
    assert markdown_rows(result.stdout, "MG + outer critic −") == [
        [
            "MG + outer critic − MG",
            "3",
            "1,350",
            "0: +3.00, 1: +1.00, 2: +2.00",
            "2.00 ± 0.82",
            "2.45 (4.0)",
            "0.0705",
            "0.0742",
        ]
    ]
    assert not markdown_rows(result.stdout, "BMG + outer critic −")  # BMG without the outer critic is missing
    assert math.sqrt(0.6) * 1.2 == pytest.approx(1 - 0.070484, abs=1e-6)

    # Other seeds (one more without the outer critic): no pairs, and stderr says why.
    write_snake_run(tmp_path / "runs", "mg_snake_more", seeds=(3,))
    result = run_plot(tmp_path / "runs", "--out", tmp_path / "f.png")
    assert result.returncode == 0, result.stderr
    assert "With and without the outer critic" not in result.stdout
    assert (
        "note: no paired comparison of MG with and without the outer critic: their seeds differ or repeat "
        "(0, 1, 2 and 0, 1, 2, 3)"
    ) in result.stderr


def gamma_window(update, outer_critic, window=146, log_every=20):
    """The synthetic γ's mean over the `window` updates ending at `update` (a log point), each update
    counted with the γ logged at the end of its chunk."""
    return np.mean(
        [gamma_at(math.ceil(u / log_every) * log_every, outer_critic) for u in range(update - window + 1, update + 1)]
    )


def test_at_updates_tables_give_each_seed_the_outer_advantages_and_the_paired_differences(tmp_path):
    # Seeds 0, 1, 2 both ways. γ: the linear synthetic γ plus (0, 0.01, 0.02) without and (0.03, 0.02,
    # 0.04) with the outer critic, so with − without = base + (0.03, 0.01, 0.02); the evaluation return
    # with the outer critic is higher by (3, 1, 2), the greedy one the same.
    write_snake_run(
        tmp_path / "runs",
        "mg_snake",
        seeds=(0, 1, 2),
        offsets={
            "meta/gamma": (0, 0.01, 0.02),
            "meta/outer_advantage_inner_critic": (0, 0.05, 0.1),
            "meta/outer_advantage_outer_critic": (0.01, -0.01, 0),
        },
    )
    write_snake_run(
        tmp_path / "runs",
        "mg_snake_oc",
        outer_critic=True,
        seeds=(0, 1, 2),
        eval_bonus=(3, 1, 2),
        offsets={
            "meta/gamma": (0.03, 0.02, 0.04),
            "meta/outer_advantage_inner_critic": (-0.1, -0.05, 0),
            "meta/outer_advantage_outer_critic": (0.002, 0.004, 0.006),
        },
    )
    tables = tmp_path / "out" / "tables.md"
    result = run_plot(
        tmp_path / "runs",
        "--out",
        tmp_path / "f.png",
        "--window",
        "146",
        "--at-updates",
        "438",
        "1460",
        "--tables-out",
        tables,
    )
    assert result.returncode == 0, result.stderr
    # The file holds the tables as printed (without the lines saying what was written).
    assert tables.read_text() == "".join(
        line for line in result.stdout.splitlines(keepends=True) if not line.startswith("wrote ")
    )
    assert result.stdout.splitlines()[-1] == f"wrote {tables}"

    # Beside γ and the returns: the outer advantage with each head (146-update means of constants
    # here), and the reference's, which is the advantage its outer loss used.
    header = next(r for r in markdown_rows(result.stdout, "variant") if "outer adv. V^γ (ours)" in r)
    assert header[-3:] == ["outer adv. V^γ (ours)", "outer adv. V^γ′ (ours)", "outer adv., the one used (reference)"]
    with open(REFERENCE_CSV) as f:
        reference = {(r["variant"], r["metric"], int(r["update"])): r for r in csv.DictReader(f)}
    for name, ours, inner, outer in [
        ("MG", "MG", "0.450 ± 0.041", "0.000 ± 0.008"),
        ("MG+oc", "MG + outer critic", "0.350 ± 0.041", "0.004 ± 0.002"),
    ]:
        rows = {r[1]: r for r in markdown_rows(result.stdout, f"{ours} (3 seeds)")}
        cells = dict(zip(header, rows["1,460"]))
        assert (cells["outer adv. V^γ (ours)"], cells["outer adv. V^γ′ (ours)"]) == (inner, outer)
        ref = reference[(name, "outer_advantage", 1460)]
        assert (
            cells["outer adv., the one used (reference)"] == f"{float(ref['mean']):.3f} ± {float(ref['std']):.3f} (10 seeds)"
        )
        offsets = (0, 0.01, 0.02) if name == "MG" else (0.03, 0.02, 0.04)
        gammas = [gamma_window(1460, name == "MG+oc") + o for o in offsets]
        assert cells["γ (ours)"] == f"{np.mean(gammas):.3f} ± {np.std(gammas):.3f}"

    # Seed by seed: the same quantities, read at the same log points.
    seeds_rows = {(r[0], r[1]): r[2:] for r in markdown_rows(result.stdout, "MG") if r[2] == "0, 1, 2"}
    g = gamma_window(1460, False)
    assert seeds_rows[("MG", "1,460")] == [
        "0, 1, 2",
        f"{g:.3f}, {g + 0.01:.3f}, {g + 0.02:.3f}",
        "13.50, 14.50, 15.50 (at 1,350)",
        "14.00, 15.00, 16.00 (at 1,350)",
        "0.400, 0.450, 0.500",
        "0.010, -0.010, 0.000",
    ]
    g = gamma_window(420, True)
    assert seeds_rows[("MG + outer critic", "438")] == [
        "0, 1, 2",
        f"{g + 0.03:.3f}, {g + 0.02:.3f}, {g + 0.04:.3f} (at 420)",
        "7.50, 6.50, 8.50 (at 450)",
        "5.00, 6.00, 7.00 (at 450)",
        "0.300, 0.350, 0.400 (at 420)",
        "0.002, 0.004, 0.006 (at 420)",
    ]

    # With − without, same seed, at each update: differences, mean ± std (ddof 0), paired t's p (γ:
    # see difference_text; the returns as in the final comparison; the greedy ones do not differ).
    differences = markdown_rows(result.stdout, "MG + outer critic − MG")
    assert differences[0][:3] == ["MG + outer critic − MG", "3", "1,350"]  # the final comparison, as before
    assert differences[1:] == [
        [
            "MG + outer critic − MG",
            "438",
            "γ",
            "420",
            "3",
            *difference_text(gamma_window(420, True) - gamma_window(420, False)),
        ],
        ["MG + outer critic − MG", "438", "eval return", "450", "3", "0: +3.00, 1: +1.00, 2: +2.00", "2.00 ± 0.82", "0.0742"],
        [
            "MG + outer critic − MG",
            "438",
            "eval return, greedy",
            "450",
            "3",
            "0: +0.00, 1: +0.00, 2: +0.00",
            "0.00 ± 0.00",
            "—",
        ],
        [
            "MG + outer critic − MG",
            "1,460",
            "γ",
            "1,460",
            "3",
            *difference_text(gamma_window(1460, True) - gamma_window(1460, False)),
        ],
        [
            "MG + outer critic − MG",
            "1,460",
            "eval return",
            "1,350",
            "3",
            "0: +3.00, 1: +1.00, 2: +2.00",
            "2.00 ± 0.82",
            "0.0742",
        ],
        [
            "MG + outer critic − MG",
            "1,460",
            "eval return, greedy",
            "1,350",
            "3",
            "0: +0.00, 1: +0.00, 2: +0.00",
            "0.00 ± 0.00",
            "—",
        ],
    ]

    # A pair whose runs stopped at different updates is read at a log point both have: γ at MG's last
    # (1,000), the evaluation at the one nearest the update among those both made (900).
    write_snake_run(tmp_path / "short", "mg_snake", seeds=(0, 1, 2), updates=1000)
    write_snake_run(tmp_path / "short", "mg_snake_oc", outer_critic=True, seeds=(0, 1, 2))
    result = run_plot(tmp_path / "short", "--out", tmp_path / "f.png", "--at-updates", "1460")
    assert result.returncode == 0, result.stderr
    assert [r[:5] for r in markdown_rows(result.stdout, "MG + outer critic − MG")[1:]] == [
        ["MG + outer critic − MG", "1,460", "γ", "1,000", "3"],
        ["MG + outer critic − MG", "1,460", "eval return", "900", "3"],
        ["MG + outer critic − MG", "1,460", "eval return, greedy", "900", "3"],
    ]
    assert_one_line_error(
        run_plot(tmp_path / "short", "--out", tmp_path / "f.png", "--tables-out", tmp_path), "--tables-out", "is a directory"
    )


def difference_text(base):
    """The γ difference cells where with − without = base + (0.03, 0.01, 0.02): mean base + 0.02, std
    (ddof 0) sqrt(2/3) · 0.01 = 0.008, sample std 0.01, so t = (base + 0.02) · sqrt(3) / 0.01 with df 2,
    and p = 1 − t / sqrt(2 + t²)."""
    t = (base + 0.02) * math.sqrt(3) / 0.01
    return [
        f"0: +{base + 0.03:.3f}, 1: +{base + 0.01:.3f}, 2: +{base + 0.02:.3f}",
        f"{base + 0.02:.3f} ± 0.008",
        f"{1 - t / math.sqrt(2 + t * t):.3g}",
    ]
