"""benchmark.py runs each script's own make_train and prints a table whose columns agree with
each other: the figures of docs/performance.md come from it. Its FLOP counts (XLA's cost analysis)
agree with a count by hand from the layer shapes. Bad options stop it with one line before JAX is
imported."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from conftest import ROOT

import benchmark
import common_envs
import mg_chain
import mg_snake


def snake_macs():
    """Multiply-adds per observation of the Snake networks, by hand from the layer shapes: (conv1, torso
    output size, actor, critic). Each 2×2 conv is a matmul over 2×2 patches at its 3 × 3 output positions."""
    rows, cols, channels = common_envs.SNAKE_OBS_SHAPE
    positions = (rows // 2) * (cols // 2)  # stride 2, then stride 1 with SAME padding: 3 × 3
    conv1, conv2, torso = positions * 4 * channels * 32, positions * 4 * 32 * 32, positions * 32
    actor = conv1 + conv2 + torso * 64 + 64 * 64 + 64 * common_envs.SNAKE_NUM_ACTIONS
    head = torso * 128 + 128 * 128 + 128 * 1
    return conv1, torso, actor, conv1 + conv2 + 2 * head


@pytest.mark.slow  # compiles a whole Snake update twice, its scans unrolled
def test_flop_counts_agree_with_the_layer_shapes():
    conv1, torso, actor_macs, critic_macs = snake_macs()
    batch = 16
    obs = jnp.zeros((batch, *common_envs.SNAKE_OBS_SHAPE))
    for network, macs in [(mg_snake.Actor(common_envs.SNAKE_NUM_ACTIONS), actor_macs), (mg_snake.Critic(), critic_macs)]:
        params = network.init(jax.random.PRNGKey(0), obs[0])
        flops, matmul = benchmark.cost(jax.jit(network.apply).lower(params, obs).compile())
        assert matmul == 2 * batch * macs  # one forward pass: XLA's matmuls are exactly the layers'
        # XLA counts the rest too (biases, ReLUs, some of them computed twice in two fusions): < 2% more.
        assert matmul < flops < 1.02 * matmul

    # One A2C update (one seed, scans unrolled), by hand: the rollout's T × B actor passes, the critic's
    # values on the B last observations s_T, and the loss's forward and backward passes on T × B (the
    # critic's forward pass there gives the values on s_0..s_T-1 too: it is computed once): the
    # backward pass costs a forward pass for the weights' gradients and one for the inputs', less the
    # layers whose input needs none (the first conv; the outer head's first layer reads stop_gradient).
    num_envs, steps = 8, mg_snake.Args().num_steps
    by_hand = (
        2
        * steps
        * num_envs
        * (actor_macs + critic_macs / steps + (3 * actor_macs - conv1) + (3 * critic_macs - conv1 - torso * 128))
    )
    flops, matmul = benchmark.update_flops(mg_snake, mg_snake.Args(meta_lr=0.0, num_envs=num_envs))
    # XLA may do the smallest matmul (a 4-wide contraction of the actor's last layer) as elementwise work.
    assert abs(matmul - by_hand) <= 2 * steps * num_envs * 64 * common_envs.SNAKE_NUM_ACTIONS
    assert flops > by_hand


@pytest.mark.slow
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
            "--peak-size",
            "512",
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

    (peak,) = [line.split()[3] for line in result.stdout.splitlines() if line.startswith("measured matmul peak:")]
    steps_per_batch = mg_chain.make_train(mg_chain.Args(), all_parts=True).steps_per_batch
    for row, a2c in zip(rows, [rows[0]] * 3 + [rows[3]] * 3):
        _, seeds, variant, compile_s, ms, updates_s, inner, all_steps, vs_a2c, raw, fraction, _ = row[:12]
        gflop, matmul_share, gflops, of_peak = row[12:]
        # FLOPs of one seed's update, the same at every seed count; the seeds' updates are all counted.
        assert gflop == rows[rows.index(row) % 3][12] and 0 < number(matmul_share) < 1
        agrees(gflops, number(gflop) * int(seeds) / number(ms) * 1e3, gflop, ms)
        agrees(of_peak, number(gflops) / number(peak), gflops, peak)
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
        (["--peak-size", "0"], "--peak-size must be >= 1, got 0"),
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
