"""experiments/meta_grad_bias.py and meta_grad_bias.sh, without training: synthetic run
folders (args.json + metrics.csv, as mg_chain.py writes them) with known sign agreements give the
table's numbers computed by hand, the figure is drawn without JAX, bad input is one line and exit 2,
and the shell script runs (and continues) the 24 runs it says, through a stand-in `python`."""

import gzip
import json
import os
import shutil
import sys

import numpy as np
import pytest
from conftest import ROOT, run_main_in_process, run_with_stand_in_python, run_without_jax

sys.path.insert(0, os.path.join(ROOT, "experiments"))
import meta_grad_bias  # noqa: E402

SCRIPT = os.path.join(ROOT, "experiments", "meta_grad_bias.py")
SHELL = os.path.join(ROOT, "experiments", "meta_grad_bias.sh")
HEADER = [
    "seed",
    "global_step",
    "charts/episodic_return",
    "eval/expected_return",
    "meta/gamma",
    "meta/meta_grad",
    "meta/meta_grad_exact",
    "meta/meta_grad_inner_head",
    "meta/meta_grad_outer_head",
    "meta/outer_advantage_s0",
    "meta/sign_agreement_inner_head",
    "meta/sign_agreement_outer_head",
    *[f"policy/p_chain{k}" for k in range(5)],
    "charts/SPS",
]


def write_run(
    folder,
    exp_name,
    *,
    script="mg_chain.py",
    outer_critic=False,
    true_value=True,
    mapping=3,
    updates=2000,
    log_every=50,
    num_envs=128,
    seeds=(0, 1),
    inner=lambda seed, u: 0.5,
    outer=lambda seed, u: 1.0,
    p0=lambda seed, u: 0.2,
    gamma=lambda seed, u: 0.95,
    measure_bias=True,
    meta_lr=0.1,
):
    """A run directory as mg_chain.py writes it; each metric a function of (seed, update at the log
    point). Log points every `log_every` updates, the last one at `updates` (a shorter last chunk when
    log_every does not divide it, as main() does)."""
    run = folder / f"DiscountingChain-bsuite__{exp_name}__{seeds[0]}__1"
    run.mkdir(parents=True)
    args = {
        "script": script,
        "exp_name": exp_name,
        "seed": seeds[0],
        "num_seeds": len(seeds),
        "mapping_seed": mapping,
        "num_updates": updates,
        "log_every": log_every,
        "num_envs": num_envs,
        "true_value": true_value,
        "outer_critic": outer_critic,
        "meta_lr": meta_lr,
        "max_meta_grad_norm": float("inf"),  # written as Infinity, as the scripts do
        "measure_bias": measure_bias,
    }
    (run / "args.json").write_text(json.dumps(args, indent=2))
    header = HEADER if measure_bias else [h for h in HEADER if "sign_agreement" not in h and "meta_grad_" not in h]
    lines = [",".join(header)]
    points = list(range(log_every, updates, log_every)) + [updates]
    for u in points:
        for seed in seeds:
            rest = (1 - p0(seed, u)) / 4
            row = {
                "seed": seed,
                "global_step": u * 100 * num_envs,
                "meta/gamma": gamma(seed, u),
                "meta/sign_agreement_inner_head": inner(seed, u),
                "meta/sign_agreement_outer_head": outer(seed, u),
                "policy/p_chain0": p0(seed, u),
                **{f"policy/p_chain{k}": rest for k in range(1, 5)},
            }
            lines.append(",".join(str(row.get(h, 0.001)) for h in header))
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    (run / f"seed{seeds[0]}").mkdir()  # TensorBoard folders below a run are not runs
    return run


def hand_run(folder, **kwargs):
    """2,000 updates, 40 log points. Seed 0: inner agreement 0.2 up to update 1,000, 0.6 after; outer
    1.0; π(0 | s0) = u / 1000, so it first exceeds 0.5 at update 550; γ 0.90. Seed 1: inner 0.4 then
    0.8; outer 0.9; π(0 | s0) 0.3, never leaning; γ 0.95."""
    return write_run(
        folder,
        "mg_oracle_m3",
        inner=lambda s, u: (0.2 if u <= 1000 else 0.6) if s == 0 else (0.4 if u <= 1000 else 0.8),
        outer=lambda s, u: 1.0 if s == 0 else 0.9,
        p0=lambda s, u: u / 1000 if s == 0 else 0.3,
        gamma=lambda s, u: 0.9 if s == 0 else 0.95,
        **kwargs,
    )


def test_the_table_equals_the_hand_computation(tmp_path):
    run = meta_grad_bias.load_run(str(hand_run(tmp_path)))
    row = meta_grad_bias.summarize(run, last_updates=1000, threshold=0.5)
    assert (row["variant"], row["critic"], row["mapping"], row["seeds"], row["updates"], row["used"]) == (
        "mg",
        "oracle",
        3,
        2,
        2000,
        "inner_head",
    )
    # The last 1,000 updates: log points 1,050 .. 2,000 (chunks (1000, 1050] .. (1950, 2000]).
    np.testing.assert_allclose(row["agree_used"], [0.6, 0.8])
    np.testing.assert_allclose(row["agree_other"], [1.0, 0.9])
    np.testing.assert_allclose(row["gamma"], [0.9, 0.95])
    np.testing.assert_equal(row["lean"], [550, np.nan])
    # Seed 0 leans at 550: before = the 11 chunks up to 550 (agreement 0.2); after = 600 .. 1,000
    # (9 chunks at 0.2) and 1,050 .. 2,000 (20 chunks at 0.6). Seed 1 never leans: all 40 chunks before.
    after0 = (9 * 0.2 + 20 * 0.6) / 29
    np.testing.assert_allclose(row["wrong_before_inner_head"], [0.8, 1 - (20 * 0.4 + 20 * 0.8) / 40])
    np.testing.assert_allclose(row["wrong_after_inner_head"], [1 - after0, np.nan])
    np.testing.assert_allclose(row["wrong_before_outer_head"], [0.0, 0.1], atol=1e-12)
    text = meta_grad_bias.table([row], 1000, 0.5)
    cells = [
        "MG",
        "3 (30)",
        "2",
        "2,000",
        "inner",
        "0.700 ± 0.100",  # agreement of the head used, over the last 1,000 updates
        "0.950 ± 0.050",  # of the other head
        "0.9250 ± 0.0250",
        "550 (1/2)",
        "0.600 ± 0.200",  # inner head wrong before the lean: seeds 0.8 and 0.4
        f"{1 - after0:.3f} ± 0.000",  # after it: seed 0 alone
        "0.050 ± 0.050",
        "0.000 ± 0.000",
    ]
    assert "| " + " | ".join(cells) + " |" in text
    assert "**oracle values (--true-value)**" in text and "learned critic" not in text
    # Another threshold: π(0 | s0) > 0.25 first at 300 for seed 0, at the first log point (0.3) for seed 1.
    row = meta_grad_bias.summarize(run, last_updates=1000, threshold=0.25)
    np.testing.assert_equal(row["lean"], [300, 50])
    np.testing.assert_allclose(row["wrong_after_inner_head"], [1 - (14 * 0.2 + 20 * 0.6) / 34, 1 - (19 * 0.4 + 20 * 0.8) / 39])


def test_a_gzipped_metrics_csv_as_in_docs_data_reads_the_same(tmp_path):
    plain = hand_run(tmp_path / "plain")
    packed = hand_run(tmp_path / "packed")
    with open(packed / "metrics.csv", "rb") as f, gzip.open(packed / "metrics.csv.gz", "wb") as g:
        shutil.copyfileobj(f, g)
    os.remove(packed / "metrics.csv")
    rows = [meta_grad_bias.summarize(meta_grad_bias.load_run(str(run)), 1000, 0.5) for run in (plain, packed)]
    assert meta_grad_bias.table(rows[:1], 1000, 0.5) == meta_grad_bias.table(rows[1:], 1000, 0.5)


def test_chunks_are_weighted_by_their_updates_and_a_short_run_uses_all_of_it(tmp_path):
    # 1,025 updates, log points every 100: the last chunk (1000, 1025] holds 25 updates.
    run = write_run(
        tmp_path,
        "bmg_oc_learned_m4",
        script="bmg_chain.py",
        outer_critic=True,
        true_value=False,
        mapping=4,
        updates=1025,
        log_every=100,
        num_envs=16,
        seeds=(3,),
        inner=lambda s, u: 1.0 if u == 1025 else 0.0,
        outer=lambda s, u: u / 1000,
        p0=lambda s, u: 0.6,
    )
    row = meta_grad_bias.summarize(meta_grad_bias.load_run(str(run)), last_updates=500, threshold=0.5)
    assert (row["variant"], row["critic"], row["mapping"], row["updates"], row["used"]) == (
        "bmg_oc",
        "learned",
        4,
        1025,
        "outer_head",
    )
    # The last 500 updates: the chunks that start at or after update 525, i.e. (600, 700] .. (1000, 1025].
    outer = (100 * (0.7 + 0.8 + 0.9 + 1.0) + 25 * 1.025) / 425
    np.testing.assert_allclose(row["agree_used"], [outer])
    np.testing.assert_allclose(row["agree_other"], [25 / 425])
    # Leaning at the first log point: before = the first chunk (100 updates), after = the other 925.
    np.testing.assert_allclose(row["wrong_before_inner_head"], [1.0])
    np.testing.assert_allclose(row["wrong_after_inner_head"], [1 - 25 / 925])
    # A run shorter than the window: all of it, and the table says how much.
    row = meta_grad_bias.summarize(meta_grad_bias.load_run(str(run)), last_updates=5000, threshold=0.5)
    np.testing.assert_allclose(row["agree_other"], [25 / 1025])
    assert "| BMG + outer critic | 4 (100) | 1 | 1,025 (last 1,025) | outer |" in meta_grad_bias.table([row], 5000, 0.5)


def test_rolling_mean_is_trailing_over_log_points():
    values = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(meta_grad_bias.rolling_mean(values, 3), [[1, 1.5, 2, 3, 4], [0, 0, 1 / 3, 2 / 3, 1]])
    np.testing.assert_allclose(meta_grad_bias.rolling_mean(values, 1), values)


def test_the_figure_and_the_table_are_written_without_jax(tmp_path):
    grid = tmp_path / "grid"
    for critic, true_value in (("oracle", True), ("learned", False)):
        for mapping in (2, 3, 4):
            for variant, script, oc in (("mg", "mg_chain.py", False), ("bmg_oc", "bmg_chain.py", True)):
                write_run(
                    grid,
                    f"{variant}_{critic}_m{mapping}",
                    script=script,
                    outer_critic=oc,
                    true_value=true_value,
                    mapping=mapping,
                    updates=500,
                    inner=lambda s, u: (u % 200) / 200,
                    outer=(lambda s, u: 1.0) if true_value else (lambda s, u: 0.9),
                    p0=lambda s, u: u / 500,
                    gamma=lambda s, u, oc=oc: 0.95 + (0.04 if oc else -0.04) * u / 500,
                )
    write_run(grid, "a2c", meta_lr=0.0)  # left out, with a note
    write_run(grid, "plain", measure_bias=False)
    result = run_without_jax(SCRIPT, grid, "--window", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (grid / "meta_grad_bias.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (grid / "meta_grad_bias.png").stat().st_size > 20_000
    table = (grid / "meta_grad_bias.md").read_text()
    assert table in result.stdout
    assert f"figure: {grid}/meta_grad_bias.png" in result.stdout
    assert "**oracle values (--true-value)**" in table and "**learned critic (--no-true-value)**" in table
    rows = [line for line in table.splitlines() if line.startswith("| MG") or line.startswith("| BMG")]
    assert len(rows) == 12
    # Oracle first, then by delay (10, 30, 100), MG before BMG + outer critic.
    assert [r.split(" | ")[1] for r in rows[:6]] == ["2 (10)", "2 (10)", "3 (30)", "3 (30)", "4 (100)", "4 (100)"]
    assert "left out" in result.stderr and "A2C (--meta-lr 0)" in result.stderr and "without --measure-bias" in result.stderr
    # --out elsewhere: the table goes beside it.
    out = tmp_path / "figs" / "bias.png"
    out.parent.mkdir()
    result = run_main_in_process(meta_grad_bias.main, [SCRIPT, grid, "--out", out])
    assert result.returncode == 0, result.stderr
    assert out.exists() and (tmp_path / "figs" / "bias.md").read_text() == table


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["no/such/dir"], "error: DIR 'no/such/dir' is not a directory\n"),
        (["."], "error: no chain run trained with --measure-bias below .\n"),
        ([".", "--window", "0"], "error: --window must be a positive integer, got 0\n"),
        ([".", "--last-updates", "-5"], "error: --last-updates must be a positive integer, got -5\n"),
        ([".", "--lean-threshold", "1"], "error: --lean-threshold must be in (0, 1), got 1.0\n"),
        ([".", "--lean-threshold", "nan"], "error: --lean-threshold must be in (0, 1), got nan\n"),
        ([], "Missing from"),  # tyro's own messages: a missing DIR, an unknown option
        ([".", "--colour", "red"], "Unrecognized options: --colour, red"),
    ],
)
def test_bad_input_exits_2_before_anything_is_written(tmp_path, arguments, message):
    result = run_main_in_process(meta_grad_bias.main, [SCRIPT, *arguments], cwd=tmp_path)
    assert (result.returncode, list(tmp_path.iterdir())) == (2, []), result.stderr
    assert result.stderr == message if message.startswith("error: ") else message in result.stderr


def test_two_runs_of_one_cell_are_refused(tmp_path):
    first = hand_run(tmp_path / "a")
    second = hand_run(tmp_path / "b")
    result = run_main_in_process(meta_grad_bias.main, [SCRIPT, tmp_path])
    assert result.returncode == 2
    assert result.stderr == f"error: two runs of MG, oracle, mapping 3: {first} and {second}; move one out\n"


# ------------------------------------------------------------------------------------------------
# The shell script, through a stand-in python that records its arguments and trains nothing
# ------------------------------------------------------------------------------------------------
NAMES = [f"{v}_{c}_m{m}" for c in ("oracle", "learned") for m in (3, 2, 4) for v in ("mg", "mg_oc", "bmg", "bmg_oc")]


def run_shell(tmp_path, *arguments, imports_ok=True):
    """(result, [argument lists of every python call])."""
    return run_with_stand_in_python(tmp_path, "meta_grad_bias.sh", *arguments, imports_ok=imports_ok, cwd=tmp_path)


def new_run_call(name, out, updates, seeds, extra=()):
    variant, critic, mapping = name.rsplit("_", 2)
    script = "bmg_chain.py" if variant.startswith("bmg") else "mg_chain.py"
    flags = ["--outer-critic"] if variant.endswith("_oc") else []
    flags += ["--true-value" if critic == "oracle" else "--no-true-value", "--mapping-seed", mapping[1:]]
    common = ["--measure-bias", "--num-seeds", seeds, "--num-updates", updates, "--log-every", "50"]
    common += ["--checkpoint-every-s", "300", "--runs-dir", out, "--exp-name", name, *extra]
    return [script, *flags, *common]


def test_the_shell_script_trains_the_24_runs_then_draws_them(tmp_path):
    result, calls = run_shell(tmp_path, "200", "3", "--num-envs", "16", "--runs-dir", "grids")
    assert result.returncode == 0, result.stderr
    assert calls[0] == ["-c", "import", "jax,", "gymnax,", "matplotlib"]
    out = calls[1][calls[1].index("--runs-dir") + 1]
    assert os.path.dirname(out) == str(tmp_path / "grids")  # --runs-dir is the caller's folder, made absolute
    assert os.path.basename(out).startswith("meta_grad_bias_")
    assert calls[1:25] == [new_run_call(name, out, "200", "3", ["--num-envs", "16"]) for name in NAMES]
    assert calls[25:] == [["experiments/meta_grad_bias.py", out]]
    assert f"after a stop, continue with: experiments/meta_grad_bias.sh --continue {out}\n" in result.stdout
    assert f"then draw the figure and the table with: python experiments/meta_grad_bias.py {out}\n" in result.stdout
    assert "estimated time" not in result.stdout  # measured at 5 seeds only
    assert (tmp_path / out / "grid.args").read_text() == "200\n3\n--num-envs\n16\n"
    assert len((tmp_path / out / "timings.txt").read_text().splitlines()) == 25


def test_the_shell_script_defaults_and_its_estimate(tmp_path):
    """Without arguments: 5,000 updates, 5 seeds, into the repository's runs/ (removed afterwards)."""
    result, calls = run_shell(tmp_path)
    out = calls[1][calls[1].index("--runs-dir") + 1] if len(calls) > 1 else ""
    try:
        assert result.returncode == 0, result.stderr
        assert os.path.dirname(out) == "runs" and os.path.basename(out).startswith("meta_grad_bias_")
        assert calls[1] == new_run_call("mg_oracle_m3", out, "5000", "5")
        # 5,000 updates × 1,018 ms (the 24 runs' idle ms per update at 5 seeds) + 24 × 8 s to start: 88 min.
        assert "estimated time on an idle 2-core CPU: ≈ 88 min" in result.stdout
    finally:
        folder = os.path.join(ROOT, out)
        if out.startswith("runs/meta_grad_bias_") and sorted(os.listdir(folder)) == ["grid.args", "timings.txt"]:
            shutil.rmtree(folder)  # what the stand-in run left: the grid's options and timings, nothing else
    # The estimate follows the budget: 1,000 updates × 1,018 ms + 24 × 8 s = 1,210 s ≈ 20 min.
    result, _ = run_shell(tmp_path, "1000", "5", "--runs-dir", "grids")
    assert "estimated time on an idle 2-core CPU: ≈ 20 min" in result.stdout, result.stderr


def test_a_stopped_grid_continues(tmp_path):
    grid = tmp_path / "grid"
    grid.mkdir()
    (grid / "grid.args").write_text("100\n2\n--num-envs\n16\n")
    # metrics.csv's last global_step: updates × 100 × 16 envs; done at 100 updates = 160,000.
    done = write_run(grid, "mg_oracle_m3", updates=100, num_envs=16)
    stopped = write_run(
        grid, "bmg_oc_learned_m4", script="bmg_chain.py", outer_critic=True, true_value=False, updates=50, num_envs=16
    )
    unlogged = write_run(grid, "mg_oc_oracle_m2", updates=50, num_envs=16)
    (unlogged / "metrics.csv").unlink()  # stopped after its first checkpoint, before its first log point
    for run in (done, stopped, unlogged):
        (run / "checkpoint.msgpack").write_bytes(b"\x00")
    result, calls = run_shell(tmp_path, "--continue", "grid")  # relative to the caller
    assert result.returncode == 0, result.stderr
    out = str(grid)
    assert f"continuing the grid in {out}: 2 seeds × 100 updates each, 3 of 24 runs there" in result.stdout
    assert f"already done: {done}" in result.stdout
    expected = []
    for name in NAMES:
        if name == "mg_oracle_m3":
            continue
        elif name == "bmg_oc_learned_m4":
            expected.append(["bmg_chain.py", "--resume", str(stopped), "--num-updates", "100"])
        elif name == "mg_oc_oracle_m2":
            expected.append(["mg_chain.py", "--resume", str(unlogged), "--num-updates", "100"])
        else:
            expected.append(new_run_call(name, out, "100", "2", ["--num-envs", "16"]))
    assert calls[1:] == [*expected, ["experiments/meta_grad_bias.py", out]]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["abc"], "NUM_UPDATES must be a positive integer, got 'abc'"),
        (["100", "0"], "NUM_SEEDS must be a positive integer, got '0'"),
        (["--outer-critic"], "NUM_UPDATES must be a positive integer, got '--outer-critic'"),
        (
            ["100", "2", "--mapping-seed", "1"],
            "--mapping-seed is set by the grid itself; give NUM_UPDATES and NUM_SEEDS as numbers",
        ),
        (
            ["100", "2", "--num_updates=7"],
            "--num-updates is set by the grid itself; give NUM_UPDATES and NUM_SEEDS as numbers",
        ),
        (["100", "2", "--runs-dir"], "--runs-dir needs a folder"),
        (
            ["--continue"],
            "--continue takes one folder and nothing else: "
            "experiments/meta_grad_bias.sh --continue runs/meta_grad_bias_<time>",
        ),
        (["--continue", "no/such"], "'no/such' is not a directory"),
        (["--continue", "."], ". has no grid.args: not a folder made by experiments/meta_grad_bias.sh"),
    ],
)
def test_the_shell_script_stops_on_bad_arguments_before_python_runs(tmp_path, arguments, message):
    result, calls = run_shell(tmp_path, *arguments)
    assert (result.returncode, result.stderr, calls) == (2, f"error: {message}\n", [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "python.log"]  # nothing written


def test_the_shell_script_checks_every_run_of_a_grid_before_training_any(tmp_path):
    grid = tmp_path / "grid"
    grid.mkdir()
    (grid / "grid.args").write_text("100\n2\n")
    cases = [
        (lambda: write_run(grid, "mg_chain"), "(exp name 'mg_chain') is not one of this grid's runs; move it out of"),
        (lambda: write_run(grid, "bmg_oracle_m3"), "ran mg_chain.py, not bmg_chain.py as its exp name 'bmg_oracle_m3' says"),
        (
            lambda: write_run(grid, "mg_oracle_m3"),
            "has no checkpoint.msgpack to continue from (it stopped within its first 5 minutes)",
        ),
    ]
    for make, message in cases:
        run = make()
        result, calls = run_shell(tmp_path, "--continue", str(grid))
        assert (result.returncode, calls) == (2, []), result.stderr
        assert result.stderr.startswith(f"error: {run} ") and message in result.stderr and result.stderr.count("\n") == 1
        shutil.rmtree(run)
    first, second = write_run(grid / "a", "mg_oracle_m3"), write_run(grid / "b", "mg_oracle_m3")
    first.rename(grid / "one")
    second.rename(grid / "two")
    for name in ("one", "two"):
        (grid / name / "checkpoint.msgpack").write_bytes(b"\x00")
    result, calls = run_shell(tmp_path, "--continue", str(grid))
    assert (result.returncode, result.stderr, calls) == (
        2,
        f"error: two runs named mg_oracle_m3 in {grid}; move one out\n",
        [],
    )


def test_the_shell_script_says_what_to_install(tmp_path):
    result, calls = run_shell(tmp_path, "100", imports_ok=False)
    assert (result.returncode, result.stderr) == (
        2,
        "error: install the requirements first: pip install -r requirements.txt\n",
    )
    assert len(calls) == 1
