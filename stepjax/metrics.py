"""Classification metrics (numpy, host side) and aggregation over runs."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from stepjax import LABEL_NAMES


def confusion_matrix(labels: npt.ArrayLike, preds: npt.ArrayLike, num_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of gaits of true class i predicted as j, int64 ``(K, K)``; ``labels`` and ``preds``
    are ``(N,)`` class indices in ``[0, K)`` (``ValueError`` otherwise: numpy would count -1 as class K-1)."""
    from stepjax.data.preprocess import validate_labels

    labels = validate_labels(labels, "labels", num_classes)
    preds = validate_labels(preds, "preds", num_classes)
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and preds {preds.shape} must have the same shape")
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def classification_report(labels: npt.ArrayLike, preds: npt.ArrayLike, num_classes: int = len(LABEL_NAMES),
                          class_names: Sequence[str] = LABEL_NAMES) -> dict:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix.

    scikit-learn's conventions: balanced accuracy is the mean recall over the classes present in the labels
    (``balanced_accuracy_score``); macro-F1 the mean F1 over the classes present in the labels or the
    predictions (``f1_score(average='macro')``), so a class that is only ever predicted (false positives of a
    class absent from the test set) counts with F1 = 0. A class absent from the labels has recall NaN; a class
    absent from both gets precision = recall = F1 = NaN and is left out of both averages.
    """
    if len(class_names) < num_classes:
        raise ValueError(f"{num_classes} classes but {len(class_names)} class_names")
    labels = np.asarray(labels)
    cm = confusion_matrix(labels, preds, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1).astype(np.float64)
    predicted = cm.sum(0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        precision = np.where(predicted > 0, tp / predicted, np.where(support > 0, 0.0, np.nan))
        f1 = np.where(np.isfinite(precision) & np.isfinite(recall),
                      np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0),
                      np.where(predicted > 0, 0.0, np.nan))  # only predicted: F1 = 0 (tp = 0)
    present = support > 0
    seen = present | (predicted > 0)
    return {
        "num_gaits": int(len(labels)),
        "accuracy": float(tp.sum() / len(labels)) if len(labels) else float("nan"),  # no gaits: undefined, not 0
        "balanced_accuracy": float(np.mean(recall[present])) if present.any() else float("nan"),
        "macro_f1": float(np.mean(f1[seen])) if seen.any() else float("nan"),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(class_names[:num_classes])},
        "confusion_matrix": cm.tolist(),
    }


def format_confusion(cm: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str] = LABEL_NAMES) -> str:
    """Text confusion matrix, rows = true class, columns = predicted class."""
    cm = np.asarray(cm)
    width = max(7, max(len(n) for n in class_names) + 1)
    head = "true\\pred".ljust(width) + "".join(n[:width - 1].rjust(width) for n in class_names)
    rows = [class_names[i].ljust(width) + "".join(str(v).rjust(width) for v in row) for i, row in enumerate(cm)]
    return "\n".join([head] + rows)


SCALAR_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def format_aggregate(agg: Mapping) -> str:
    """``'accuracy 0.8125 +- 0.0312  balanced_accuracy ...'`` of an :func:`aggregate` result."""
    return "  ".join(f"{k} {agg[k]['mean']:.4f} +- {agg[k]['std']:.4f}" for k in SCALAR_METRICS)


def aggregate(reports: Sequence[Mapping]) -> dict:
    """Mean and sample std (ddof=1; NaN, ``null`` in JSON, for one run: undefined, not 0) of the scalar metrics
    over runs (seeds/folds), each run weighted equally."""
    out: dict[str, Any] = {"num_runs": len(reports)}
    for key in SCALAR_METRICS:
        values = np.array([r[key] for r in reports], np.float64)
        out[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
                    "values": values.tolist()}
    return out
