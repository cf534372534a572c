"""STEP-Gen: the ST-GCN conditional VAE with the push-pull loss, modern recipe, on the built-in walkers.

    python train.py --config configs/step_gen.py --workdir runs/gen
    python -m stepjax.generation --workdir runs/gen --per-class 1000 --out-features synth.h5

The CVAE is fed the preprocessed (aligned, STEP_REFERENCE 1.4) real gaits of the training split and
one-hot labels; model selection on the validation loss. Loss: ``generator_loss`` with per-element means
(``loss.official=False``), lambda_collapse = 16 and lambda_drift = 1 (the defaults, which keep the official
balance between drift and collapse; see stepjax.losses.generator_loss) and beta = 1e-3 (below).

Architecture = the official CVAE (encoder 64/32/32, decoder 32/64/3, z = 32, no edge importance, temporal
kernel 75 = the whole clip) made **phase-aware** (docs/generator.md: without this no variant learned to walk):
* ``temporal_pooling='sinusoidal'``: the encoder pools each channel's mean *and* its projections on fixed
  sinusoids of the frame index (officially a plain mean over time, blind to *when* a limb swings; the
  walkers, like E-Gait clips, start at random gait phases), so the latent code can carry the phase;
* ``temporal_code='modulated'``: the decoder input is ``a(z, y) + B(z, y) code(t)`` (officially the same
  vector at every frame), so z sets the amplitude and phase of each sinusoid;
* ``official_output_relu=False``: no ReLU on the output coordinates before the last BN (bug 15);
* ``joint_embedding=True``: a learned vector per joint added to the decoder input. Officially the input is the
  same at every joint and the trunk has no per-joint parameter, so each right limb decodes as an affine image of
  its left twin (README, "Mirror-tied limbs"); with the embedding the half-size walkers' STEP-Gen reconstructs
  2.3-2.7x better and its FID drops 17-68 % (3 seeds, docs/generator.md).
Training: AdamW lr 2e-3 with cosine decay, batch 32, the decoder output BN initialised from the data
(``train.init_output_from_data``), and ``loss.warmup_epochs = 20``: the push-pull and KL weights ramp up
linearly over the first 20 epochs (~500 steps). A motionless "mean gait" decoder is a local minimum of
this loss (a swing in the wrong phase costs more than no swing), which the push-pull terms deepen: with
the full weights from step 0 the phase-aware STEP-Gen stayed motionless for 100 epochs, with the ramp it
learned to walk (docs/generator.md). ``beta = 1e-3`` instead of the default 0.14: with per-element means
beta trades squared metres against nats per latent dimension, and aligned gaits vary by only ~0.08 m
around the mean pose (per-element variance ~0.0066 m^2 on the walkers), so beta = 0.14 drives the KL to
~0 (posterior collapse; measured). 1e-3 ~ 0.14 x that variance, the default balance in units of the data.
Use configs/step_gen_official.py for the official recipe and configs/baseline_cvae.py for the
Baseline-CVAE (same net, reconstruction + KL only).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


def generator_model(**overrides) -> ml_collections.ConfigDict:
    """STEPGenCVAE keyword arguments (see stepjax.models.cvae)."""
    model = dict(
        latent_dim=32, encoder_channels=(64, 32, 32), decoder_channels=(32, 64, 3), kernel_size=75, dropout=0.0,
        temporal_code="modulated", temporal_pooling="sinusoidal", code_dim=32, joint_embedding=True,
        official_output_relu=False, official_adjacency=False,
        temporal_impl="auto", graph_impl="auto", init_scheme="default", precision="highest",
    )
    model.update(overrides)
    return ml_collections.ConfigDict(model)


def generator_loss(official: bool = False, lambda_collapse: float = 16.0, lambda_drift: float = 1.0,
                   beta: float = 0.14, warmup_epochs: float = 0.0) -> ml_collections.ConfigDict:
    """``stepjax.losses.generator_loss`` options; lambda_collapse = lambda_drift = 0 is the Baseline-CVAE.
    ``warmup_epochs``: linear ramp of the push-pull and KL weights (see generator_train_step)."""
    return ml_collections.ConfigDict(dict(official=official, lambda_collapse=lambda_collapse,
                                          lambda_drift=lambda_drift, beta=beta, warmup_epochs=warmup_epochs))


def get_config():
    cfg = common.base("generator")
    cfg.data = common.walkers_data()
    cfg.preprocess = common.preprocess(num_affective=0)  # the CVAE uses the aligned gaits only
    cfg.model = generator_model()
    cfg.loss = generator_loss(beta=1e-3, warmup_epochs=20.0)
    cfg.train = common.modern_train(epochs=100, lr=2e-3)
    cfg.train.init_output_from_data = True  # output BN starts at the training gaits' mean / std (see fit_generator)
    # prior: 'standard' = z ~ N(0, I); 'fitted' = a Gaussian per class fitted to the training posteriors
    # (stepjax.generation.fit_latent_prior). Read by STEP+Aug's sampling; the generation CLI takes --prior and
    # stepjax.gen_eval reports both priors.
    cfg.generate = ml_collections.ConfigDict(dict(official_sampler=False, prior="standard"))
    return cfg
