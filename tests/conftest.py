import os
import sys
import tempfile

import jax  # noqa: F401  (imported before the cache is set: this process compiles its own functions once anyway)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Tests that run the scripts start many processes with the same few configurations: a persistent
# compilation cache, inherited by every subprocess, lets each configuration compile once per test
# session. The numbers do not change: the same executable is loaded instead of rebuilt.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jax_cache_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
SUBPROCESS_ENV = dict(os.environ)


def run_with_stand_in_python(tmp_path, shell_script, *arguments, imports_ok=True, cwd=None):
    """Runs experiments/<shell_script> with a stand-in `python` on PATH that trains nothing and records
    its arguments (its import check fails if not imports_ok): (result, [argument lists of every call])."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "python"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$PYTHON_LOG"\n[[ $1 == -c ]] && exit "$IMPORT_RC"\nexit 0\n')
    fake.chmod(0o755)
    log = tmp_path / "python.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON_LOG": str(log)}
    env["IMPORT_RC"] = "0" if imports_ok else "1"
    command = ["bash", os.path.join(ROOT, "experiments", shell_script), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env, cwd=cwd)
    return result, [line.split() for line in log.read_text().splitlines()]
