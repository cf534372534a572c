"""Generator metrics on classifier features: FID, diversity, multimodality, recognition accuracy.

The paper reports FID (STEP-Gen 11.11 vs Baseline-CVAE 11.33, STEP_REFERENCE 8) without saying which
feature extractor it used, and the official repository has no FID code. Here, as in Action2Motion /
ACTOR for action-conditioned motion generation, every metric is computed on the **penultimate (pooled
deep) features of a trained gait classifier**, by default a **Baseline-STEP** (ST-GCN on deep features
only, ``configs/baseline_step.py``) trained on the *same real training split* as the generator:

* it sees only gait coordinates (the STEP hybrid would mix in 29 hand-crafted affective features, which
  are not learned features and can be computed from the gaits directly);
* its pooled 64-d ST-GCN feature is exactly the "deep feature" of the paper (``save_best_feature``);
* training it on the generator's training split keeps the held-out real test split unseen by both.

Metrics (host numpy, float64):

* :func:`fid`: Frechet distance between Gaussians fitted to two feature sets,
  ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``. The matrix square roots use symmetric
  eigendecompositions with negative eigenvalues (round-off) clipped, which is stable for the
  rank-deficient covariances of small sets (``scipy.linalg.sqrtm`` of the non-symmetric ``S1 S2`` can
  return complex parts there).
* :func:`diversity` (Action2Motion): mean Euclidean distance between ``S_d`` (200) random pairs of
  feature vectors over the whole set, regardless of class.
* :func:`multimodality`: mean distance between ``S_l`` (20) random pairs drawn *within* each class,
  averaged over classes.
* recognition accuracy: accuracy of the classifier on generated gaits w.r.t. the conditioning labels.
* :func:`motion_statistics`: how much the root-relative pose moves (mean joint speed per frame, and the
  standard deviation of joint positions over time); a decoder that outputs one static pose scores 0
  (cf. the "dragging legs" of issue #7). Feature-free, in the gaits' own units.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, cast

import numpy as np

from stepjax import LABEL_NAMES
from stepjax.data.preprocess import validate_labels
from stepjax.utils import is_integer


def _features(features, min_count: int = 2) -> np.ndarray:
    """Features ``(N >= min_count, D)`` as float64; ``ValueError`` for another shape or NaN/inf (which would end
    in a LinAlgError or a NaN metric)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < min_count:
        raise ValueError(f"need features (N >= {min_count}, D), got {f.shape}")
    bad = np.flatnonzero(~np.all(np.isfinite(f), axis=1))
    if bad.size:
        raise ValueError(f"features of {bad.size} of {len(f)} samples are NaN/inf (first rows {bad[:5].tolist()})")
    return f


def _pairs(num_pairs) -> int:
    if not is_integer(num_pairs) or num_pairs < 1:
        raise ValueError(f"num_pairs must be an integer >= 1, got {num_pairs!r}")
    return int(num_pairs)


def _labels_of(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"need one label per feature vector: {n} features, labels of shape {labels.shape}")
    return validate_labels(labels, "labels")


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, rowvar=False) of features ``(N, D)``, float64."""
    f = _features(features)
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet (2-Wasserstein) distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``tr(sqrt(S1 S2))`` is computed as ``tr(sqrt(R S2 R))`` with ``R = S1^1/2`` (similar matrices), which is
    symmetric PSD, so both roots are eigendecompositions of symmetric matrices.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    r = _psd_sqrt(s1)
    w = np.linalg.eigvalsh((r @ s2 @ r + (r @ s2 @ r).T) / 2)
    tr_covmean = np.sqrt(np.clip(w, 0.0, None)).sum()
    d = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(d, 0.0)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets ``(N_a, D)``, ``(N_b, D)``."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def diversity(features: np.ndarray, num_pairs: int = 200, seed: int = 0) -> float:
    """Action2Motion diversity: mean ``||f_i - f_j||`` over ``num_pairs`` (S_d) random index pairs
    (two independent random subsets of size S_d, paired by position)."""
    f, num_pairs = _features(features), _pairs(num_pairs)
    rng = np.random.default_rng(seed)
    i = rng.choice(len(f), num_pairs, replace=num_pairs > len(f))
    j = rng.choice(len(f), num_pairs, replace=num_pairs > len(f))
    return float(np.linalg.norm(f[i] - f[j], axis=1).mean())


def multimodality(features: np.ndarray, labels: np.ndarray, num_pairs: int = 20, seed: int = 0) -> float:
    """Action2Motion multimodality: for each class, mean ``||f_i - f_j||`` over ``num_pairs`` (S_l)
    random pairs within the class; averaged over the classes that have at least 2 samples."""
    f, num_pairs = _features(features, 1), _pairs(num_pairs)
    labels = _labels_of(labels, len(f))
    rng = np.random.default_rng(seed)
    per_class = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        i = rng.choice(idx, num_pairs, replace=num_pairs > len(idx))
        j = rng.choice(idx, num_pairs, replace=num_pairs > len(idx))
        per_class.append(np.linalg.norm(f[i] - f[j], axis=1).mean())
    if not per_class:
        raise ValueError("multimodality needs a class with at least 2 samples")
    return float(np.mean(per_class))


def motion_statistics(gaits: np.ndarray, lengths: np.ndarray | None = None) -> dict:
    """Motion of gaits ``(N, T, 16, 3)`` relative to their root joint (joint 0; it is included in the means
    over joints, where it contributes 0, for real and generated sets alike):

    * ``joint_speed``: mean ``||x[t+1] - x[t]||`` over all real frame pairs of all gaits and the joints (units
      per frame; pooled: a gait weighs by its number of frame pairs);
    * ``pose_std``: mean over gaits, joints and coords of the (population) std over each gait's real frames
      (every gait weighs the same).

    ``lengths`` (N,): only each gait's first ``lengths`` frames count (real gaits tiled to T frames, e.g.
    ``RawDataset.lengths``: the jump at the tiling seam is not motion); ``None``: every frame is real.
    """
    g = np.asarray(gaits, np.float64)
    if g.ndim != 4 or g.shape[-2:] != (16, 3):
        raise ValueError(f"gaits must be (N, T, 16, 3), got {g.shape}")
    g = g - g[..., :1, :]  # root-relative (joint 0 is the root)
    n, t = g.shape[:2]
    lengths = np.full(n, t) if lengths is None else np.asarray(lengths)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer) or np.any((lengths < 1) | (lengths > t)):
        raise ValueError(f"lengths must be {n} integers in [1, {t}], got {lengths!r}")
    real = np.arange(t) < lengths[:, None]  # (N, T)
    pairs = real[:, 1:]  # frame t+1 real implies frame t real
    speeds = np.linalg.norm(np.diff(g, axis=1), axis=-1)  # (N, T-1, V)
    speed = (speeds * pairs[..., None]).sum() / (pairs.sum() * g.shape[2]) if pairs.any() else 0.0
    w = real[..., None, None]
    mean = (g * w).sum(1) / lengths[:, None, None]
    std = np.sqrt((((g - mean[:, None]) ** 2) * w).sum(1) / lengths[:, None, None])
    return {"joint_speed": float(speed), "pose_std": float(std.mean())}


def classifier_outputs(predict_fn: Callable, variables, gaits: np.ndarray, chunk: int = 512,
                       lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(features (N, D), logits (N, K))`` of raw gaits through a classifier ``predict_fn``
    (:func:`stepjax.inference.make_predict_fn`; its own preprocessing is applied), jitted, in chunks.
    ``lengths``: real frames per gait (``RawDataset.lengths``), ``None`` when all are real. ``ValueError`` on
    non-finite logits (a NaN gait would count as a recognised class 0)."""
    from stepjax.inference import predict_in_chunks

    out = predict_in_chunks(predict_fn, variables, gaits, chunk, lengths)
    return cast(np.ndarray, out.features), cast(np.ndarray, out.logits)  # numpy: predict_in_chunks' host results


def set_metrics(features: np.ndarray, labels: np.ndarray, logits: np.ndarray | None = None,
                diversity_pairs: int = 200, multimodality_pairs: int = 20, seed: int = 0) -> dict:
    """Diversity, multimodality and (with ``logits``) recognition accuracy of one labelled set. Multimodality is
    NaN (with a warning) when no class has 2 samples (e.g. a tiny real test split), not an error that would lose
    the other metrics."""
    labels = _labels_of(labels, len(_features(features, 1)))
    if np.bincount(labels).max() >= 2:
        multi = multimodality(features, labels, multimodality_pairs, seed)
    else:
        warnings.warn(f"multimodality of a set of {len(labels)} gaits with no class of 2 is undefined: NaN",
                      stacklevel=2)
        multi = float("nan")
    out: dict[str, Any] = {"num_gaits": int(len(labels)), "diversity": diversity(features, diversity_pairs, seed),
                           "multimodality": multi}
    if logits is not None:
        preds, labels = np.asarray(logits).argmax(-1), np.asarray(labels)
        out["recognition_accuracy"] = float(np.mean(preds == labels))
        out["recognition_per_class"] = {LABEL_NAMES[c]: float(np.mean(preds[labels == c] == c))
                                        for c in np.unique(labels)}
    return out
