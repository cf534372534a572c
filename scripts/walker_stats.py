"""Compares the procedural walkers with the Bandai emotional walks and updates docs/walkers.md.

Generates walkers with their world trajectory, loads the forward (``walk``) emotion clips of the
Bandai Namco dataset-1 when present (statistics averaged over windows as long as the walkers), and
prints per-emotion mean ± std of the walking statistics of :mod:`stepjax.data.gait_stats`, the class
ordering of each statistic in both datasets, how separable the walker classes are, and the
generation speed. The same markdown replaces the block between the ``walker-stats`` markers of
``docs/walkers.md`` (the prose around it is left alone).

    python scripts/walker_stats.py                     # 2000 walkers, seed 0, ../shared Bandai data
    python scripts/walker_stats.py --no-write          # print only
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from stepjax import LABEL_NAMES
from stepjax.data.gait_stats import STAT_FORMATS, centroid_accuracy, summary_table, walking_statistics
from stepjax.data.walkers import STYLE_PARAMS, make_walkers

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BANDAI = PROJECT_ROOT.parent / "shared" / "data" / "bandai-walk"
DEFAULT_OUTPUT = PROJECT_ROOT / "docs" / "walkers.md"
BEGIN, END = "<!-- walker-stats:begin -->", "<!-- walker-stats:end -->"
FPS = 30.0
ROOT_STATS = ("speed_mps", "bounce_m")  # need the world trajectory

Stats = Mapping[str, np.ndarray]


def split_by_label(stats: Stats, labels: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Emotion name -> the statistics of the gaits with that label."""
    return {name: {k: v[labels == c] for k, v in stats.items()} for c, name in enumerate(LABEL_NAMES)}


def windows(gait: np.ndarray, length: int) -> list[np.ndarray]:
    """Non-overlapping windows ``(length, 16, 3)`` of a clip ``(T, 16, 3)``; a shorter clip is kept whole."""
    if gait.shape[0] <= length:
        return [gait]
    return [gait[s:s + length] for s in range(0, gait.shape[0] - length + 1, length)]


def bandai_clip_stats(root: Path, window: int) -> tuple[dict[str, np.ndarray], np.ndarray, int] | str:
    """Statistics of the Bandai forward walks, one value per clip: the mean over the clip's
    ``window``-frame windows (so that ranges are taken over as many frames as for the walkers and
    every take weighs the same). Returns ``(stats, labels, number of windows)``, or why not."""
    if not root.is_dir():
        return f"Bandai data not found at {root}"
    try:
        from stepjax.data.bvh import load_bandai_emotion_walks
    except ImportError as err:
        return f"stepjax.data.bvh.load_bandai_emotion_walks is not available ({err})"
    clips = [(label, gait) for name, label, gait in
             load_bandai_emotion_walks(root, target_fps=FPS, root_relative=False)
             if name.split("_")[1] == "walk"]  # content 'walk' = forward walks
    per_clip = [walking_statistics(windows(gait, window), FPS) for _, gait in clips]
    stats = {k: np.array([np.nanmean(c[k]) if np.isfinite(c[k]).any() else np.nan for c in per_clip])
             for k in per_clip[0]}
    num_windows = sum(len(c["speed_mps"]) for c in per_clip)
    return stats, np.array([label for label, _ in clips]), num_windows


def class_order(by_label: Mapping[str, Stats], stat: str) -> list[str]:
    """Emotion names sorted by the mean of ``stat`` (NaNs ignored), lowest first."""
    means = {name: np.nanmean(s[stat]) if np.isfinite(s[stat]).any() else np.nan
             for name, s in by_label.items()}
    return sorted(means, key=lambda name: means[name])


def pair_agreement(a: Sequence[str], b: Sequence[str]) -> tuple[int, int]:
    """How many class pairs two orderings put the same way round, out of how many."""
    rank_a, rank_b = {c: i for i, c in enumerate(a)}, {c: i for i, c in enumerate(b)}
    pairs = [(x, y) for i, x in enumerate(a) for y in a[i + 1:]]
    same = sum((rank_a[x] < rank_a[y]) == (rank_b[x] < rank_b[y]) for x, y in pairs)
    return same, len(pairs)


def ordering_table(walkers: Mapping[str, Stats], bandai: Mapping[str, Stats] | None) -> str:
    """Markdown table of the class ordering (lowest to highest mean) of each statistic."""
    lines = ["| statistic | walkers (low → high) | Bandai (low → high) | class pairs in the same order |",
             "|---|---|---|---|"]
    for stat, (header, _) in STAT_FORMATS.items():
        w = class_order(walkers, stat)
        b = class_order(bandai, stat) if bandai else None
        agree = "n/a" if b is None else "{} / {}".format(*pair_agreement(w, b))
        lines.append(f"| {header} | {' < '.join(w)} | {' < '.join(b) if b else 'n/a'} | {agree} |")
    return "\n".join(lines) + "\n"


def parameter_table() -> str:
    """Markdown table of :data:`STYLE_PARAMS`: class means and the within-class spread."""
    lines = ["| parameter | " + " | ".join(LABEL_NAMES) + " | spread per gait / per subject (std) |",
             "|---|" + "---|" * len(LABEL_NAMES) + "---|"]
    for name, p in STYLE_PARAMS.items():
        means = " | ".join(f"{m:g}" for m in p.means)
        spread = (f"×exp(N(0, {p.gait_std:g}²)) / ×exp(N(0, {p.subject_std:g}²))" if p.relative
                  else f"{p.gait_std:g} / {p.subject_std:g}")
        lines.append(f"| `{name}` | {means} | {spread} |")
    return "\n".join(lines) + "\n"


def separability(num_gaits: int, seed: int, difficulties: Sequence[float]) -> str:
    """Markdown table: nearest-centroid accuracy on the statistics, split by subject (even ids train)."""
    lines = ["| difficulty | all statistics | without speed and bounce (root-relative) |", "|---|---|---|"]
    for difficulty in difficulties:
        data = make_walkers(num_gaits, seed, root_relative=False, difficulty=difficulty)
        stats = walking_statistics(data.gaits, data.fps)
        train = data.subjects % 2 == 0
        no_root = [k for k in stats if k not in ROOT_STATS]
        lines.append(f"| {difficulty:g} | {centroid_accuracy(stats, data.labels, train):.1%} | "
                     f"{centroid_accuracy(stats, data.labels, train, no_root):.1%} |")
    return "\n".join(lines) + "\n"


def generation_speed(num_gaits: int = 4000, num_frames: int = 75, repeats: int = 3) -> str:
    """One line: best wall-clock and CPU time of ``make_walkers`` over ``repeats`` runs."""
    make_walkers(16, 0)  # warm-up
    best_wall = best_cpu = np.inf
    for r in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        make_walkers(num_gaits, r, num_frames=num_frames, root_relative=False)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"`make_walkers({num_gaits}, seed, num_frames={num_frames})`: best of {repeats} runs "
            f"{best_wall:.2f} s wall-clock, {best_cpu:.2f} s CPU ({num_gaits / best_cpu:,.0f} gaits per "
            f"CPU-second; CPU time is summed over numpy's threads, so it exceeds the wall-clock time where numpy "
            f"uses several of the {os.cpu_count()} cores, and the wall-clock time grows when the machine is "
            f"shared: load average {load:.1f} during the run).")


def report(num_gaits: int, seed: int, bandai_dir: Path, window: int) -> str:
    """The generated markdown block (without the markers)."""
    data = make_walkers(num_gaits, seed, num_frames=window, fps=FPS, root_relative=False)
    walkers = split_by_label(walking_statistics(data.gaits, FPS), data.labels)
    bandai = bandai_clip_stats(bandai_dir, window)
    rows: dict[str, Stats] = {}
    bandai_by_label = None
    if isinstance(bandai, str):
        note = f"Bandai comparison skipped: {bandai}."
    else:
        stats, labels, num_windows = bandai
        bandai_by_label = split_by_label(stats, labels)
        note = (f"Bandai: the {len(labels)} forward `walk` clips of angry / normal / happy / sad (2 takes "
                f"each, one actor); each clip's value is the mean over its non-overlapping {window}-frame "
                f"windows ({num_windows} windows in all; the 31-frame `walk_normal_002` loop is one short "
                f"window), so n counts clips and the Bandai std is the spread between 2 takes.")
    for name in LABEL_NAMES:
        rows[f"{name}, walkers"] = walkers[name]
        if bandai_by_label is not None:
            rows[f"{name}, Bandai"] = bandai_by_label[name]
    command = (f"python scripts/walker_stats.py --num-gaits {num_gaits} --seed {seed} "
               f"--window {window}")
    return "\n".join([
        f"Generated by `{command}` (walkers: `make_walkers({num_gaits}, seed={seed}, "
        f"num_frames={window}, root_relative=False)`, {window / FPS:.1f} s windows at {FPS:g} fps). {note}",
        "",
        "Style parameters (`stepjax.data.walkers.STYLE_PARAMS`; class means, then the spread at "
        "`difficulty=1`, which scales it):",
        "",
        parameter_table(),
        "Walking statistics (`stepjax.data.gait_stats.walking_statistics`), mean ± std per emotion:",
        "",
        summary_table(rows),
        "Class ordering of the means:",
        "",
        ordering_table(walkers, bandai_by_label),
        "How separable the walker classes are from these statistics alone (nearest class centroid on "
        "standardised statistics, 2000 walkers, trained on even subject ids, tested on odd ones):",
        "",
        separability(2000, seed, (0.5, 1.0, 2.0)),
        "Generation speed: " + generation_speed(),
    ])


def write_block(path: Path, block: str) -> None:
    """Replaces the text between the markers in ``path`` (appends the markers if absent)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Procedural walkers\n\n"
    section = f"{BEGIN}\n{block.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-gaits", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, default=75, help="frames per walker / Bandai window")
    parser.add_argument("--bandai", type=Path, default=DEFAULT_BANDAI, help="Bandai dataset folder")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    block = report(args.num_gaits, args.seed, args.bandai, args.window)
    print(block)
    if not args.no_write:
        write_block(args.output, block)
        print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
