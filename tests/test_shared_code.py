"""Copies that cannot drift. The four scripts write out their algorithm in full on purpose (CleanRL
style; the run machinery is imported from common_run), so the algorithmic code they share is copied.
Here it is checked identical, compared as syntax trees (so formatting and comments may differ, code and
docstrings may not): a fix made in one copy and missed in another fails CI. MG and BMG on the same
environment share everything but the meta-loss (and BMG's own target optimiser and its meta learning rate)."""

import ast
import os

import pytest
from conftest import ROOT

SCRIPTS = ("mg_chain.py", "bmg_chain.py", "mg_snake.py", "bmg_snake.py")
# The same in all four scripts: the data structures, GAE, the policy terms, the meta-gradient's
# pull-back through the inner step, and the chunk. Nested names are make_train's own functions.
SHARED_BY_ALL = (
    "Transition", "Batch", "RunnerState", "gae", "normalize", "SCRIPT",
    "make_train.policy_terms", "make_train.inner_update_and_vjp", "make_train.train",
)  # fmt: skip
# MG and BMG on one environment: every definition except these is the same.
MG_BMG_MAY_DIFFER = ("__doc__", "Args", "make_train", "make_train.init", "make_train.meta_loss_grad")
ARGS_MAY_DIFFER = ("meta_lr",)  # BMG's meta learning rate (Snake: 6e-3 vs MG's 3e-3)


def definitions(source):
    """{name: ast.dump} of a script's module docstring, top-level functions, classes and assignments,
    make_train's nested functions ("make_train.<name>") and Args' fields ("Args.<field>")."""
    tree, found = ast.parse(source), {}
    found["__doc__"] = ast.get_docstring(tree)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found[node.name] = ast.dump(node)
            inner = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AnnAssign))]
            for child in inner:
                name = child.name if isinstance(child, ast.FunctionDef) else ast.unparse(child.target)
                found[f"{node.name}.{name}"] = ast.dump(child)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = ast.unparse(target)
                found[name] = found.get(name, "") + ast.dump(node)  # x = ...; x += ...: both count
    return found


def drift(sources):
    """The shared definitions whose copies differ, as 'name: file, file' lines; [] when none do."""
    defs = {script: definitions(source) for script, source in sources.items()}
    problems = []
    for name in SHARED_BY_ALL:
        copies = {script: d.get(name) for script, d in defs.items()}
        if None in copies.values() or len(set(copies.values())) > 1:
            problems.append(f"{name}: differs between {', '.join(sorted(copies))}")
    for mg, bmg in (("mg_chain.py", "bmg_chain.py"), ("mg_snake.py", "bmg_snake.py")):
        if mg not in defs or bmg not in defs:
            continue
        names = set(defs[mg]) | set(defs[bmg])
        allowed = set(MG_BMG_MAY_DIFFER) | {f"Args.{field}" for field in ARGS_MAY_DIFFER}
        for name in sorted(names - allowed):
            if defs[mg].get(name) != defs[bmg].get(name):
                problems.append(f"{name}: differs between {mg} and {bmg}")
    return problems


def read_sources():
    sources = {}
    for script in SCRIPTS:
        with open(os.path.join(ROOT, script)) as f:
            sources[script] = f.read()
    return sources


def test_the_shared_code_is_identical_in_the_four_scripts():
    assert drift(read_sources()) == []


def test_every_shared_name_exists_in_every_script():
    for script, source in read_sources().items():
        missing = [name for name in SHARED_BY_ALL if name not in definitions(source)]
        assert missing == [], f"{script} lacks {missing}"


@pytest.mark.parametrize(
    "script, old, new, reported",
    [
        # a fix made in one copy of the training loop only
        (
            "mg_snake.py",
            'run.check_finite(metrics["finite"], chunk)',
            "pass",
            "main: differs between mg_snake.py and bmg_snake.py",
        ),
        # GAE changed in one chain script
        ("bmg_chain.py", "delta = reward + gamma", "delta = 2 * reward + gamma", "gae: differs between"),
        # a docstring of the meta-gradient's pull-back edited alone
        ("mg_chain.py", "with the inner gradient computed once", "computing the inner gradient once",
         "make_train.inner_update_and_vjp: differs between"),
        # MG and BMG must share their inner step, even where the other environment does it differently
        ("bmg_snake.py", "optimizer.update(grads, opt_state, params)", "optimizer.update(grads, opt_state)",
         "make_train.inner_update: differs between mg_snake.py and bmg_snake.py"),
        # and their options, but for the meta learning rate
        ("bmg_chain.py", "ent_coef: float = 0.005", "ent_coef: float = 0.01",
         "Args.ent_coef: differs between mg_chain.py and bmg_chain.py"),
    ],
)  # fmt: skip
def test_a_copy_edited_alone_is_reported(script, old, new, reported):
    sources = read_sources()
    assert old in sources[script]
    sources[script] = sources[script].replace(old, new, 1)
    problems = drift(sources)
    assert any(problem.startswith(reported) for problem in problems), problems


def test_formatting_and_comments_do_not_count():
    sources = read_sources()
    old = "def gae(rewards, dones, values, gamma, lam):\n"
    sources["mg_snake.py"] = sources["mg_snake.py"].replace(old, old.replace(":\n", ":  # one line\n"))
    assert drift(sources) == []
