"""Baseline-STEP: the ST-GCN classifier on deep features only (no affective features), modern recipe.

    python train.py --config configs/baseline_step.py --workdir runs/baseline_step
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


def get_config():
    cfg = common.base("classifier")
    cfg.data = common.walkers_data()
    cfg.preprocess = common.preprocess(num_affective=0)
    cfg.model = common.classifier_model()
    cfg.train = common.modern_train(epochs=20)
    return cfg
