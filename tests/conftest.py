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
