"""plot.py on synthetic run directories written here (no training): the command line's errors, how
runs are found and pooled, where the figure goes, the evaluation curves and the window mean."""

import csv
import itertools
import json
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, markdown_rows, run_main_in_process, write_chain_run, write_snake_run

import plot

REFERENCE_CSV = os.path.join(ROOT, "docs", "data", "reference_snake_curves.csv")


def run_plot(*arguments, cwd=None):
    """`python plot.py arguments...` run as its main() in this process (test_resume.py runs plot.py itself
    on the scripts' runs)."""
    return run_main_in_process(plot.main, ["plot.py", *arguments], cwd=cwd)


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


def test_runs_of_different_environments_together_are_refused(tmp_path):
    write_snake_run(tmp_path / "runs", "mg_snake")
    write_chain_run(tmp_path / "runs", "mg_chain")
    assert_one_line_error(run_plot(tmp_path / "runs", "--out", tmp_path / "f.png"), "chain: 1 runs", "Snake-6x6-v0: 1 runs")
    write_snake_run(tmp_path / "minatar", "mg", env_id="Breakout-MinAtar")
    write_snake_run(tmp_path / "minatar", "mg_oc", outer_critic=True, env_id="Freeway-MinAtar")
    assert_one_line_error(
        run_plot(tmp_path / "minatar", "--out", tmp_path / "f.png"), "Breakout-MinAtar: 1", "Freeway-MinAtar: 1"
    )
    # The reference curves are Snake's.
    chain_run = write_chain_run(tmp_path / "chain", "mg_chain")
    assert_one_line_error(run_plot(chain_run, "--reference", REFERENCE_CSV, "--out", tmp_path / "f.png"), "Snake's")
    assert not (tmp_path / "f.png").exists()


def test_evaluation_return_is_drawn_at_its_updates_and_in_the_table(tmp_path):
    run_dir = write_snake_run(tmp_path, "mg_snake_oc", outer_critic=True, updates=470)
    variants = plot.group_runs([(run_dir, *plot.load_run(run_dir))])
    options = plot.Args(runs=(str(run_dir),), out=str(tmp_path / "f.png"), mark_updates=(438,))
    figure = plot.plot(variants, plot.SNAKE, options, plot.load_reference(REFERENCE_CSV))
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
    # The reference logged the advantage its outer loss used: with the outer critic, V^γ′'s (the outer head's panel).
    with open(REFERENCE_CSV) as f:
        used = [r for r in csv.DictReader(f) if (r["variant"], r["metric"]) == ("MG+oc", "outer_advantage")]
    outer_head = panels["outer-loss advantage with V^γ′ (outer head)"].get_lines()
    inner_head = panels["outer-loss advantage with V^γ (inner head)"].get_lines()
    assert list(outer_head[1].get_xdata()) == [int(r["update"]) for r in used if int(r["update"]) <= 460] == [146, 292, 438]
    assert len(outer_head) == 3 and len(inner_head) == 2  # ours (and the reference's), then the mark at 438
    (legend,) = figure.legends + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    assert [t.get_text() for t in legend.get_texts()] == [
        "MG + outer critic (2 seeds)",
        "dotted: the reference implementation (10 seeds)",
    ]
    table = plot.table(variants, plot.SNAKE, 0)
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    (row,) = markdown_rows(table, "MG + outer critic")
    cells = dict(zip(header, row))
    assert cells["eval return (sampled)"] == "5.00 ± 0.50" and cells["eval return (greedy)"] == "5.50 ± 0.50"
    assert cells["last eval at update"] == "450" and cells["updates"] == "460"


def test_each_variant_label_is_the_default_exp_name_in_words():
    """Two runs share a curve exactly when they would share a default exp name, and every label starts with a
    variant that has its place and colour (A2C, MG, MG + outer critic, BMG, BMG + outer critic)."""
    import common_run

    pairs = set()  # (environment, default exp name, label)
    for script, meta_lr, outer_critic, true_value, normalize in itertools.product(
        ("mg_chain.py", "bmg_chain.py", "mg_snake.py", "bmg_snake.py"), (0, 0.1), *[(False, True)] * 3
    ):
        args = {"script": script, "meta_lr": meta_lr, "outer_critic": outer_critic, "normalize_advantage": normalize}
        if "chain" in script:
            args["true_value"] = true_value
        options = SimpleNamespace(**{"true_value": True, **args})
        pairs.add((script.split("_")[1], common_run.default_exp_name(options, script), plot.variant_name(args)))
        assert plot.variant_name(args).split(",")[0] in plot.VARIANT_ORDER
    names, labels = {(env, name) for env, name, _ in pairs}, {(env, label) for env, _, label in pairs}
    assert len(pairs) == len(names) == len(labels) == 5 * 2 * 2 + 5 * 2  # chain: 5 variants × 2 critics × 2; Snake: 5 × 2


def test_a2c_at_several_fixed_gammas_is_a_curve_per_gamma(tmp_path):
    write_snake_run(tmp_path / "a", "a2c_g0.8", meta_lr=0, gamma_init=0.8)
    write_snake_run(tmp_path / "a", "a2c_g0.99", meta_lr=0, gamma_init=0.99)
    write_snake_run(tmp_path / "a", "mg", seeds=(2, 3))
    _, variants = plot.load_runs([str(tmp_path / "a")])
    assert list(variants) == ["A2C, γ = 0.8", "A2C, γ = 0.99", "MG"]
    assert {float(seed["meta/gamma"][-1]) for seed in variants["A2C, γ = 0.99"][1]} == {0.99}
    assert plot.style("A2C, γ = 0.99")["color"] != plot.style("A2C, γ = 0.8")["color"]
    write_snake_run(tmp_path / "b", "a2c_snake", meta_lr=0)  # one fixed γ: the plain A2C, the reference's
    write_snake_run(tmp_path / "b", "mg")
    assert list(plot.load_runs([str(tmp_path / "b")])[1]) == ["A2C", "MG"]


def test_a_minatar_game_has_its_own_evaluation_and_no_reference(tmp_path):
    write_snake_run(tmp_path, "mg_oc", outer_critic=True, env_id="Freeway-MinAtar")
    env, variants = plot.load_runs([str(tmp_path)])
    assert env == "Freeway-MinAtar" and plot.reference_for(env, "auto") is None
    titles = dict(plot.panels(env, variants, 0))
    assert titles["eval/episodic_return"] == "evaluation return (64 games, sampled actions)"
    assert plot.panels(plot.SNAKE, variants, 0)[1][1] == "evaluation return (512 games, sampled actions)"


def test_the_training_return_is_read_where_episodes_ended(tmp_path):
    # Freeway's episodes all end at the same updates: most log points hold no training return.
    run_dir = write_snake_run(tmp_path, "mg", env_id="Freeway-MinAtar", updates=610, log_every=10)
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    column = lines[0].split(",").index("charts/episodic_return")
    rows = [line.split(",") for line in lines[1:]]
    for row in rows:
        row[column] = row[column] if int(row[1]) % (250 * 2560) == 0 else "nan"
    (run_dir / "metrics.csv").write_text("\n".join([lines[0], *(",".join(row) for row in rows)]) + "\n")
    env, variants = plot.load_runs([str(tmp_path)])
    ((_, seeds),) = variants.values()
    updates, values = plot.stacked(seeds, "charts/episodic_return")
    np.testing.assert_array_equal(updates, [250, 500])
    np.testing.assert_allclose(values, [[1.25, 1.5], [1.25, 1.5]])
    ((row,),) = [markdown_rows(plot.table(variants, env, 0), "MG")]
    assert row[2] == "610" and "1.500 ± 0.000" in row  # the last log point, and the training return of the last episodes
    figure = plot.plot(variants, env, plot.Args(runs=(str(tmp_path),), out=str(tmp_path / "f.png")), None)
    (panel,) = [ax for ax in figure.axes if ax.get_title() == "training-episode return"]
    np.testing.assert_allclose(panel.lines[0].get_ydata(), [1.25, 1.5])  # a line through both, not isolated points


def test_chain_draws_the_exact_expected_return(tmp_path):
    run_dir = write_chain_run(tmp_path, "mg_chain")
    variants = plot.group_runs([(run_dir, *plot.load_run(run_dir))])
    figure = plot.plot(variants, "chain", plot.Args(runs=(str(run_dir),), out=str(tmp_path / "f.png")), None)
    panel = next(ax for ax in figure.axes if ax.get_title() == "exact expected return")
    assert list(panel.get_lines()[0].get_xdata()) == [10, 20, 30, 40]  # x: meta-updates
    assert list(panel.get_lines()[0].get_ydata()) == pytest.approx([1.01, 1.02, 1.03, 1.04])
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


def test_the_figure_goes_into_the_run_folder_or_the_folder_holding_the_runs(tmp_path):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    run_dir = write_snake_run(tmp_path / "runs", "mg_snake", updates=300)
    result = run_plot(run_dir, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    figure = run_dir / "figure.png"
    assert figure.read_bytes()[:4] == b"\x89PNG" and f"wrote {figure}" in result.stdout
    assert not (elsewhere / "figure.png").exists()
    # Several runs: the folder that holds them all; --out still decides when given.
    other = write_snake_run(tmp_path / "runs" / "more", "mg_snake_oc", outer_critic=True, updates=300)
    result = run_plot(run_dir, other, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "figure.png").exists() and f"wrote {tmp_path / 'runs' / 'figure.png'}" in result.stdout
    assert run_plot(run_dir, "--out", "here.png", cwd=elsewhere).returncode == 0
    assert (elsewhere / "here.png").exists()


def test_a_single_log_point_or_evaluation_is_drawn_as_a_marker(tmp_path):
    # One log point and one evaluation, both at update 20.
    short = write_snake_run(tmp_path, "mg_snake", updates=20, log_every=20, eval_every=20)
    variants = plot.group_runs([(short, *plot.load_run(short))])
    figure = plot.plot(variants, plot.SNAKE, plot.Args(runs=(str(short),), out=str(tmp_path / "f.png")), None)
    lines = {ax.get_title().split("\n")[0]: ax.get_lines()[0] for ax in figure.axes if ax.get_lines()}
    for title in ("discount γ", "evaluation return (512 games, sampled actions)", "training-episode return"):
        assert len(lines[title].get_xdata()) == 1 and lines[title].get_marker() == "o", title
    # A curve of several points stays a line without markers.
    longer = write_snake_run(tmp_path / "long", "mg_snake", updates=100, log_every=20, eval_every=150)
    variants = plot.group_runs([(longer, *plot.load_run(longer))])
    figure = plot.plot(variants, plot.SNAKE, plot.Args(runs=(str(longer),), out=str(tmp_path / "g.png")), None)
    gamma = next(ax for ax in figure.axes if ax.get_title() == "discount γ").get_lines()[0]
    assert len(gamma.get_xdata()) == 5 and gamma.get_marker() in ("None", "", None)


def test_hints_name_the_folders_a_plain_run_makes(tmp_path):
    plain = "runs/<env>__<exp_name>__<seed>__<time>"  # run_name of the scripts, under --runs-dir runs
    write_snake_run(tmp_path / "mixed", "mg_snake")
    write_chain_run(tmp_path / "mixed", "mg_chain")
    for result in (run_plot(), run_plot(tmp_path / "mixed")):
        assert result.returncode == 2 and plain in result.stderr and "chain_<time>" not in result.stderr, result.stderr


def test_a_job_array_folder_pools_each_variants_seeds_across_its_runs(tmp_path):
    # experiments/slurm/submit.sh's layout: ARRAY_DIR/<variant>_s<seed>/<run>/, one run per seed group,
    # beside logs/ and variants.txt.
    array = tmp_path / "array"
    (array / "logs").mkdir(parents=True)
    (array / "logs" / "1_0.out").write_text("== task 1_0\n")
    (array / "variants.txt").write_text("mg_snake mg_snake.py\n")
    for group in ((0, 1), (2, 3)):
        write_snake_run(array / f"mg_snake_s{group[0]}", "mg_snake", seeds=group, updates=300)
        write_snake_run(array / f"mg_snake_oc_s{group[0]}", "mg_snake_oc", outer_critic=True, seeds=group, updates=300)
    result = run_plot(array)
    assert result.returncode == 0, result.stderr
    assert (array / "figure.png").exists()
    assert [r[:3] for r in markdown_rows(result.stdout, "MG")] == [["MG", "4", "300"], ["MG + outer critic", "4", "300"]]
    env, variants = plot.load_runs([str(array)])
    figure = plot.plot(variants, env, plot.Args(runs=(str(array),), out=str(tmp_path / "f.png")), None)
    panel = next(ax for ax in figure.axes if ax.get_title() == "evaluation return (512 games, sampled actions)")
    assert len(panel.get_lines()) == 2  # one curve per variant, not one per run
    # Seeds 0..3 evaluated at 150 and 300: u / 100 + seed, mean over the four seeds.
    assert list(panel.get_lines()[0].get_ydata()) == pytest.approx([1.5 + 1.5, 3.0 + 1.5])


def test_read_metrics_keeps_the_last_of_a_repeated_log_point_and_leaves_out_a_row_being_written(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        "seed,global_step,meta/gamma\n1,20,0.9\n0,20,0.8\n0,10,0.7\n0,20,0.85\n1,30,0.95\n0,3"  # no newline: cut short
    )
    frame = plot.read_metrics(tmp_path)
    expected = pd.DataFrame({"seed": [0, 0, 1, 1], "global_step": [10, 20, 20, 30], "meta/gamma": [0.7, 0.85, 0.9, 0.95]})
    pd.testing.assert_frame_equal(frame, expected)
    (tmp_path / "metrics.csv").write_text("seed,global_step,meta/gamma\n0,20,abc\n")
    with pytest.raises(ValueError):
        plot.read_metrics(tmp_path)
