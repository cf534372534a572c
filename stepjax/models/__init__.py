"""Flax models: STEP classifiers (Baseline-STEP, STEP hybrid) and the STEP-Gen CVAE."""

from stepjax.models.classifier import STEPClassifier
from stepjax.models.cvae import STEPGenCVAE

__all__ = ["STEPClassifier", "STEPGenCVAE"]
