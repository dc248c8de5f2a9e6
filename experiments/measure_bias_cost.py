"""What --measure-bias adds to a chain update (docs/usage.md, Every flag): each script, with and
without the outer critic, with the oracle values and the learned critic, 5 seeds at the paper's
128 envs. Timed by benchmark.py's time_training (a 20-update chunk jitted and donated as main()
runs it); off and on alternate twice, and each keeps the best of its 6 timed chunks.

    python experiments/measure_bias_cost.py    # about 2.5 minutes on 2 idle cores
"""

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchmark  # noqa: E402  (the scripts live at the repository's root)
import bmg_chain  # noqa: E402
import mg_chain  # noqa: E402

NUM_SEEDS, UPDATES, REPEATS = 5, 20, 3

for module in (mg_chain, bmg_chain):
    for outer_critic in (False, True):
        for true_value in (True, False):
            base = dataclasses.replace(module.Args(), num_seeds=NUM_SEEDS, outer_critic=outer_critic, true_value=true_value)
            best = {False: float("inf"), True: float("inf")}
            for measure_bias in (False, True, False, True):
                args = dataclasses.replace(base, measure_bias=measure_bias)
                ms = benchmark.time_training(module, args, NUM_SEEDS, UPDATES, REPEATS)["update_ms"]
                best[measure_bias] = min(best[measure_bias], ms)
            print(
                f"{module.__name__} | outer critic {outer_critic} | {'oracle' if true_value else 'learned critic'} | "
                f"{best[False]:.1f} ms per update, {best[True]:.1f} ms with --measure-bias "
                f"({100 * (best[True] / best[False] - 1):+.0f}%)",
                flush=True,
            )
