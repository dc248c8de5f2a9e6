"""experiments/bias_map.py and bias_map.sh: the vmapped γ0 × seed grid equals separate
runs of the script, a `train` that depends on γ0 is refused, the myopic-side threshold and the
expected bias at s0 follow the chain's true values, the figure is drawn from the CSV alone (no
JAX), bad input is one line and exit 2, and the shell script runs the commands it says."""

import dataclasses
import os
import sys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, csv_rows, run_main_in_process, run_with_stand_in_python, run_without_jax

sys.path.insert(0, os.path.join(ROOT, "experiments"))
import bias_map  # noqa: E402
import bias_map_figure  # noqa: E402
import chain_facts  # noqa: E402
import common_envs  # noqa: E402
import mg_chain  # noqa: E402

SCRIPT = os.path.join(ROOT, "experiments", "bias_map.py")


@pytest.mark.slow
def test_grid_lanes_equal_separate_runs_and_a_finished_grid_is_not_trained_again(tmp_path, capsys):
    """The γ0 × seed lanes of one jit(vmap(train)) against each γ0 run on its own, as mg_chain.py's
    main() runs it (its own make_train, seeds vmapped, chunks of --log-every). Exact: every lane
    computes the same float32 operations, only the width of the vmapped batch differs, and on the
    chain that does not change a bit (γ, π and the returns compared with ==; the outer advantage
    at s0 is a float64 mean of float32 values, printed to 9 digits)."""
    out = tmp_path / "grid"
    options = bias_map.RunArgs(
        variants=("mg",),
        mappings=(2,),
        gamma_inits=(0.93, 0.97),
        num_seeds=2,
        num_updates=20,
        log_every=10,
        first_updates=10,
        last_updates=10,
        num_envs=8,
        out_dir=str(out),
        draw=False,
    )
    bias_map.run(options)
    rows, curves = csv_rows(out / "bias_map.csv"), csv_rows(out / "bias_map_curves.csv")
    assert [(r["gamma_init"], r["seed"]) for r in rows] == [("0.93", "0"), ("0.93", "1"), ("0.97", "0"), ("0.97", "1")]
    assert len(curves) == 4 * 2 and {r["update"] for r in curves} == {"10", "20"}

    base = dataclasses.replace(mg_chain.Args(), mapping_seed=2, num_envs=8, num_updates=20, log_every=10, num_seeds=2)
    for g in (0.93, 0.97):
        init, train, _, _ = mg_chain.make_train(dataclasses.replace(base, gamma_init=g))
        runner = jax.jit(jax.vmap(init))(jnp.arange(2))
        train = jax.jit(jax.vmap(train, in_axes=(0, None)), donate_argnums=0)
        for begin in (0, 10):
            runner, metrics = train(runner, jnp.arange(begin, begin + 10))
            for seed in (0, 1):
                (row,) = [
                    r for r in curves if (float(r["gamma_init"]), int(r["seed"]), int(r["update"])) == (g, seed, begin + 10)
                ]
                for column, metric in (
                    ("gamma", "meta/gamma"),
                    ("p_chain0", "policy/p_chain0"),
                    ("p_paying", "policy/p_chain2"),
                    ("expected_return", "eval/expected_return"),
                ):
                    assert np.float32(row[column]) == metrics[metric][seed, -1], (g, seed, begin, column)
                adv = np.asarray(metrics["meta/outer_advantage_s0"][seed], np.float64).mean()
                assert float(row["adv_s0"]) == pytest.approx(adv, rel=1e-8, abs=1e-12)
        (final,) = [r for r in rows if (float(r["gamma_init"]), r["seed"]) == (g, "1")]
        assert np.float32(final["gamma_final"]) == metrics["meta/gamma"][1, -1]
        assert final["myopic"] == str(int(float(final["gamma_final"]) < chain_facts.gamma_star(2)))

    # The same options on the same directory: nothing to train, no file changes.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    bias_map.run(options)
    assert "1 of 1 blocks done" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # Other options on it: one line, exit 2, nothing changed.
    with pytest.raises(SystemExit) as stop:
        bias_map.run(dataclasses.replace(options, num_seeds=3))
    assert stop.value.code == 2 and "holds a grid with --num-seeds 2, not 3" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_stopped_grid_continues_without_duplicates(tmp_path, monkeypatch):
    """A grid stopped after block 1 and in the middle of block 2's writes: block 1 is kept as it is,
    block 2's stray rows are dropped and it is trained again (training replaced by a stand-in)."""
    trained = []

    def fake_run_block(module, base_args, gamma_inits, seeds, num_updates, log_every, on_chunk=None):
        trained.append(base_args.mapping_seed)
        shape = (len(gamma_inits) * len(seeds), num_updates // log_every)
        value = {"gamma": 0.99, "p_chain0": 0.1, "p_paying": 0.5, "expected_return": 1.05, "adv_s0": 0.0}
        return {k: np.full(shape, v + base_args.mapping_seed * 1e-3) for k, v in value.items()}, 1.0, 2.0

    monkeypatch.setattr(bias_map, "run_block", fake_run_block)
    out = tmp_path / "grid"
    options = bias_map.RunArgs(
        variants=("mg",),
        mappings=(1, 2),
        gamma_inits=(0.93, 0.97),
        num_seeds=2,
        num_updates=20,
        log_every=10,
        first_updates=10,
        last_updates=10,
        out_dir=str(out),
        draw=False,
    )
    bias_map.run(options)
    complete = {name: (out / name).read_text() for name in ("bias_map.csv", "bias_map_curves.csv")}
    for name, text in complete.items():  # as if stopped while writing block 2: some of its rows are there
        lines = text.splitlines(keepends=True)
        (out / name).write_text("".join(lines[:-2]))
    trained.clear()
    bias_map.run(options)
    assert trained == [2]
    assert {name: (out / name).read_text() for name in complete} == complete


@dataclasses.dataclass
class ToyArgs:
    gamma_init: float = 0.95
    mapping_seed: int = 1
    closed_over: str = "float"


def toy_module(train_reads_gamma_init):
    """A stand-in script whose train does (or does not) read args.gamma_init."""

    def make_train(args, all_parts=False):
        constant = jnp.full(3, args.gamma_init)  # closed over: a constant of the jaxpr, not a literal

        def init(seed):
            return jnp.asarray(args.gamma_init, jnp.float32) + 0 * seed

        def train(runner, update_indices):
            def update(x, _):
                if not train_reads_gamma_init:
                    return x * 0.5, x
                return x * (args.gamma_init if args.closed_over == "float" else jnp.sum(constant)), x

            return jax.lax.scan(update, runner, update_indices)

        return SimpleNamespace(init=init, train=train)

    return SimpleNamespace(__name__="toy", make_train=make_train)


@pytest.mark.parametrize("closed_over", ["float", "array"])
def test_a_train_that_depends_on_gamma0_is_refused(closed_over):
    with pytest.raises(ValueError, match="differs between --gamma-init 0.93 and 0.97"):
        bias_map.run_block(toy_module(True), ToyArgs(closed_over=closed_over), (0.93, 0.97), [0], 2, 2)
    runners = [
        bias_map.program_fingerprint(
            toy_module(False).make_train(ToyArgs(gamma_init=g)), jnp.full(1, g, jnp.float32), jnp.arange(2)
        )
        for g in (0.93, 0.97)
    ]
    assert bias_map.same_fingerprint(*runners)


@pytest.mark.parametrize("mapping", [1, 2, 3, 4])
def test_chain_facts_myopic_threshold_and_expected_bias_follow_the_true_values(mapping):
    """experiments/chain_facts.py (JAX-free) against common_envs' chain."""
    rewards = common_envs.chain_rewards(mapping)
    s0 = jnp.asarray(common_envs.CHAIN_S0_OBS)
    one_hot = lambda a: jax.nn.one_hot(a, 5)
    g = chain_facts.gamma_star(mapping)
    # At γ*, taking chain 0 and taking the paying chain are worth the same to the inner objective.
    v0, vm = (float(common_envs.chain_true_value(s0, one_hot(a), g, rewards)) for a in (0, mapping))
    assert v0 == pytest.approx(vm, rel=1e-5) and v0 == pytest.approx(1.0)
    for gamma in (0.91, 0.95, 0.99):
        # E_a[r_0(a) + γ′·V^{π,γ}(s1(a)) − V^{π,γ}(s0)] for the uniform π, γ′ = 1 (the biased outer advantage).
        uniform = jnp.full(5, 0.2)
        s1 = jnp.stack([jnp.arange(5.0), jnp.full(5, 1 / common_envs.CHAIN_EPISODE_LENGTH)], axis=-1)
        first_reward = jnp.where(jnp.asarray(common_envs.CHAIN_DELAYS) == 1, rewards, 0.0)
        advantage = (
            first_reward
            + common_envs.chain_true_value(s1, uniform, gamma, rewards)
            - common_envs.chain_true_value(s0, uniform, gamma, rewards)
        )
        assert chain_facts.initial_bias_s0(mapping, gamma) == pytest.approx(float(jnp.mean(advantage)), rel=1e-4)
    assert tuple(common_envs.CHAIN_DELAYS) == chain_facts.DELAYS and common_envs.CHAIN_BEST_REWARD == chain_facts.BEST


def write_grid_csv(path, gammas):
    """A made-up bias_map.csv: MG ends at the given γ per (mapping, γ0), MG + oc at 0.9999."""
    rows = []
    for variant, (script, outer_critic, label) in (
        ("mg", bias_map_figure.VARIANTS["mg"]),
        ("mg_oc", bias_map_figure.VARIANTS["mg_oc"]),
    ):
        for (mapping, g0), final in gammas.items():
            for seed in (0, 1):
                gamma = final if variant == "mg" else 0.9999
                rows.append(
                    {
                        "variant": variant,
                        "label": label,
                        "script": script,
                        "outer_critic": outer_critic,
                        "mapping_seed": mapping,
                        "delay": chain_facts.DELAYS[mapping],
                        "gamma_star": chain_facts.gamma_star(mapping),
                        "gamma_init": g0,
                        "seed": seed,
                        "updates": 100,
                        "gamma_final": gamma,
                        "p_chain0": 0.9,
                        "p_paying": 0.05,
                        "expected_return": 1.0,
                        "adv_s0_first": 0.01,
                        "adv_s0_last": 0.003,
                        "adv_s0_all": 0.005,
                        "myopic": gamma < chain_facts.gamma_star(mapping),
                        "compile_s": 1.0,
                        "train_s": 2.0,
                    }
                )
    bias_map_figure.write_rows(str(path), bias_map_figure.ROW_FIELDS, rows)


def test_the_figure_and_tables_come_from_the_csv_alone_without_jax(tmp_path):
    # Mapping 1 (γ* 0.9535): 0.95 is myopic, 0.96 is not; mapping 4 (γ* 0.9990): 0.998 is myopic.
    write_grid_csv(tmp_path / "bias_map.csv", {(1, 0.91): 0.95, (1, 0.99): 0.96, (4, 0.91): 0.90, (4, 0.99): 0.998})
    result = run_without_jax(SCRIPT, "draw", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "bias_map.png").stat().st_size > 10_000
    table = (tmp_path / "bias_map.md").read_text()
    assert table in result.stdout
    assert "Cells whose mean final γ is on the myopic side: MG: 3 of 4 cells; MG + outer critic: 0 of 4 cells." in table
    assert "| MG | 1 (3) | 0.9535 | **0.9500 / 0.05 / 2/2** | 0.9600 / 0.05 / 0/2 |" in table
    assert f"| bias at the start (expected) | 4 (100) | {chain_facts.initial_bias_s0(4, 0.91):.4f} |" in table


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            ["run", "--mappings", "0", "1"],
            "--mappings must be distinct values in 1..4 (chain 0 paying is not biased), got 0 1",
        ),
        (["run", "--gamma-inits", "0.95", "1.0"], "--gamma-inits must be distinct values in (0.9, 1.0), got 0.95 1.0"),
        (["run", "--gamma-inits", "0.95", "0.95"], "--gamma-inits must be distinct values in (0.9, 1.0), got 0.95 0.95"),
        (["run", "--variants", "mg", "mg"], "--variants must name at least one variant, each once, got mg mg"),
        (["run", "--num-seeds", "0"], "--num-seeds must be >= 1, got 0"),
        (["run", "--num-updates", "150"], "--log-every must divide --num-updates (150), got 100"),
        (["run", "--first-updates", "150"], "--first-updates must be a positive multiple of --log-every (100), got 150"),
        (["run", "--num-envs", "0"], "--num-envs must be >= 1, got 0"),
        (
            ["draw", "no/such/grid"],
            "no/such/grid/bias_map.csv does not exist: give a grid directory made by `bias_map.py run` or its bias_map.csv",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(tmp_path, arguments, message):
    result = run_main_in_process(bias_map.main, [SCRIPT, *arguments], cwd=tmp_path)
    assert (result.returncode, result.stderr, list(tmp_path.iterdir())) == (2, f"error: {message}\n", [])


def run_shell(tmp_path, *arguments, imports_ok=True):
    """(result, [argument lists of every python call]) with a stand-in `python` that trains nothing."""
    return run_with_stand_in_python(tmp_path, "bias_map.sh", *arguments, imports_ok=imports_ok)


def test_the_shell_script_runs_the_grid_then_draws_it(tmp_path):
    result, calls = run_shell(tmp_path)
    assert result.returncode == 0, result.stderr
    out = calls[1][calls[1].index("--out-dir") + 1]
    assert out.startswith("runs/bias_map_") and len(out) == len("runs/bias_map_20261201-063000")
    assert calls == [
        ["-c", "import", "jax,", "gymnax,", "matplotlib"],
        [
            "experiments/bias_map.py",
            "run",
            "--num-updates",
            "5000",
            "--num-seeds",
            "5",
            "--variants",
            "mg",
            "mg_oc",
            "--out-dir",
            out,
            "--no-draw",
        ],
        ["experiments/bias_map.py", "draw", out],
    ]
    assert f"redraw the figure from the CSV alone: python experiments/bias_map.py draw {out}" in result.stdout
    # All four variants, options passed on, and --out-dir continues a given grid.
    result, calls = run_shell(tmp_path, "200", "3", "all", "--gamma-inits", "0.93", "0.99", "--out-dir", "runs/old")
    assert result.returncode == 0, result.stderr
    assert calls[-2] == [
        "experiments/bias_map.py",
        "run",
        "--num-updates",
        "200",
        "--num-seeds",
        "3",
        "--variants",
        "mg",
        "mg_oc",
        "bmg",
        "bmg_oc",
        "--out-dir",
        "runs/old",
        "--no-draw",
        "--gamma-inits",
        "0.93",
        "0.99",
    ]
    assert calls[-1] == ["experiments/bias_map.py", "draw", "runs/old"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["5e3"], "error: NUM_UPDATES must be a positive integer, got '5e3'"),
        (["5000", "0"], "error: NUM_SEEDS must be a positive integer, got '0'"),
        (
            ["5000", "5", "mg,oc"],
            "error: VARIANTS must be comma-separated names from mg, mg_oc, bmg, bmg_oc (or all), got 'mg,oc'",
        ),
        (
            ["5000", "5", "mg,,bmg"],
            "error: VARIANTS must be comma-separated names from mg, mg_oc, bmg, bmg_oc (or all), got 'mg,,bmg'",
        ),
        (["5000", "5", "mg,mg"], "error: VARIANTS names a variant twice: 'mg,mg'"),
        (["5000", "5", "mg", "--out-dir"], "error: --out-dir needs a directory"),
    ],
)
def test_the_shell_script_stops_on_bad_arguments_before_python_runs(tmp_path, arguments, message):
    result, calls = run_shell(tmp_path, *arguments)
    assert (result.returncode, result.stderr, calls) == (2, message + "\n", [])


def test_the_shell_script_says_what_to_install(tmp_path):
    result, calls = run_shell(tmp_path, imports_ok=False)
    assert (result.returncode, result.stderr) == (
        2,
        "error: install the requirements first: pip install -r requirements.txt\n",
    )
    assert len(calls) == 1
