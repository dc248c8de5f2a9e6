"""experiments/minatar.sh: one game's four arms, as the commands paper_budget.sh starts (a stand-in `python`
records them), continued rather than started again by a second call; a bad game stops it before anything."""

from conftest import run_with_stand_in_python


def test_the_four_arms_of_a_game_are_started_once(tmp_path):
    runs = tmp_path / "runs"
    result, calls = run_with_stand_in_python(tmp_path, "minatar.sh", "Freeway", str(runs), env={"SEEDS": "3"})
    assert result.returncode == 0, result.stderr
    trained = [call for call in calls if call[0] == "mg_snake.py"]
    assert [call[call.index("--exp-name") + 1] for call in trained] == ["mg", "mg_oc", "a2c_g0.8", "a2c_g0.99"]
    for call in trained:
        value = dict(zip(call[1:], call[2:])).get  # the word after a flag
        assert value("--env-id") == "Freeway-MinAtar" and value("--seed") == "0" and value("--num-seeds") == "3"
        assert value("--runs-dir") == str(runs / f"{value('--exp-name')}_s0")
        if value("--exp-name").startswith("a2c"):
            assert value("--meta-lr") == "0" and value("--gamma-init") == value("--exp-name")[len("a2c_g") :]
    assert "--outer-critic" in trained[1] and "--outer-critic" not in trained[0]
    # The arms differ in their variant alone: every other option (budget, environments, entropy, ...) is the same.
    variant = ("--exp-name", "--meta-lr", "--gamma-init", "--runs-dir", "--outer-critic")
    shared = [[(flag, value) for flag, value in zip(call[1:], call[2:]) if flag.startswith("--")] for call in trained]
    shared = [[(flag, value) for flag, value in flags if flag not in variant] for flags in shared]
    assert shared[0] and all(flags == shared[0] for flags in shared)
    # The stand-in finished every run: a second call with the same arguments starts none.
    result, calls = run_with_stand_in_python(tmp_path, "minatar.sh", "Freeway", str(runs), env={"SEEDS": "3"})
    assert result.returncode == 0, result.stderr
    assert not [call for call in calls if call[0] == "mg_snake.py"]


def test_a_game_that_is_not_minatar_is_one_line_and_exit_2(tmp_path):
    result, calls = run_with_stand_in_python(tmp_path, "minatar.sh", "Pong", str(tmp_path / "runs"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: GAME must be") and result.stderr.count("\n") == 1
    assert calls == [] and not (tmp_path / "runs").exists()
