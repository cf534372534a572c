"""Small process-level helpers: the command-line entry points' compilation cache and error reporting, strict
JSON output, argument checks."""

from __future__ import annotations

import contextlib
import json
import math
import operator
import os
import sys
from typing import Any, Iterator


def is_integer(value: Any) -> bool:
    """Whether ``value`` is one integer (a Python or numpy integer, a concrete 0-d JAX integer array), not a bool:
    what a count, a length or a seed must be (``2.5`` or ``True`` would be silently truncated or mistaken)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def check_real_dtype(x: Any, name: str) -> None:
    """``ValueError`` unless ``x`` (an array or nested lists) holds real numbers, floating or integer: a bool,
    complex, object or string array would be cast to float silently and give confident nonsense."""
    import numpy as np

    dtype = np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype
    if dtype.kind in "fiu" or dtype.name.startswith(("bfloat", "float")):  # ml_dtypes' bfloat16 is kind 'V'
        return
    raise ValueError(f"{name} must hold real numbers (coordinates in metres), got dtype {dtype}")


def strict_json(obj: Any) -> Any:
    """``obj`` with every NaN / inf float replaced by ``None`` (JSON ``null``; Python's ``json`` would write the
    non-standard ``NaN`` that strict parsers reject), numpy scalars and arrays as Python values."""
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy / jax arrays and scalars
        return strict_json(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def absl_flags_parser(prog: str):
    """``app.run(main, flags_parser=absl_flags_parser(prog))``: a flag mistake (a missing required flag, a value
    of the wrong type) is reported as ``<prog>: error: <message>`` with exit status 2, like the other user
    mistakes (:func:`cli_errors`), instead of absl's ``FATAL Flags parsing error`` with status 1;
    ``STEPJAX_TRACEBACK=1`` lets the exception through."""

    def parse(argv: list[str]) -> list[str]:
        from absl import flags

        try:  # --flagfile contents count too
            expanded = flags.FLAGS.read_flags_from_files(argv, force_gnu=False)
        except flags.Error:
            expanded = argv  # absl reports the bad flagfile below
        overrides = [a.split("=", 1)[0].lstrip("-") for a in expanded[1:] if a.startswith(("--config.", "-config."))]
        repeated = sorted({k for k in overrides if overrides.count(k) > 1})
        if repeated:  # ml_collections would concatenate tuple values: (8, 8, 8) then (4, 4, 4) gave six channels
            print(f"{prog}: error: --{repeated[0]} is given more than once; give each --config.* key once",
                  file=sys.stderr)
            sys.exit(2)
        try:
            return flags.FLAGS(argv)
        except flags.Error as err:
            if os.environ.get("STEPJAX_TRACEBACK"):
                raise
            print(f"{prog}: error: {err} (--helpshort lists the flags)", file=sys.stderr)
            sys.exit(2)
        except (ImportError, SyntaxError) as err:  # a --config file that does not load
            if os.environ.get("STEPJAX_TRACEBACK"):
                raise
            missing_common = isinstance(err, ModuleNotFoundError) and err.name == "common"
            hint = (" (a config outside configs/ reaches configs/common.py by putting that folder on sys.path: "
                    "see the README's Training section)" if missing_common else "")
            print(f"{prog}: error: the config file does not load: {type(err).__name__}: {err}{hint}\n"
                  "(STEPJAX_TRACEBACK=1 shows the traceback)", file=sys.stderr)
            sys.exit(2)

    return parse


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Writes ``strict_json(obj)`` to ``path`` (standard JSON: undefined metrics are ``null``)."""
    with open(path, "w") as f:
        json.dump(strict_json(obj), f, indent=indent, allow_nan=False)


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


def check_output_dir(path: str | os.PathLike | None) -> None:
    """For command-line outputs: ``FileNotFoundError`` now, before any work, when ``path``'s folder is missing
    (``IsADirectoryError`` when ``path`` is a folder)."""
    if path and os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name")
    if path:
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"cannot write {path}: no such folder {folder}")


@contextlib.contextmanager
def cli_errors(prog: str) -> Iterator[None]:
    """For command-line entry points: a user mistake (``ValueError`` and its subclasses such as a config
    mismatch or a malformed HDF5 file, ``OSError`` such as a missing file, a busy workdir) ends the process
    with ``<prog>: error: <message>`` on stderr and exit status 2 instead of a traceback. Set
    ``STEPJAX_TRACEBACK=1`` for the traceback (e.g. when reporting a bug). Other exceptions pass through."""
    from stepjax.training.checkpoint import WorkdirBusyError

    try:
        yield
    except (ValueError, OSError, WorkdirBusyError) as err:
        if os.environ.get("STEPJAX_TRACEBACK"):
            raise
        print(f"{prog}: error: {err}\n(STEPJAX_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(2) from None
