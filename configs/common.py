"""Shared pieces of the configs (configs are code: each file's ``get_config()`` returns a ConfigDict).

Every field can be overridden on the command line, e.g. ``--config.train.epochs=5``.
"""

import ml_collections


def walkers_data(num_gaits: int = 1200, seed: int = 0) -> ml_collections.ConfigDict:
    """The built-in procedural walkers (default data; E-Gait is not downloadable here)."""
    return ml_collections.ConfigDict(dict(
        source="walkers", num_gaits=num_gaits, seed=seed, difficulty=1.0, num_frames=75,
        path="", labels_path="", length_policy="tile",
        split=(0.7, 0.15, 0.15), split_seed=0, group_by_subject=True, augment_mirror=False,
    ))


def preprocess(num_affective: int = 29, reference: str = "mean", affective_official: bool = False):
    """Alignment to a stored reference pose (official preprocessing) and affective features."""
    return ml_collections.ConfigDict(dict(
        align=True, reference=reference, num_affective=num_affective, affective_official=affective_official,
        time_step=1 / 30,
    ))


def classifier_model(**overrides) -> ml_collections.ConfigDict:
    """STEPClassifier keyword arguments (see stepjax.models.classifier)."""
    model = dict(
        channels=(32, 64, 64), strides=(1, 2, 2), residuals=(False, True, True), kernel_size=9,
        head="mlp", hidden=128, head_dropout=0.2, dropout=0.0, edge_importance=True,
        official_adjacency=False, temporal_impl="auto", graph_impl="auto", init_scheme="default",
        precision="highest",
    )
    model.update(overrides)
    return ml_collections.ConfigDict(model)


def modern_train(epochs: int = 30, lr: float = 3e-3) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        epochs=epochs, batch_size=32, optimizer="adamw", lr=lr, weight_decay=1e-4, schedule="cosine",
        warmup_epochs=1, milestones=(), label_smoothing=0.0, official_double_softmax=False, grad_clip=0.0,
        momentum=0.9, data_parallel=False,
        compute_dtype="float32",  # 'bfloat16': mixed precision (float32 master weights; README "Performance")
    ))


def base(task: str = "classifier") -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict()
    cfg.task = task
    cfg.seed = 0
    cfg.checkpoint_every = 1
    cfg.eval = ml_collections.ConfigDict(dict(batch_size=256, report_test_every_epoch=False))
    return cfg
