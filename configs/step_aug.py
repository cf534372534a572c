"""STEP+Aug without leakage: STEP-Gen trained on the real training fold, its samples added to that fold only.

    python train.py --config configs/step_aug.py --workdir runs/step_aug
    python eval.py --workdir runs/step_aug/classifier                 # real test split only

Pipeline (stepjax.training.augment.fit_step_aug): split real data -> train the generator on the training
fold, selected on an inner validation part of it (runs/step_aug/generator) -> sample ``aug.per_class`` gaits
per class (runs/step_aug/synthetic.h5)
-> train the classifier (runs/step_aug/classifier) on real train + synthetic, select on real validation,
test on real test.

Classifier: the deep-features ST-GCN (``preprocess.num_affective = 0``), as in the official STEP+Aug
code (``classifier_stgcn_real_and_synth``, STEP_REFERENCE 5.2). Synthetic gaits live in the aligned
frame (scaled to the reference pose) while real gaits are raw, so hand-crafted affective features
(distances, areas, speeds) of the two would not be on the same scale; the ST-GCN input is re-aligned
for both. Set ``--config.preprocess.num_affective=29`` for the hybrid STEP at your own risk.
``aug.per_class``: the paper's STEP+Aug used about 1,000 synthetic gaits in total (issue #11); 250 per
class is that. ``aug.per_class = 0`` is the real-only control.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
import step_gen  # noqa: E402


def get_config():
    cfg = common.base("step_aug")
    cfg.data = common.walkers_data()
    cfg.preprocess = common.preprocess(num_affective=0)
    cfg.model = common.classifier_model()
    cfg.train = common.modern_train(epochs=30)
    gen = step_gen.get_config()
    cfg.generator = ml_collections.ConfigDict(dict(preprocess=gen.preprocess, model=gen.model, loss=gen.loss,
                                                   train=gen.train, generate=gen.generate))
    # seed: of the synthetic gaits' latents (None: the run's seed); generator_val_fraction: the share of the
    # training fold that selects the generator's checkpoint (it never sees the validation or test gaits)
    cfg.aug = ml_collections.ConfigDict(dict(per_class=250, seed=ml_collections.config_dict.placeholder(int),
                                             generator_val_fraction=0.15))
    return cfg
