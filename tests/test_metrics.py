"""Classification metrics (stepjax.metrics) against per-gait loops, and their refusals."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stepjax.metrics import aggregate, classification_report, confusion_matrix

K = 4
pairs = st.lists(st.tuples(st.integers(0, K - 1), st.integers(0, K - 1)), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_report_matches_per_class_loops(pairs):
    labels, preds = map(np.array, zip(*pairs))
    report = classification_report(labels, preds, K)
    cm = np.zeros((K, K), int)
    for y, p in pairs:
        cm[y, p] += 1
    assert report["confusion_matrix"] == cm.tolist()
    recalls, f1s = [], []
    for c, name in enumerate(("Angry", "Neutral", "Happy", "Sad")):
        tp = sum(y == c and p == c for y, p in pairs)
        support = sum(y == c for y, _ in pairs)
        predicted = sum(p == c for _, p in pairs)
        got = report["per_class"][name]
        assert got["support"] == support
        if support == 0:  # absent from the labels: recall undefined; only predicted: F1 0 in the macro-F1
            assert np.isnan(got["recall"]) and (predicted > 0 or np.isnan(got["precision"]))
            if predicted:
                assert got["f1"] == 0.0
                f1s.append(0.0)
            continue
        precision = tp / predicted if predicted else 0.0
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((precision, recall, f1))
        recalls.append(recall)
        f1s.append(f1)
    assert report["accuracy"] == pytest.approx(np.mean([y == p for y, p in pairs]))
    assert report["balanced_accuracy"] == pytest.approx(np.mean(recalls))
    assert report["macro_f1"] == pytest.approx(np.mean(f1s))


@pytest.mark.parametrize("labels,preds,match", [
    ([0, 1, 2, -1], [0, 1, 2, 3], r"labels must be whole numbers in 0\.\.3"),  # -1 once counted as class 3
    ([0, 1], [0, 4], r"preds must be whole numbers in 0\.\.3"),
    ([0.0, 1.5], [0, 1], r"labels must be whole numbers"),
    ([0, 1, 2], [0, 1], "same shape"),
])
def test_out_of_range_labels_and_predictions_are_refused(labels, preds, match):
    with pytest.raises(ValueError, match=match):
        classification_report(np.array(labels), np.array(preds), K)


def test_macro_f1_counts_a_class_that_is_only_predicted_as_scikit_learn_does():
    """The auditor's example, by hand: labels {0, 1}, a gait predicted as the absent class 2. F1: class 0 = 1,
    class 1 = 2/3 (precision 1, recall 1/2), class 2 = 0 -> macro (1 + 2/3 + 0) / 3 = 5/9 (scikit-learn 0.556;
    leaving class 2 out would report 0.833). Balanced accuracy stays over the labelled classes: (1 + 1/2) / 2."""
    report = classification_report(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2]), K)
    assert report["macro_f1"] == pytest.approx(5 / 9)
    assert report["balanced_accuracy"] == pytest.approx(0.75)
    assert report["per_class"]["Happy"]["f1"] == 0.0 and np.isnan(report["per_class"]["Happy"]["recall"])
    assert np.isnan(report["per_class"]["Sad"]["f1"])


def test_every_class_needs_a_name():
    assert confusion_matrix([0, 4], [4, 4], 5).sum() == 2
    with pytest.raises(ValueError, match="5 classes but 4 class_names"):
        classification_report(np.array([0]), np.array([0]), 5)  # would drop class 4 from per_class


def test_aggregate_is_mean_and_sample_std():
    reports = [{"accuracy": a, "balanced_accuracy": a, "macro_f1": a} for a in (0.5, 0.7, 0.9)]
    agg = aggregate(reports)
    assert agg["num_runs"] == 3 and agg["accuracy"]["mean"] == pytest.approx(0.7)
    assert agg["accuracy"]["std"] == pytest.approx(0.2)  # ddof=1
    assert np.isnan(aggregate(reports[:1])["macro_f1"]["std"])  # undefined for one run, not 0
