"""STEP with the official recipe (STEP_REFERENCE sections 5-6), bugs fixed.

Official: temporal kernel 75, hybrid trunk (strides 1/2/2, first block without residual), official
adjacency partition and weight init, two stacked linear layers in the fusion head, Adam with coupled L2
(wd 1e-4), lr 1e-3 with x0.1 steps at epochs 500/750/875 of 1000, batch 8, raw (unaligned) positions into
the input BatchNorm (the official hybrid loader skips the alignment that the baselines' loaders apply;
STEP_REFERENCE section 1.4), official affective features (27 + stride = 29, incl. the volume bug) computed
on each gait's real frames.
Fixed: no double softmax, stratified seeded split with a validation set, model selection on validation
(the max-over-epochs test accuracy of the official protocol is also reported, clearly labelled),
normalisation statistics from the training split only. Data: the built-in walkers by default; for
E-Gait files use configs/egait.py or --config.data.source=egait --config.data.path=...

This runs for hours on a CPU (1000 epochs): use --config.train.epochs=N to shorten (the milestones are
fractions of the epochs, 0.5/0.75/0.875, so they scale).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

from stepjax.models.classifier import OFFICIAL_OPTIONS  # noqa: E402


def get_config():
    cfg = common.base("classifier")
    cfg.data = common.walkers_data(num_gaits=342)
    cfg.data.split = (0.7, 0.2, 0.1)  # the paper's 7:2:1
    cfg.preprocess = common.preprocess(num_affective=29, reference="first", affective_official=True)
    cfg.preprocess.align = False  # the hybrid loader feeds raw positions to data_bn
    cfg.model = common.classifier_model(kernel_size=75, head="official", head_dropout=0.0, **OFFICIAL_OPTIONS)
    cfg.train = common.modern_train(epochs=1000, lr=1e-3)
    cfg.train.update(dict(batch_size=8, optimizer="adam_l2", weight_decay=1e-4, schedule="piecewise",
                          milestones=(0.5, 0.75, 0.875), milestone_unit="fraction",
                          warmup_epochs=0))  # epochs 500/750/875 of 1000
    cfg.eval.report_test_every_epoch = True
    return cfg
