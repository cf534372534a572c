"""Small process-level helpers for the command-line entry points."""

from __future__ import annotations

import os


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Turns on JAX's persistent compilation cache (entry points only; the library never does this).

    Re-running a command (resume, eval, another seed) then loads compiled XLA code instead of
    recompiling: on a 2-core CPU that saves 10-30 s per process. ``STEPJAX_JAX_CACHE`` overrides the
    default ``~/.cache/stepjax/xla``; set it to an empty string to disable.
    """
    import jax

    path = os.environ.get("STEPJAX_JAX_CACHE", path or os.path.join(os.path.expanduser("~"), ".cache", "stepjax", "xla"))
    if not path:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path
