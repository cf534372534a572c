"""Plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from stepjax import LABEL_NAMES


def check_image_path(path: str, name: str = "path") -> None:
    """``ValueError`` unless matplotlib can write ``path``'s extension (checked before the work that makes the
    figure, not after it)."""
    from matplotlib.figure import Figure

    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    formats = Figure().canvas.get_supported_filetypes()
    if ext and ext not in formats:  # no extension: matplotlib writes its default, png
        raise ValueError(f"{name} {path}: matplotlib cannot write {ext!r}; name it "
                         f"*.png (or one of {', '.join(sorted(formats))})")


def plot_confusion(cm, path: str, class_names: Sequence[str] = LABEL_NAMES, title: str = "") -> None:
    """Saves a confusion matrix (rows = true, columns = predicted; counts and row-normalised colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=120)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


#: Generator loss components (``metrics.jsonl`` keys without the ``train_`` / ``val_`` prefix), one panel each.
GENERATOR_CURVES = ("rec", "collapse", "vel", "acc", "drift", "kl", "total")


def plot_loss_curves(records: Sequence[dict], path: str, components: Sequence[str] = GENERATOR_CURVES,
                     title: str = "") -> None:
    """Saves per-epoch train / validation curves of loss components (e.g. a generator's reconstruction,
    push = collapse (velocity, acceleration), pull = drift, KL) from ``metrics.jsonl`` records; log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [c for c in components if any(f"{split}_{c}" in r for r in records for split in ("train", "val"))]
    if not present:
        raise ValueError(f"no loss components {tuple(components)} in the metrics records")
    cols = min(4, len(present))
    rows = -(-len(present) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), dpi=110, squeeze=False)
    for ax, comp in zip(axes.flat, present):
        for split, style in (("train", "-"), ("val", "--")):
            pts = [(r["epoch"], r[f"{split}_{comp}"]) for r in records if f"{split}_{comp}" in r]
            if pts:
                ax.plot(*zip(*pts), style, label=split)
        ax.set_title(comp)
        ax.set_xlabel("epoch")
        if all(r.get(f"{s}_{comp}", 1.0) > 0 for r in records for s in ("train", "val")):
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
