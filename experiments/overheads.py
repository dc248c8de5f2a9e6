"""What evaluation and checkpoints add to a Snake run (docs/performance.md, "The cost of evaluation and
checkpoints"): one evaluation (512 games sampled and 512 greedy, 500 steps each) against the 150 updates
between two at the default --eval-every, and one checkpoint write. Timed as main() runs a chunk:
jit(vmap(train)) over seeds, runner donated, a chunk of 20 updates with one evaluation (--eval-every 20)
against the same chunk without (--eval-every 0), best of 3 after a warm-up.

    python experiments/overheads.py            # MG + outer critic, 1 and 3 seeds (about 2 minutes on 2 cores)
"""

import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bmg_snake  # noqa: E402  (the scripts live at the repository's root)
import common_run  # noqa: E402
import mg_snake  # noqa: E402

CHUNK = 20


def best_chunk_seconds(num_seeds, eval_every):
    init, train, _, _ = mg_snake.make_train(mg_snake.Args(outer_critic=True, eval_every=eval_every, num_seeds=num_seeds))
    runner = jax.jit(jax.vmap(init))(jnp.arange(num_seeds))
    train = jax.jit(jax.vmap(train, in_axes=(0, None)), donate_argnums=0)
    runner, metrics = train(runner, jnp.arange(CHUNK))  # compile and warm up
    jax.block_until_ready(metrics)
    times = []
    for k in range(1, 4):
        start = time.perf_counter()
        runner, metrics = train(runner, jnp.arange(k * CHUNK, (k + 1) * CHUNK))
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return min(times)


def checkpoint_seconds(num_seeds):
    """Best of 5 writes of BMG's checkpoint (the larger state: it has the target optimiser's too)."""
    args = bmg_snake.Args(outer_critic=True, num_seeds=num_seeds)
    init, _, _, _ = bmg_snake.make_train(args)
    runner = jax.jit(jax.vmap(init))(jnp.arange(num_seeds))
    folder, times = tempfile.mkdtemp(), []
    for _ in range(5):
        start = time.perf_counter()
        common_run.write_checkpoint(folder, bmg_snake.SCRIPT, args, list(range(num_seeds)), 0, runner)
        times.append(time.perf_counter() - start)
    return min(times), os.path.getsize(os.path.join(folder, "checkpoint.msgpack"))


for num_seeds in (1, 3):
    without, with_eval = best_chunk_seconds(num_seeds, 0), best_chunk_seconds(num_seeds, CHUNK)
    evaluation, between = with_eval - without, 150 * without / CHUNK
    write, size = checkpoint_seconds(num_seeds)
    print(
        f"{num_seeds} seed(s): a chunk of {CHUNK} updates takes {1000 * without:.0f} ms, {1000 * with_eval:.0f} ms "
        f"with one evaluation: an evaluation costs {1000 * evaluation:.0f} ms = {100 * evaluation / between:.1f}% "
        f"of the 150 updates between two ({between:.1f} s); a checkpoint write {1000 * write:.0f} ms ({size / 1e6:.1f} MB)"
    )
