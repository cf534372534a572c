"""STEP-Gen: the ST-GCN conditional VAE with the push-pull loss, modern recipe, on the built-in walkers.

    python train.py --config configs/step_gen.py --workdir runs/gen
    python -m stepjax.generation --workdir runs/gen --per-class 1000 --out-features synth.h5

The CVAE is fed the preprocessed (aligned, STEP_REFERENCE 1.4) real gaits of the training split and
one-hot labels; model selection on the validation loss. Loss: ``generator_loss`` with per-element means
(``loss.official=False``) and the default weights lambda_collapse = 16, lambda_drift = 1, beta = 0.14,
which keep the official balance between drift, collapse and KL (see stepjax.losses.generator_loss).

Architecture = the official CVAE (encoder 64/32/32, decoder 32/64/3, z = 32, no edge importance) except:
* temporal kernel 9 (ST-GCN's own) instead of 75 -- and therefore
* ``temporal_code='sinusoidal'``: with the official decoder input (the *same* vector at every frame) and a
  9-tap kernel the decoder's receptive field (3 blocks: 25 frames) cannot reach both clip ends from the
  middle frames, so every middle frame would decode to the same pose. The sinusoidal frame code gives the
  decoder a clock; docs/generator.md compares it with the official input ``'none'``;
* ``official_output_relu=False``: no ReLU on the output coordinates before the last BN (bug 15).
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
        latent_dim=32, encoder_channels=(64, 32, 32), decoder_channels=(32, 64, 3), kernel_size=9, dropout=0.0,
        temporal_code="sinusoidal", joint_embedding=False, official_output_relu=False, official_adjacency=False,
        temporal_impl="toeplitz", init_scheme="default", precision="highest",
    )
    model.update(overrides)
    return ml_collections.ConfigDict(model)


def generator_loss(official: bool = False, lambda_collapse: float = 16.0, lambda_drift: float = 1.0,
                   beta: float = 0.14) -> ml_collections.ConfigDict:
    """``stepjax.losses.generator_loss`` options; lambda_collapse = lambda_drift = 0 is the Baseline-CVAE."""
    return ml_collections.ConfigDict(dict(official=official, lambda_collapse=lambda_collapse,
                                          lambda_drift=lambda_drift, beta=beta))


def get_config():
    cfg = common.base("generator")
    cfg.data = common.walkers_data()
    cfg.preprocess = common.preprocess(num_affective=0)  # the CVAE uses the aligned gaits only
    cfg.model = generator_model()
    cfg.loss = generator_loss()
    cfg.train = common.modern_train(epochs=100, lr=2e-3)
    cfg.train.init_output_from_data = True  # output BN starts at the training gaits' mean / std (see fit_generator)
    cfg.generate = ml_collections.ConfigDict(dict(official_sampler=False))
    return cfg
