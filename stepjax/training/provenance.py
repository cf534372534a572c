"""What a run was trained with: software versions, code commit, devices; one JSON line per start or resume.

``<workdir>/provenance.jsonl`` gets a record each time a training loop starts or resumes in that workdir
(:func:`append`), so a checkpoint quoted in a paper names the code and libraries that produced it and a run
resumed under other software says so. A record::

    {"event": "start" | "resume", "epoch": 0, "time_utc": "2026-12-05T16:40:00+00:00",
     "stepjax": "0.1.0", "git_commit": "7f4ae93...", "code_diff": null, "python": "3.11.7",
     "packages": {"jax": "0.10.2", "jaxlib": "0.10.2", "flax": ..., ...},
     "backend": "cpu", "devices": "1 x cpu", "cpus": 2, "jax_prng": "threefry2x32, partitionable",
     "xla_flags": null, "argv": ["train.py", "--config", ...]}

``git_commit`` is ``null`` where stepjax is not imported from a git checkout (an installed wheel) or git is
missing; ``code_diff`` is ``null`` where the package's code is that commit's, else a digest of the difference
(:func:`git_state`). ``cpus``: the CPUs the process may use (XLA:CPU splits reductions by thread count, so
one core and two round differently); ``jax_prng``: jax's random-number implementation and whether threefry is
partitionable (``JAX_THREEFRY_PARTITIONABLE``), which decide every random draw of a seed. Reports and the
resume check read the record of the run's start (:func:`run_start`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

PROVENANCE_FILE = "provenance.jsonl"
#: The libraries whose versions a run records (and compares on resume): the ones that shape the numbers.
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "numpy", "ml_collections", "h5py")
#: The keys of a record that name the software (compared on resume); the rest describe the machine and call.
SOFTWARE_KEYS = ("stepjax", "git_commit", "code_diff", "python", "packages")
#: The keys of the machine and environment that change a run's numbers (also compared on resume).
SETUP_KEYS = ("backend", "devices", "cpus", "jax_prng", "xla_flags")


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


#: The part of a checkout whose changes count as "modified code" (configs are recorded in config.json).
CODE_PATHS = ("stepjax",)


def _git(root: Path, *args: str) -> bytes | None:
    """``git -C root args`` output, or ``None`` when git or the repository is missing. Started with posix_spawn
    (absolute executable, ``close_fds=False``), not fork: JAX's process is multithreaded; without optional
    locks, so that it never holds ``index.lock`` while the user runs git."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run([git, "--no-optional-locks", "-C", str(root), *args], capture_output=True,
                             timeout=10, close_fds=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(root: str | os.PathLike | None = None) -> tuple[str | None, str | None]:
    """``(commit, code_diff)`` of the git checkout stepjax is imported from (``root``: another checkout), or
    ``(None, None)`` when it is not one. ``code_diff``: ``None`` where the package's code (:data:`CODE_PATHS`)
    is the commit's, else a SHA-256 (hex, 16 digits) of its difference from the commit, untracked files under
    it included: two runs with the same commit and digest ran the same code."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # an installed copy: no checkout of its own (and not a parent's)
        return None, None
    commit = _git(root, "rev-parse", "HEAD")
    diff = _git(root, "diff", "HEAD", "--binary", "--", *CODE_PATHS)
    untracked = _git(root, "ls-files", "-z", "--others", "--exclude-standard", "--", *CODE_PATHS)
    if commit is None or diff is None or untracked is None:
        return None, None
    digest = hashlib.sha256(diff)
    for name in sorted(n for n in untracked.split(b"\0") if n):
        digest.update(b"\0" + name + b"\0")
        try:
            digest.update((root / os.fsdecode(name)).read_bytes())
        except OSError:
            pass
    modified = bool(diff) or bool(untracked.strip(b"\0"))
    return commit.decode().strip(), (digest.hexdigest()[:16] if modified else None)


def current(event: str, epoch: int | None = None) -> dict:
    """The record of this process now (see the module docstring); ``event``: ``'start'`` or ``'resume'``."""
    import jax

    import stepjax

    commit, code_diff = git_state()
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    config: Any = jax.config  # its flags are not in jax's type hints
    return {
        "event": event, "epoch": epoch,
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "stepjax": stepjax.__version__, "git_commit": commit, "code_diff": code_diff,
        "python": platform.python_version(), "packages": _package_versions(),
        "backend": jax.default_backend(), "devices": f"{len(devices)} x {', '.join(kinds)}",
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        # (jax.config's flags are attributes made at run time: unknown to its type annotations)
        "jax_prng": f"{config.jax_default_prng_impl}, "
                    f"{'partitionable' if config.jax_threefry_partitionable else 'not partitionable'}",
        "xla_flags": os.environ.get("XLA_FLAGS"), "argv": list(sys.argv),
    }


def run_start(workdir: str | os.PathLike) -> dict | None:
    """The record of the start of the run now in ``workdir``: the last ``'start'`` (a start in a workdir that has
    no checkpoint yet, e.g. after a crash before the first one, or a vmapped protocol run again, begins a new
    run), ``None`` for a run from before runs recorded one."""
    return next((r for r in reversed(read(workdir)) if r.get("event") == "start"), None)


def read(workdir: str | os.PathLike) -> list[dict]:
    """The records of ``workdir``, oldest first; ``[]`` for a run from before runs recorded them. A line cut off
    by a crash is skipped."""
    path = os.path.join(workdir, PROVENANCE_FILE)
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return [r for r in records if isinstance(r, dict)]


def software_changes(old: dict, new: dict) -> list[str]:
    """What differs between the software of two records, e.g. ``['jax 0.10.2 -> 0.11.0']``."""
    def software(record: dict) -> dict:  # SOFTWARE_KEYS with the package versions flattened in
        return {**{k: record.get(k) for k in SOFTWARE_KEYS if k != "packages"}, **(record.get("packages") or {})}

    flat_old, flat_new = software(old), software(new)
    return [f"{k} {flat_old.get(k)} -> {flat_new.get(k)}" for k in sorted(set(flat_old) | set(flat_new))
            if flat_old.get(k) != flat_new.get(k)]


def setup_changes(old: dict, new: dict) -> list[str]:
    """What differs between the machine and environment of two records (:data:`SETUP_KEYS`), e.g.
    ``['cpus 2 -> 1']``; keys an older record lacks are not compared."""
    return [f"{k} {old[k]} -> {new.get(k)}" for k in SETUP_KEYS if k in old and old[k] != new.get(k)]


def append(workdir: str | os.PathLike, event: str, epoch: int | None = None, log: Callable = print) -> dict:
    """Appends this process's record to ``<workdir>/provenance.jsonl`` and returns it. On ``'resume'``, where the
    software, the devices, the CPU count, jax's random-number setup or XLA_FLAGS differ from the run's start
    (:func:`run_start`), ``log`` says so: the continued run can then differ from an uninterrupted one by more
    than float32 rounding."""
    if event not in ("start", "resume"):
        raise ValueError(f"event must be 'start' or 'resume', got {event!r}")
    record = current(event, epoch)
    start = run_start(workdir)
    if event == "resume" and start is not None:
        software, setup = software_changes(start, record), setup_changes(start, record)
        if software or setup:
            what = " and ".join(w for w, c in (("software", software), ("machine setup", setup)) if c)
            log(f"Note: {workdir} was started with other {what} ({'; '.join(software + setup)}); its numbers may "
                "differ from an uninterrupted run's by more than float32 rounding.")
    path = os.path.join(workdir, PROVENANCE_FILE)
    with open(path, "a+b") as f:
        cut_off = False  # a crash mid-line left the last line without its newline
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            cut_off = f.read(1) != b"\n"
        f.write((("\n" if cut_off else "") + json.dumps(record) + "\n").encode())
    return record


def summary(record: dict | None) -> str:
    """One line for reports, e.g. ``'stepjax 0.1.0 (git 7f4ae93 + changes 3f2a...), jax 0.10.2, on 1 x cpu'``;
    ``'unrecorded'`` for ``None`` (a run from before runs recorded it)."""
    if not record:
        return "unrecorded"
    commit, diff = record.get("git_commit"), record.get("code_diff")
    git = f" (git {commit[:7]}{f' + changes {diff[:8]}' if diff else ''})" if commit else ""
    jax_version = (record.get("packages") or {}).get("jax")
    return f"stepjax {record.get('stepjax')}{git}, jax {jax_version}, on {record.get('devices')}"
