"""STEP (hybrid: ST-GCN deep features + 29 affective features) with a modern recipe, on the built-in walkers.

    python train.py --config configs/step.py --workdir runs/step

Modern recipe vs the official one (configs/step_official.py): temporal kernel 9 (ST-GCN's own; the
official 75-tap kernel spans the whole clip and dominates parameters and time), AdamW + cosine decay,
a real FC+ReLU+dropout fusion head, corrected adjacency partition, validation-based model selection.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


def get_config():
    cfg = common.base("classifier")
    cfg.data = common.walkers_data()
    cfg.preprocess = common.preprocess(num_affective=29)
    cfg.model = common.classifier_model()
    cfg.train = common.modern_train(epochs=20)
    return cfg
