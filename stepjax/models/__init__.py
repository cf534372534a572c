"""Flax models: STEP classifiers (Baseline-STEP, STEP hybrid) and the STEP-Gen CVAE."""

from stepjax.models.classifier import STEPClassifier

__all__ = ["STEPClassifier"]
