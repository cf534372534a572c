"""Baseline-CVAE (paper section 5.5): the STEP-Gen network trained with reconstruction + KL only.

    python train.py --config configs/baseline_cvae.py --workdir runs/baseline_cvae

Identical to configs/step_gen.py except ``loss.lambda_collapse = loss.lambda_drift = 0`` (no push-pull
terms); the components drift / vel / acc are still logged to metrics.jsonl for comparison.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import step_gen  # noqa: E402


def get_config():
    cfg = step_gen.get_config()
    cfg.loss.lambda_collapse = 0.0
    cfg.loss.lambda_drift = 0.0
    return cfg
