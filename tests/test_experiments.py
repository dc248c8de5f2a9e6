"""experiments/*.sh: the commands each script runs, read from a stand-in `python` that records its
arguments and trains nothing; bad arguments and a missing JAX stop the script with one line. And
experiments/reference_tables.py's tables on synthetic runs, against numbers worked out by hand."""

import csv
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    ROOT,
    gamma_at,
    markdown_rows,
    run_main_in_process,
    run_with_stand_in_python,
    write_chain_run,
    write_snake_run,
)
from scipy import stats

sys.path.insert(0, os.path.join(ROOT, "experiments"))
import gamma_return_scatter  # noqa: E402
import reference_tables  # noqa: E402


def run_experiment(tmp_path, script, *arguments, imports_ok=True):
    """(result, [argument lists of every python call])."""
    return run_with_stand_in_python(tmp_path, script, *arguments, imports_ok=imports_ok)


def variant_commands(name):
    """{NAME: [SCRIPT, FLAGS...]} of experiments/slurm/<name>.txt, in the file's order."""
    with open(os.path.join(ROOT, "experiments", "slurm", f"{name}.txt")) as f:
        lines = [line.split() for line in f if line.strip() and not line.lstrip().startswith("#")]
    return {words[0]: words[1:] for words in lines}


def last_value(call, flag):
    """The value a script takes for `flag` in this argument list: the last one given."""
    return call[max(i for i, word in enumerate(call) if word == flag) + 1]


def test_chain_runs_each_variant_line_with_its_own_numbers(tmp_path, monkeypatch):
    result, calls = run_experiment(tmp_path, "chain.sh", "100")
    assert result.returncode == 0, result.stderr
    assert calls[0] == ["-c", "import", "jax,", "jumanji,", "gymnax"]
    out = calls[1][calls[1].index("--runs-dir") + 1]
    assert re.fullmatch(r"runs/chain_\d{8}-\d{6}", out)
    common = ["--num-updates", "100", "--num-seeds", "10", "--runs-dir", out]
    variants = variant_commands("chain")
    assert calls[1:-2] == [[*command, *common] for command in variants.values()]
    assert calls[-2:] == [["plot.py", out, "--out", f"{out}/chain.png"], ["experiments/reference_tables.py", out]]
    # Flags after the two numbers go to every run, and each run takes the script's numbers, not the
    # variants file's budget: parsed as the training script parses them, its last value of an option.
    _, calls = run_experiment(tmp_path, "chain.sh", "100", "2", "--log-every", "5")
    assert all(call[-2:] == ["--log-every", "5"] for call in calls[1:-2])
    import bmg_chain
    import common_run
    import mg_chain

    for call, name in zip(calls[1:-2], variants, strict=True):
        script = {"mg_chain.py": mg_chain, "bmg_chain.py": bmg_chain}[call[0]]
        monkeypatch.setattr(sys, "argv", call)
        args, _ = common_run.parse_args(script.Args, script.SCRIPT, script.arg_rules)
        assert (args.num_updates, args.num_seeds, args.log_every, args.exp_name) == (100, 2, 5, name)


def test_snake_scripts_pass_their_numbers_and_flags(tmp_path):
    variants = variant_commands("snake").values()
    result, calls = run_experiment(tmp_path, "snake.sh", "3840000", "2", "--eval-every", "50")
    assert result.returncode == 0, result.stderr
    out = calls[1][calls[1].index("--runs-dir") + 1]
    assert re.fullmatch(r"runs/snake_\d{8}-\d{6}", out)
    common = ["--total-timesteps", "3840000", "--num-seeds", "2", "--runs-dir", out, "--eval-every", "50"]
    assert calls[1:-1] == [[*command, *common] for command in variants]
    assert calls[-1] == ["plot.py", out, "--out", f"{out}/snake.png"]
    result, calls = run_experiment(tmp_path, "snake_early.sh")
    assert result.returncode == 0, result.stderr
    out = calls[1][calls[1].index("--runs-dir") + 1]
    assert re.fullmatch(r"runs/snake_early_\d{8}-\d{6}", out)
    assert f"training into {out}" in result.stdout and "python mg_snake.py --resume <run dir>" in result.stdout
    common = ["--total-timesteps", "3840000", "--num-seeds", "3", "--runs-dir", out, "--checkpoint-every-s", "300"]
    assert calls[1:-2] == [[*command, *common] for command in variants]
    assert calls[-2:] == [
        [
            "plot.py",
            out,
            "--out",
            f"{out}/snake_early.png",
            "--window",
            "146",
            "--mark-updates",
            "438",
            "584",
            "1460",
        ],
        ["experiments/reference_tables.py", out, "--at-updates", "438", "584", "1460"],
    ]


def test_ablation_plots_exactly_its_own_runs_and_leaves_docs_alone(tmp_path):
    result, calls = run_experiment(tmp_path, "ablation.sh", "20", "2", "25600", "1")
    assert result.returncode == 0, result.stderr
    out = calls[1][calls[1].index("--runs-dir") + 1].removesuffix("/chain")
    assert re.fullmatch(r"runs/ablation_\d{8}-\d{6}", out)
    runs, plots = calls[1:-2], calls[-2:]
    # MG and BMG of the chain's variants file and MG of Snake's, each its line with the flag, named <variant>_norm.
    variants = {**variant_commands("chain"), **variant_commands("snake")}
    names = ["mg_chain", "mg_chain_oc", "bmg_chain", "bmg_chain_oc", "mg_snake", "mg_snake_oc"]
    assert [last_value(call, "--exp-name") for call in runs] == [f"{name}_norm" for name in names]
    assert all(call[: len(variants[name])] == variants[name] for call, name in zip(runs, names, strict=True))
    assert all("--normalize-advantage" in call for call in runs)
    assert [last_value(call, "--runs-dir") for call in runs] == [f"{out}/chain"] * 4 + [f"{out}/snake"] * 2
    assert [last_value(call, "--num-updates") for call in runs[:4]] == ["20"] * 4
    assert [last_value(call, "--total-timesteps") for call in runs[4:]] == ["25600"] * 2
    snake_plot = ["plot.py", f"{out}/snake", "--out", f"{out}/snake_normalized.png", "--window", "146", "--mark-updates"]
    assert plots == [
        ["plot.py", f"{out}/chain", "--out", f"{out}/chain_normalized.png"],
        [*snake_plot, "146", "292", "438", "1460"],
    ]
    assert not any("docs" in " ".join(call) for call in calls)


@pytest.mark.parametrize(
    "script, arguments, message",
    [
        ("chain.sh", ["abc"], "error: NUM_UPDATES must be a positive integer, got 'abc'"),
        ("chain.sh", ["100", "0"], "error: NUM_SEEDS must be a positive integer, got '0'"),
        ("chain.sh", ["--outer-critic"], "error: NUM_UPDATES must be a positive integer, got '--outer-critic'"),
        ("snake.sh", ["3.84e6"], "error: TOTAL_TIMESTEPS must be a positive integer, got '3.84e6'"),
        ("snake_early.sh", ["3840000", "-1"], "error: NUM_SEEDS must be a positive integer, got '-1'"),
        ("ablation.sh", ["100", "2", "x"], "error: SNAKE_TIMESTEPS must be a positive integer, got 'x'"),
        (
            "ablation.sh",
            ["1", "1", "1", "1", "1"],
            "error: at most 4 arguments (CHAIN_UPDATES CHAIN_SEEDS SNAKE_TIMESTEPS SNAKE_SEEDS), got 5",
        ),
    ],
)
def test_bad_numbers_stop_before_python_runs(tmp_path, script, arguments, message):
    result, calls = run_experiment(tmp_path, script, *arguments)
    assert (result.returncode, result.stderr, calls) == (2, message + "\n", [])


@pytest.mark.parametrize("script", ["chain.sh", "snake.sh", "snake_early.sh", "ablation.sh"])
def test_without_the_requirements_the_scripts_say_what_to_install(tmp_path, script):
    result, calls = run_experiment(tmp_path, script, imports_ok=False)
    assert result.returncode == 2
    assert result.stderr == "error: install the requirements first: pip install -r requirements.txt\n"
    assert len(calls) == 1  # the import check, no training


# ------------------------------------------------------------------------------------------------
# experiments/reference_tables.py on synthetic runs (conftest's writers): the README's tables
# ------------------------------------------------------------------------------------------------
REFERENCE_CSV = os.path.join(ROOT, "docs", "data", "reference_snake_curves.csv")


def run_tables(*arguments, in_process=True):
    """`python experiments/reference_tables.py arguments...`, as its main() in this process unless not in_process."""
    if in_process:
        return run_main_in_process(reference_tables.main, ["reference_tables.py", *arguments])
    command = [sys.executable, os.path.join(ROOT, "experiments", "reference_tables.py"), *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_chain_paper_side_counts_the_seeds_that_end_where_figure_2_does(tmp_path):
    # Without the outer critic: γ 0.90 with π(chain 0 | s0) growing is on the paper's side; γ 0.95 is not.
    # With it: γ 0.995 with π(chain 3 | s0) growing is; the same γ with π(chain 3 | s0) falling is not.
    write_chain_run(tmp_path / "a", "mg_chain", p_paying=lambda u: 0.2 - u / 1000, gammas=lambda u: 0.9)
    write_chain_run(tmp_path / "b", "mg_chain", p_paying=lambda u: 0.2 - u / 1000, gammas=lambda u: 0.95)
    write_chain_run(
        tmp_path / "c", "mg_chain_oc", outer_critic=True, p_paying=lambda u: 0.2 + u / 1000, gammas=lambda u: 0.995
    )
    write_chain_run(
        tmp_path / "d", "mg_chain_oc", outer_critic=True, p_paying=lambda u: 0.2 - u / 1000, gammas=lambda u: 0.995
    )
    result = run_tables(tmp_path, in_process=False)  # the script itself, once
    assert result.returncode == 0, result.stderr
    sides = [r for r in markdown_rows(result.stdout, "MG") if len(r) == 3]
    assert sides == [["MG", "2", "1/2"], ["MG + outer critic", "2", "1/2"]]


def test_at_updates_table_gives_ours_beside_the_reference_rows(tmp_path):
    write_snake_run(tmp_path, "a2c_snake", meta_lr=0.0)
    write_snake_run(tmp_path, "mg_snake")
    write_snake_run(tmp_path, "bmg_snake_oc", outer_critic=True, script="bmg_snake.py")
    result = run_tables(tmp_path, "--at-updates", "438", "584", "1460")
    assert result.returncode == 0, result.stderr
    with open(REFERENCE_CSV) as f:
        reference = {(r["variant"], r["metric"], int(r["update"])): r for r in csv.DictReader(f)}
    rows = {(r[0], int(r[1].replace(",", ""))): r for r in markdown_rows(result.stdout, "") if r[1][:1].isdigit()}
    assert rows[("MG (2 seeds)", 438)][3].startswith("0.826 ± 0.005 (10 seeds)")  # the CSV's 0.82588 ± 0.00497
    # Welch's distance: our two seeds' γ are equal (no variance), the reference's sample variance is std² · 10 / 9.
    ours_gamma = np.mean([gamma_at(math.ceil(u / 20) * 20, False) for u in range(420 - 145, 421)])
    ref = reference[("MG", "gamma", 438)]
    distance = (ours_gamma - float(ref["mean"])) / (float(ref["std"]) / 3)
    assert rows[("MG (2 seeds)", 438)][3].endswith(f"; ours (at 420) {distance:+.1f} s.e.")  # ours: the log point 420
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


def test_paired_comparison_with_and_without_the_outer_critic_by_hand(tmp_path):
    # Final evaluation (update 1,350, the last ≤ 1,460 of every 150): MG 13.5 + (0, 1, 2); MG + outer
    # critic the same plus (3, 1, 2). Differences 3, 1, 2: mean 2, sample std (ddof 1, the paired test's) 1.
    # Welch: both sample variances 1, t = 2 / sqrt(1/3 + 1/3) = sqrt(6) = 2.449, df = 4, and with
    # tan θ = t / 2, p = 1 − sin θ (1 + cos² θ / 2) = 1 − sqrt(0.6) · 1.2 = 0.0705. Paired: the
    # differences' sample std is 1, t = 2 / (1 / sqrt(3)) = 3.464, df = 2, p = 1 − t / sqrt(2 + t²) = 0.0742.
    write_snake_run(tmp_path / "runs", "mg_snake", seeds=(0, 1, 2))
    write_snake_run(tmp_path / "runs", "mg_snake_oc", outer_critic=True, seeds=(0, 1, 2), eval_bonus=(3, 1, 2))
    write_snake_run(tmp_path / "runs", "bmg_snake_oc", outer_critic=True, script="bmg_snake.py", seeds=(0, 1, 2))
    result = run_tables(tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    assert "With and without the outer critic, seed by seed: the final evaluation return" in result.stdout
    assert markdown_rows(result.stdout, "MG + outer critic −") == [
        [
            "MG + outer critic − MG",
            "3",
            "1,350",
            "0: +3.00, 1: +1.00, 2: +2.00",
            "2.00 ± 1.00",
            "2.45 (4.0)",
            "0.0705",
            "0.0742",
        ]
    ]
    assert not markdown_rows(result.stdout, "BMG + outer critic −")  # BMG without the outer critic is missing

    # Other seeds (one more without the outer critic): no pairs, and stderr says why.
    write_snake_run(tmp_path / "runs", "mg_snake_more", seeds=(3,))
    result = run_tables(tmp_path / "runs")
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
    result = run_tables(tmp_path / "runs", "--at-updates", "438", "1460", "--out", tables)
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

    # With − without, same seed, at each update: differences, mean ± sample std (ddof 1), paired t's p (γ:
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
        ["MG + outer critic − MG", "438", "eval return", "450", "3", "0: +3.00, 1: +1.00, 2: +2.00", "2.00 ± 1.00", "0.0742"],
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
            "2.00 ± 1.00",
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
    result = run_tables(tmp_path / "short", "--at-updates", "1460")
    assert result.returncode == 0, result.stderr
    assert [r[:5] for r in markdown_rows(result.stdout, "MG + outer critic − MG")[1:]] == [
        ["MG + outer critic − MG", "1,460", "γ", "1,000", "3"],
        ["MG + outer critic − MG", "1,460", "eval return", "900", "3"],
        ["MG + outer critic − MG", "1,460", "eval return, greedy", "900", "3"],
    ]
    result = run_tables(tmp_path / "short", "--out", tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        f"error: --out {tmp_path} is a directory; give the markdown file's path\n",
    )


def test_paired_spread_is_the_sample_std_the_t_test_uses_and_values_read_elsewhere_say_where(tmp_path):
    # Four seeds both ways, with uneven differences (with − without): the evaluation return by
    # bonus_oc − bonus, γ by the offsets' difference. Whatever they are, the printed ± is numpy's
    # std with ddof=1 of the differences and the p scipy.stats.ttest_rel's; a ddof-0 ± would differ
    # (by sqrt(4/3)). At 438 the evaluation is read at 450 (the nearest) and γ at 420 (the last log
    # point ≤ it); the tables say so.
    seeds, bonus, bonus_oc = (0, 1, 2, 3), (0.0, 0.75, 0.25, 1.0), (0.5, 2.25, -1.0, 4.0)
    offsets, offsets_oc = (0.0, 0.01, 0.0, 0.02), (0.031, 0.004, 0.052, 0.017)
    write_snake_run(tmp_path / "runs", "mg_snake", seeds=seeds, eval_bonus=bonus, offsets={"meta/gamma": offsets})
    write_snake_run(
        tmp_path / "runs",
        "mg_snake_oc",
        outer_critic=True,
        seeds=seeds,
        eval_bonus=bonus_oc,
        offsets={"meta/gamma": offsets_oc},
    )
    result = run_tables(tmp_path / "runs", "--at-updates", "438")
    assert result.returncode == 0, result.stderr

    def expected(a, b, fmt):
        a, b = np.array(a), np.array(b)
        d = a - b
        assert not math.isclose(d.std(ddof=1), d.std(), rel_tol=0.01)  # the two spreads print apart
        return [
            ", ".join(f"{s}: {x:+{fmt}}" for s, x in zip(seeds, d)),
            f"{d.mean():{fmt}} ± {d.std(ddof=1):{fmt}}",
            f"{stats.ttest_rel(a, b).pvalue:.3g}",
        ]

    # Evaluation at update u: u / 100 + seed + bonus; the last (1,350) and the nearest 438 (450).
    final = [[13.5 + s + x for s, x in zip(seeds, bonuses)] for bonuses in (bonus_oc, bonus)]
    at_450 = [[4.5 + s + x for s, x in zip(seeds, bonuses)] for bonuses in (bonus_oc, bonus)]
    gammas = [
        [gamma_window(420, outer_critic) + o for o in offs] for outer_critic, offs in ((True, offsets_oc), (False, offsets))
    ]
    rows = markdown_rows(result.stdout, "MG + outer critic − MG")
    per_seed, mean, p_paired = expected(*final, ".2f")
    assert rows[0][:5] == ["MG + outer critic − MG", "4", "1,350", per_seed, mean]
    assert rows[0][-1] == p_paired
    assert rows[1] == ["MG + outer critic − MG", "438", "γ", "420", "4", *expected(*gammas, ".3f")]
    assert rows[2] == ["MG + outer critic − MG", "438", "eval return", "450", "4", *expected(*at_450, ".2f")]

    # What each spread is, in the headers and the notes.
    headers = markdown_rows(result.stdout, "comparison")
    assert all("difference, mean ± sample std (ddof 1)" in h for h in headers) and len(headers) == 2
    assert result.stdout.count("paired: the per-seed differences' mean ± sample std (ddof 1)") == 2
    population = "mean ± std over seeds with the population std (ddof 0), as the reference's curves"
    assert result.stdout.startswith(f"Each variant's last log point, {population}.")
    assert f"Ours and the reference's: {population};" in result.stdout

    # Ours beside the reference at 438: γ read at 420 and the evaluation at 450, in the cells and in
    # the distance to the reference's (which is at 438 itself).
    (row,) = [r for r in markdown_rows(result.stdout, "MG (4 seeds)") if r[1] == "438"]
    gamma, gamma_ref, eval_ours, _, eval_ref = row[2:7]
    assert gamma.endswith(" (at 420)") and eval_ours.endswith(" (at 450)")
    assert "; ours (at 420) " in gamma_ref and "; ours (at 450) " in eval_ref
    assert ", at " not in gamma_ref and ", at " not in eval_ref  # the reference logged 438


def difference_text(base):
    """The γ difference cells where with − without = base + (0.03, 0.01, 0.02): mean base + 0.02, sample
    std (ddof 1, printed as the paired test uses it) 0.01, so t = (base + 0.02) · sqrt(3) / 0.01 with df 2,
    and p = 1 − t / sqrt(2 + t²)."""
    t = (base + 0.02) * math.sqrt(3) / 0.01
    return [
        f"0: +{base + 0.03:.3f}, 1: +{base + 0.01:.3f}, 2: +{base + 0.02:.3f}",
        f"{base + 0.02:.3f} ± 0.010",
        f"{1 - t / math.sqrt(2 + t * t):.3g}",
    ]


# ------------------------------------------------------------------------------------------------
# experiments/gamma_return_scatter.py: each seed's final γ and return, and the reference's seeds
# ------------------------------------------------------------------------------------------------
def run_scatter(*arguments, in_process=True):
    """`python experiments/gamma_return_scatter.py arguments...`, as its main() in this process unless not in_process."""
    if in_process:
        return run_main_in_process(gamma_return_scatter.main, ["gamma_return_scatter.py", *arguments])
    command = [sys.executable, os.path.join(ROOT, "experiments", "gamma_return_scatter.py"), *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_scatter_reads_each_seeds_last_evaluation_and_first_maximum(tmp_path):
    # Evaluation at update u (every 150): u / 100 + seed + bonus. Seed 0 reaches 34 at 3,450, seed 1 (35 at 3,300)
    # at 3,300, seed 2 never; the last evaluation is at 3,450.
    offsets = {"meta/gamma": [0.0, 0.01, -0.01]}  # γ ranks the seeds as their returns do
    write_snake_run(
        tmp_path, "mg_snake_oc", outer_critic=True, seeds=(0, 1, 2), updates=3500, eval_bonus=[0, 1, -40], offsets=offsets
    )
    result = run_scatter(tmp_path, "--out", tmp_path / "s.png", "--reference", "none")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s.png").exists()
    # γ: the mean over the 146 updates (3354, 3500]: 6 of the log point at 3,360 (logged every 20), all of 3,380..3,500.
    mean_update = (6 * 3360 + 20 * sum(range(3380, 3501, 20))) / 146
    gammas = [f"{gamma_at(mean_update, True) + offset:.3f}" for offset in offsets["meta/gamma"]]
    seeds = markdown_rows(result.stdout, "MG + outer critic")[-3:]
    assert [row[1:] for row in seeds] == [
        ["0", gammas[0], "34.50", "3,450"],
        ["1", gammas[1], "36.50", "3,300"],
        ["2", gammas[2], "-3.50", "never"],
    ]
    (summary,) = [row for row in markdown_rows(result.stdout, "MG + outer critic") if len(row) == 8]
    assert summary[5:] == ["+1.00 (p 0.33)", "2/3", "3,300–3,450 (median 3,375)"]  # Kendall's exact p: 2 of 3! orders
    assert run_scatter(tmp_path / "nothing", in_process=False).returncode == 2  # the script itself, once


def test_the_reference_seeds_average_to_the_reference_curves_last_epoch():
    """docs/data/reference_snake_seeds.csv (each seed's last row in the reference's snake/data/) against
    reference_snake_curves.csv (the same files averaged over seeds at each epoch): two extractions agree."""
    with open(REFERENCE_CSV) as f:
        curves = {(r["variant"], r["metric"], int(r["update"])): r for r in csv.DictReader(f)}
    with open(os.path.join(ROOT, "docs", "data", "reference_snake_seeds.csv")) as f:
        seeds = list(csv.DictReader(f))
    for variant in ("MG", "MG+oc", "BMG", "BMG+oc"):
        rows = [r for r in seeds if r["variant"] == variant]
        assert len(rows) == 10 and {r["last_gamma_step"] for r in rows} == {"29346.0"}
        for column, metric, update in (("last_gamma", "gamma", 29346), ("last_return", "eval_return", 29200)):
            values = np.array([float(r[column]) for r in rows])
            curve = curves[(variant, metric, update)]
            assert values.mean() == pytest.approx(float(curve["mean"]), abs=5e-6)  # the curves: 5 decimals
            assert values.std() == pytest.approx(float(curve["std"]), abs=5e-6)
