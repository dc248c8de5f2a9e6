"""benchmark.py runs each script's own make_train and prints a table whose columns agree with
each other: the figures of the README's Performance section come from it. Bad options stop it
with one line before JAX is imported."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

import mg_chain


def test_benchmark_table_is_consistent():
    # The chain at its paper configuration: a 2-update chunk costs milliseconds, the compiles ~2 s each.
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmark.py"),
            "--scripts",
            "mg_chain.py",  # the file name works too
            "--num-seeds",
            "1",
            "2",
            "--updates",
            "2",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("| mg_chain")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert [(r[1], r[2]) for r in rows] == [(seeds, variant) for seeds in ("1", "2") for variant in ("A2C", "MG", "MG + oc")]

    number = lambda cell: float(cell.replace(",", "").rstrip("×"))
    # The table rounds: ms/update and updates/s to 0.1, steps/s to 1, ratios to 0.01. Each check
    # allows the rounding of the printed figure plus that of the printed figures it is derived from.
    rounding = lambda cell: 0.5 * 10.0 ** -len(cell.rstrip("×").partition(".")[2]) / number(cell)  # relative

    def agrees(cell, value, *inputs):
        allowed = rounding(cell) + sum(rounding(c) for c in inputs) + 1e-9
        assert abs(number(cell) - value) <= allowed * max(abs(number(cell)), abs(value)), (cell, value)

    steps_per_batch = mg_chain.make_train(mg_chain.Args()).steps_per_batch
    for row, a2c in zip(rows, [rows[0]] * 3 + [rows[3]] * 3):
        _, seeds, variant, compile_s, ms, updates_s, inner, all_steps, vs_a2c, raw, fraction, _ = row
        assert number(compile_s) > 0
        agrees(updates_s, 1e3 / number(ms), ms)
        # One inner batch per seed per update; the meta-gradient variant also samples the outer batch.
        agrees(inner, steps_per_batch * int(seeds) * number(updates_s), updates_s)
        agrees(all_steps, number(inner) * (1 if variant == "A2C" else 2), inner)
        agrees(vs_a2c, number(ms) / number(a2c[4]), ms, a2c[4])
        agrees(fraction, number(inner) / number(raw), inner, raw)
    assert [r[11] for r in rows[:3]] == ["1.00×"] * 3
    for two, one in zip(rows[3:], rows[:3]):  # time vs 1 seed
        agrees(two[11], number(two[4]) / number(one[4]), two[4], one[4])


@pytest.mark.parametrize(
    "options, message",
    [
        (["--scripts", "foo"], "--scripts must be among mg_chain, bmg_chain, mg_snake, bmg_snake, got foo"),
        (
            ["--scripts", "mg_chain", "bmg_snake.py", "mg_snake.pyc"],
            "--scripts must be among mg_chain, bmg_chain, mg_snake, bmg_snake, got mg_snake.pyc",
        ),
        (["--scripts"], "--scripts must be among mg_chain, bmg_chain, mg_snake, bmg_snake, got none"),
        (["--num-seeds", "1", "0"], "--num-seeds must be one or more seed counts >= 1, got 0"),
        (["--num-seeds"], "--num-seeds must be one or more seed counts >= 1, got none"),
        (["--updates", "0"], "--updates must be >= 1, got 0"),
        (["--repeats", "-1"], "--repeats must be >= 1, got -1"),
    ],
)
def test_bad_options_exit_2_with_one_line_before_jax_is_imported(tmp_path, options, message):
    # A jax that cannot be imported: a check that came after `import jax` would end in a traceback.
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text("raise ImportError('benchmark.py imported jax before checking its options')")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmark.py"), *options],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert (result.returncode, result.stderr, result.stdout) == (2, f"error: {message}\n", "")
