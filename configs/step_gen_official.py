"""STEP-Gen with the official recipe (STEP_REFERENCE section 4), bugs fixed where they are bugs.

    python train.py --config configs/step_gen_official.py --workdir runs/gen_official

Official: the CVAE of ``generator_cvae/net/CVAE_stgcn.py`` (temporal kernel 75, decoder input constant
over time (``temporal_code='none'``), ReLU before the output BN, official adjacency and init), Adam with
coupled L2 weight decay 5e-4, lr 0.1 with x0.1 steps at epochs 75/113/132 of 150, batch 8, the official
loss normalisation (``between_frame_loss`` + summed KL, STEP_REFERENCE 4.2), reference pose = first
training gait. The official prior sampler ``z = 3 * randn - 1.5`` (bug 14) is available only as an
option: ``--config.generate.official_sampler=True`` (or ``python -m stepjax.generation --official-sampler``).
Fixed: seeded stratified split with a validation set (the official code selects on its test split),
eval-mode BN when generating, milestones correct after resume.

Slow on a CPU (150 epochs at kernel 75); shorten with --config.train.epochs=N (milestones do not scale).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
import step_gen  # noqa: E402

from stepjax.models.cvae import OFFICIAL_OPTIONS  # noqa: E402


def get_config():
    cfg = step_gen.get_config()
    cfg.data = common.walkers_data(num_gaits=342)
    cfg.data.split = (0.7, 0.2, 0.1)
    cfg.preprocess = common.preprocess(num_affective=0, reference="first")
    cfg.model = step_gen.generator_model(kernel_size=75, **OFFICIAL_OPTIONS)
    cfg.loss = step_gen.generator_loss(official=True, lambda_collapse=1.0, lambda_drift=1.0, beta=1.0)
    cfg.train = common.modern_train(epochs=150, lr=0.1)
    cfg.train.update(dict(batch_size=8, optimizer="adam_l2", weight_decay=5e-4, schedule="piecewise",
                          milestones=(75, 113, 132), warmup_epochs=0, init_output_from_data=False))
    return cfg
