"""Checkpoint bookkeeping (stepjax.training.checkpoint / progress) on tiny trees: no model, no training."""

import os
import shutil

import ml_collections
import numpy as np
import pytest

from stepjax.training import checkpoint as ckpt_lib
from stepjax.training.progress import RunProgress

CFG = {"task": "classifier", "seed": 0, "model": {"width": 4}, "data": {}, "preprocess": {},
       "train": {"lr": 1e-3, "epochs": 4, "data_parallel": False}}


def _tree(epoch):
    return {"w": np.full((3,), float(epoch), np.float32)}


def _run(workdir, scores, cfg=CFG, log=None):
    """Runs epochs with the given validation scores; returns the RunProgress (closed)."""
    progress = RunProgress(str(workdir), cfg, len(scores), log=log or (lambda *a: None))
    tree = progress.resume(_tree(-1))
    for epoch in progress.epochs():
        tree = _tree(epoch)
        progress.end_epoch(epoch, tree, {"epoch": epoch}, (scores[epoch],))
    progress.ckpts.wait()
    progress.close()
    return progress


def test_best_checkpoint_is_final_before_the_latest_one_that_names_it(tmp_path, monkeypatch):
    """A new best is saved and finalised before the ``latest`` save starts, so no crash can leave a latest
    checkpoint whose meta names a best epoch that is not on disk."""
    ckpts = ckpt_lib.RunCheckpoints(tmp_path)
    order = []
    for name in ("best", "latest"):
        mngr = getattr(ckpts, name)
        save = mngr.save
        monkeypatch.setattr(mngr, "save", lambda *a, _s=save, _n=name, **k: (order.append((_n, sorted(
            ckpts.best.all_steps()))), _s(*a, **k))[1])
    ckpts.save(0, _tree(0), {"epoch": 0}, best=True)
    assert order == [("best", []), ("latest", [0])]  # best/0 finalised when latest/0 starts
    ckpts.wait()
    ckpts.close()


def test_resume_recovers_a_missing_best_checkpoint(tmp_path):
    """If ``best/<e>`` is gone (a run killed mid-save by an older version, or removed by hand) while the latest
    checkpoint names epoch e as best, resuming re-saves it from the restored tree when it is that epoch, and
    otherwise continues from the best checkpoint on disk with a warning, never a silent wrong selection."""
    _run(tmp_path / "a", [0.1, 0.5])
    shutil.rmtree(tmp_path / "a" / "best" / "1")
    progress = RunProgress(str(tmp_path / "a"), CFG, 3, log=lambda *a: None)
    progress.resume(_tree(-1))
    assert progress.best_epoch == 1 and 1 in progress.ckpts.best.all_steps()
    tree, meta = progress.finish(_tree(-1))
    progress.close()
    assert meta["epoch"] == 1 and np.all(tree["w"] == 1.0)

    _run(tmp_path / "b", [0.5, 0.1])  # best epoch 0, latest epoch 1
    shutil.rmtree(tmp_path / "b" / "best" / "0")
    logs = []
    progress = RunProgress(str(tmp_path / "b"), CFG, 3, log=logs.append)
    progress.resume(_tree(-1))
    assert progress.best_epoch is None and progress.best_score is None
    assert any("best checkpoint of epoch 0 is missing" in line for line in logs)
    progress.close()


@pytest.mark.parametrize("key,value,ok", [("seed", 1, False), ("train.lr", 0.1, False), ("model.width", 8, False),
                                          ("aug", {"per_class": 0}, False), ("train.data_parallel", True, True),
                                          # how the layers compute, not what (graph_impl absent from the checkpoint)
                                          ("model.temporal_impl", "conv", True),
                                          ("model.graph_impl", "project_first", True),
                                          ("model.quotient_joints", False, True)])
def test_resume_refuses_a_config_that_changes_the_numbers(tmp_path, key, value, ok):
    _run(tmp_path, [0.1, 0.2])
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in CFG.items()}
    section, _, field = key.partition(".")
    if field:
        cfg[section][field] = value
    else:
        cfg[section] = value
    progress = RunProgress(str(tmp_path), cfg, 3, log=lambda *a: None)
    try:
        if ok:
            progress.resume(_tree(-1))
            assert progress.start_epoch == 2
        else:
            with pytest.raises(ckpt_lib.ConfigMismatchError, match=key.split(".")[0]):
                progress.resume(_tree(-1))
    finally:
        progress.close()
    assert os.path.isdir(tmp_path / "best")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_resume_under_another_formulation_in_float32_only_and_says_so(tmp_path, dtype):
    """A run written with ``temporal_impl='auto'`` resumes under ``'conv'`` when it computes in float32 (the same
    numbers to float32 rounding), and the resume message names the change; a bfloat16 run refuses it (there the
    formulations differ at bf16 level: 'dft' computes in float32, the others in bfloat16)."""
    saved_cfg = {**CFG, "model": {"width": 4, "temporal_impl": "auto"}, "train": {**CFG["train"], "compute_dtype": dtype}}
    _run(tmp_path, [0.1, 0.2], cfg=saved_cfg)
    cfg = {**saved_cfg, "model": {"width": 4, "temporal_impl": "conv"}}
    logs = []
    progress = RunProgress(str(tmp_path), cfg, 3, log=logs.append)
    try:
        if dtype == "float32":
            progress.resume(_tree(-1))
            assert progress.start_epoch == 2
            assert any("model.temporal_impl: checkpoint has 'auto', config has 'conv'" in line for line in logs)
        else:
            with pytest.raises(ckpt_lib.ConfigMismatchError, match="model.temporal_impl"):
                progress.resume(_tree(-1))
    finally:
        progress.close()


def test_readers_create_nothing_and_point_to_sub_runs(tmp_path):
    missing = tmp_path / "typo"
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        ckpt_lib.read_run_config(missing)
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        ckpt_lib.restore_run(missing, "classifier", lambda cfg: None)
    assert not missing.exists()
    _run(tmp_path / "aug" / "classifier", [0.1])  # a STEP+Aug parent holds classifier/ (and generator/)
    with pytest.raises(FileNotFoundError, match=r"did you mean .*aug/classifier\?"):
        ckpt_lib.read_run_config(tmp_path / "aug")
    assert sorted(os.listdir(tmp_path / "aug")) == ["classifier"]
    assert ckpt_lib.read_run_config(tmp_path / "aug" / "classifier")["task"] == "classifier"


def test_run_outputs_are_strict_json(tmp_path):
    """Undefined metrics (NaN precision of an absent class) are written as null: standard JSON."""
    import json

    from stepjax.metrics import classification_report
    from stepjax.utils import write_json

    report = classification_report(np.array([0, 0, 1]), np.array([0, 1, 1]), 4)  # classes 2, 3 absent
    write_json(tmp_path / "r.json", {"report": report, "arr": np.array([1.0, np.inf]), "n": np.int64(3)})

    def refuse(name):
        raise ValueError(name)

    back = json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse)
    assert back["arr"] == [1.0, None] and back["n"] == 3
    assert back["report"]["per_class"]["Happy"]["precision"] is None
    assert back["report"]["per_class"]["Angry"]["recall"] == 0.5


def test_one_training_process_per_workdir(tmp_path):
    """A second trainer on a busy workdir gets a clear error naming the holder; the lock dies with its holder
    (an flock, released by the OS however the process ends), so a crashed run leaves nothing stale."""
    import subprocess
    import sys

    from stepjax.training.run import train_from_config

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from stepjax.training.checkpoint import workdir_lock\n"
         f"with workdir_lock({str(tmp_path)!r}):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ckpt_lib.WorkdirBusyError, match=f"pid {holder.pid} on .*another --workdir"):
            with ckpt_lib.workdir_lock(tmp_path):
                pass
        real_isdir, first = os.path.isdir, [True]  # two trainers starting at once: both saw no workdir

        def isdir_once_false(path):
            if first:
                return not first.pop()
            return real_isdir(path)

        os.path.isdir = isdir_once_false
        try:
            with pytest.raises(ckpt_lib.WorkdirBusyError):  # the loser must not clean up the winner's workdir
                with ckpt_lib.workdir_lock(tmp_path):
                    pass
        finally:
            os.path.isdir = real_isdir
        assert not first and (tmp_path / ckpt_lib.LOCK).exists()
        # train.py's entry point takes the lock before any work
        with pytest.raises(ckpt_lib.WorkdirBusyError):
            train_from_config(ml_collections.ConfigDict({"task": "classifier"}), str(tmp_path), progress=False)
    finally:
        holder.kill()  # no cleanup code runs: the OS drops the lock
        holder.wait()
    with ckpt_lib.workdir_lock(tmp_path):  # free again; nested use in one process is refused too
        with pytest.raises(ckpt_lib.WorkdirBusyError, match=f"pid {os.getpid()} "):
            with ckpt_lib.workdir_lock(tmp_path):
                pass
    with ckpt_lib.workdir_lock(tmp_path):
        pass

    fresh = tmp_path / "fresh"  # a run that fails before writing anything leaves no workdir behind
    with pytest.raises(ValueError, match="unknown task"):
        train_from_config(ml_collections.ConfigDict({"task": "nope"}), str(fresh), progress=False)
    assert not fresh.exists()
    with pytest.raises(ValueError, match="unknown task"):  # one it did not create stays, lock and all
        train_from_config(ml_collections.ConfigDict({"task": "nope"}), str(tmp_path), progress=False)
    assert (tmp_path / ckpt_lib.LOCK).exists()
    with pytest.raises(RuntimeError, match="late"):  # nor one where the run had written something
        with ckpt_lib.workdir_lock(fresh):
            (fresh / "config.json").write_text("{}")
            raise RuntimeError("late")
    assert sorted(os.listdir(fresh)) == [ckpt_lib.LOCK, "config.json"]
    with pytest.raises(NotADirectoryError, match="config.json is a file, not a run directory"):
        train_from_config(ml_collections.ConfigDict({"task": "classifier"}), str(fresh / "config.json"))


def test_a_run_from_before_lengths_were_recorded_still_resumes(tmp_path):
    """Runs with ``data.num_frames = 0`` now store the length it resolved to; a checkpoint written before (0)
    still resumes when the config asks for 0 again (``frames_recorded``), not when it asks for a length."""
    old = dict(CFG, data={"num_frames": 0})
    _run(tmp_path, [0.5, 0.6], cfg=old)
    now = dict(CFG, data={"num_frames": 40})
    with pytest.raises(ckpt_lib.ConfigMismatchError, match="data.num_frames: checkpoint has 0, config has 40"):
        RunProgress(str(tmp_path), now, 4, log=lambda *a: None).resume(_tree(-1))
    progress = RunProgress(str(tmp_path), now, 4, log=lambda *a: None, frames_recorded=True)
    assert progress.resume(_tree(-1))["w"][0] == 1.0 and progress.start_epoch == 2
    progress.close()


def test_another_config_is_refused_before_the_data_is_loaded(tmp_path):
    """``refuse_another_config`` (called before the data is prepared) applies the resume check's rules, leaving
    out ``data.num_frames`` where the config asks for 0 (the length is known only from the data)."""
    from stepjax.training.progress import refuse_another_config

    refuse_another_config(str(tmp_path / "new"), CFG)  # nothing there: nothing to refuse
    assert not (tmp_path / "new").exists()
    _run(tmp_path, [0.5, 0.6], cfg=dict(CFG, data={"num_frames": 40}))
    refuse_another_config(str(tmp_path), dict(CFG, data={"num_frames": 40}))
    refuse_another_config(str(tmp_path), dict(CFG, data={"num_frames": 0}))
    refuse_another_config(str(tmp_path), dict(CFG, data={"num_frames": 40}, model={"width": 4, "graph_impl": "x"}))
    for other, key in ((dict(CFG, data={"num_frames": 32}), "data.num_frames"), (dict(CFG, seed=1), "seed"),
                       (dict(CFG, data={"num_frames": 0}, model={"width": 8}), "model.width")):
        with pytest.raises(ckpt_lib.ConfigMismatchError, match=key):
            refuse_another_config(str(tmp_path), other)
    refuse_another_config(str(tmp_path), dict(CFG, data={"num_frames": 40}, model={}),
                          read_saved_config=lambda saved: {**saved, "model": {}})


def test_readers_refuse_an_unknown_checkpoint_name(tmp_path):
    _run(tmp_path, [0.5, 0.7])
    with pytest.raises(ValueError, match=r"which must be one of \('best', 'latest'\), got 'last'"):
        ckpt_lib.restore_run(tmp_path, "classifier", lambda cfg: _tree(0), which="last")
    assert ckpt_lib.restore_run(tmp_path, "classifier", lambda cfg: _tree(0), which="best")[1]["w"][0] == 1.0


def test_the_best_epoch_is_what_finish_and_readers_return_not_the_latest(tmp_path):
    """Model selection end to end on the bookkeeping: validation scores are ``fit._score`` of the reports
    (accuracy, ties broken by the LOWER loss); the best epoch (2) is neither the last (3) nor the first with
    the top accuracy (1). ``finish`` and ``restore_run(which='best')`` return it; ``which='latest'`` the last."""
    from stepjax.training.fit import _score

    reports = [{"accuracy": 0.5, "loss": 1.0}, {"accuracy": 0.9, "loss": 0.5}, {"accuracy": 0.9, "loss": 0.3},
               {"accuracy": 0.7, "loss": 0.1}]
    progress = RunProgress(str(tmp_path), CFG, len(reports), log=lambda *a: None)
    progress.resume(_tree(-1))
    for epoch in progress.epochs():
        progress.end_epoch(epoch, _tree(epoch), {"epoch": epoch}, _score(reports[epoch]))
    tree, meta = progress.finish(_tree(-1))
    progress.close()
    assert progress.best_epoch == 2 and meta["epoch"] == 2 and np.all(tree["w"] == 2.0)
    for which, epoch in (("best", 2), ("latest", 3)):
        cfg, tree = ckpt_lib.restore_run(tmp_path, "classifier", lambda cfg: _tree(-1), which)
        assert np.all(tree["w"] == float(epoch)), which
        assert cfg.task == "classifier"


@pytest.mark.parametrize("loader,restorer", [("stepjax.inference.load_classifier", "restore_classifier"),
                                             ("stepjax.generation.load_generator", "restore_generator")])
def test_loaders_read_the_best_checkpoint_by_default(loader, restorer, monkeypatch):
    """``load_classifier(workdir)`` / ``load_generator(workdir)`` serve the best-by-validation checkpoint unless
    asked for ``'latest'`` (a default of 'latest' would silently serve an over-fitted last epoch)."""
    import importlib

    from conftest import which_recorder

    module_name, fn_name = loader.rsplit(".", 1)
    module = importlib.import_module(module_name)
    asked = []
    monkeypatch.setattr(module, restorer, which_recorder(asked))
    for kwargs, want in (({}, "best"), ({"which": "latest"}, "latest")):
        with pytest.raises(LookupError, match="recorded"):
            getattr(module, fn_name)("some/run", **kwargs)
        assert asked[-1] == want


def test_runs_record_every_model_field_and_read_a_missing_one_as_the_code_that_wrote_it():
    """A config may leave model keys to the class defaults; runs store every field resolved, so a later change of
    a default cannot change a saved run's model. A stored config that lacks a key (written before runs resolved
    them) reads it as the default of its time: the official behaviour for the keys whose default changed."""
    from stepjax.models import classifier, cvae
    from stepjax.training.model_config import (LEGACY_MODEL_DEFAULTS, module_fields, read_saved_model_config,
                                               resolve_model_config)

    gen = {"task": "generator", "seed": 3, "model": {"latent_dim": 8, "decoder_channels": [8, 16, 3]}}
    now = resolve_model_config(gen)
    assert now["seed"] == 3 and gen["model"] == {"latent_dim": 8, "decoder_channels": [8, 16, 3]}  # a copy
    assert now["model"] == ckpt_lib.config_to_json(module_fields(cvae.STEPGenCVAE(8, decoder_channels=(8, 16, 3))))
    assert now["model"]["temporal_pooling"] == "sinusoidal" and now["model"]["official_adjacency"] is False
    old = read_saved_model_config(gen)
    assert old["model"] == {**now["model"], **LEGACY_MODEL_DEFAULTS["generator"]}
    assert read_saved_model_config(now) == now  # a resolved config reads as itself
    for kind, module in (("generator", cvae), ("classifier", classifier)):  # the old defaults were the official ones
        assert LEGACY_MODEL_DEFAULTS[kind].items() <= module.OFFICIAL_OPTIONS.items()

    clf = ml_collections.ConfigDict({"task": "classifier_runs", "preprocess": {"num_affective": 29},
                                     "model": {"channels": (8, 16, 16), "kernel_size": 5}})
    resolved = resolve_model_config(clf)
    assert isinstance(resolved, ml_collections.ConfigDict) and "num_affective" not in resolved.model
    fields = module_fields(classifier.STEPClassifier(channels=(8, 16, 16), kernel_size=5))
    assert resolved.model.to_dict() == fields
    assert read_saved_model_config({**clf.to_dict(), "model": {**clf.model.to_dict()}})["model"]["official_adjacency"]

    for untouched in ({"task": "step_aug", "model": {"width": 1}}, {"task": "classifier"}):  # resolved per sub-run
        assert resolve_model_config(untouched) is untouched
    with pytest.raises(ValueError, match="model.width is not a field of STEPClassifier"):
        resolve_model_config({"task": "classifier", "preprocess": {"num_affective": 0}, "model": {"width": 4}})
    with pytest.raises(ValueError, match="did you mean model.kernel_size"):
        resolve_model_config({"task": "generator", "model": {"kernel_sise": 5}})
    with pytest.raises(ValueError, match="model.num_affective is set by preprocess.num_affective"):
        resolve_model_config({"task": "classifier", "preprocess": {"num_affective": 0}, "model": {"num_affective": 0}})
    with pytest.raises(ckpt_lib.ConfigMismatchError, match="does not build this version's model.*width"):
        read_saved_model_config({"task": "classifier", "preprocess": {"num_affective": 0}, "model": {"width": 4}})
    with pytest.raises(ValueError, match="dropout rates") as err:  # a bad value is not called a key mismatch
        read_saved_model_config({"task": "classifier", "preprocess": {"num_affective": 0}, "model": {"dropout": 1.5}})
    assert not isinstance(err.value, ckpt_lib.ConfigMismatchError)


@pytest.mark.parametrize("damage", ["no_state", "meta_json", "array_data"])
def test_a_damaged_checkpoint_is_named_with_the_older_one_to_fall_back_to(tmp_path, damage):
    """A checkpoint damaged on disk (an item missing, its metadata cut short, its array files overwritten) is a
    :class:`CheckpointCorruptError` naming it and the older checkpoint left (once a raw ``KeyError`` or orbax's
    bare ``Exception``, or misreported as a config mismatch); resuming and reading stop there."""
    _run(tmp_path, [0.5, 0.4, 0.3])
    step = tmp_path / ckpt_lib.LATEST / "2"
    if damage == "no_state":
        shutil.rmtree(step / "state")
    elif damage == "meta_json":
        meta = step / "meta" / "metadata"  # orbax's JSON item
        meta.write_text(meta.read_text()[:20])
    else:
        for path in (step / "state").rglob("d/*"):  # the array data files
            path.write_bytes(b"\0" * path.stat().st_size)
    why = {"no_state": "no state item", "meta_json": "", "array_data": ""}[damage]
    latest = ckpt_lib.LATEST
    match = (rf"checkpoint .*{latest}/2 is damaged or incomplete \({why}.*; remove it to resume or evaluate from "
             rf".*{latest}/1")
    with pytest.raises(ckpt_lib.CheckpointCorruptError, match=match):
        ckpts = ckpt_lib.RunCheckpoints(tmp_path, create=False)
        try:
            ckpts.read_meta()
            ckpts.restore(_tree(-1))
        finally:
            ckpts.close()
    with pytest.raises(ckpt_lib.CheckpointCorruptError, match=match):
        RunProgress(str(tmp_path), CFG, 4, log=lambda *a: None).resume(_tree(-1))
    shutil.rmtree(step)  # as the message says: the run resumes from the older checkpoint
    progress = RunProgress(str(tmp_path), CFG, 4, log=lambda *a: None)
    assert progress.resume(_tree(-1))["w"][0] == 1.0 and progress.start_epoch == 2
    progress.close()


def test_restoring_into_another_shape_is_a_mismatch(tmp_path):
    """orbax restores the stored shape into a target without a placement ((3,) into a (4,) NumPy or
    ``eval_shape`` target came back (3,), silently): every target is placed, and orbax then refuses."""
    import jax

    _run(tmp_path, [0.5])
    ckpts = ckpt_lib.RunCheckpoints(tmp_path, create=False)
    try:
        for tree, shown in (({"w": np.zeros(4, np.float32)}, r"shape: \(4,\) is not compatible with the stored "
                                                              r"shape: \(3,\)"),
                            (jax.eval_shape(lambda: {"w": np.zeros(4, np.float32)}), r"stored shape: \(3,\)"),
                            ({"v": np.zeros(3, np.float32)}, "tree structures do not match")):
            with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"does not fit the model built from this config.*"
                                                                  + shown):
                ckpts.restore(tree)
        assert ckpts.restore({"w": np.zeros(3, np.float32)})[0]["w"][0] == 0.0
    finally:
        ckpts.close()


def test_a_split_is_recorded_with_its_data_and_checked_on_resume(tmp_path):
    """``split.json`` keeps the parts and the data's fingerprint; resuming (``resumed=True``) or checking with
    other parts or another fingerprint is a ConfigMismatchError naming what differs, and keeps the record."""
    from stepjax.data.splits import Split
    from stepjax.training.progress import check_split, read_split, write_split

    split = Split(np.array([0, 1, 2]), np.array([3]), np.array([4]))
    write_split(str(tmp_path), split, fingerprint="a" * 64)
    assert {k: v.tolist() for k, v in read_split(str(tmp_path)).items()} == {"train": [0, 1, 2], "val": [3],
                                                                           "test": [4]}
    write_split(str(tmp_path), split, resumed=True, fingerprint="a" * 64)  # the same: fine
    check_split(str(tmp_path), split, None, hint="")  # data read from no file: only the parts are compared
    for other, fingerprint, what in ((split, "b" * 64, r"\(the data files differ"),
                                     (split._replace(val=np.array([4]), test=np.array([3])), "a" * 64,
                                      r"\(val, test differ")):
        with pytest.raises(ckpt_lib.ConfigMismatchError, match=what + r" from its split.json.*; train in a new"):
            write_split(str(tmp_path), other, resumed=True, fingerprint=fingerprint)
    assert read_split(str(tmp_path))["val"].tolist() == [3]
    check_split(str(tmp_path), split._replace(val=np.array([4]), test=np.array([3])), "a" * 64, hint="", parts=())
    check_split(str(tmp_path / "older_run"), split, "b" * 64, hint="")  # no split.json: nothing to compare
    (tmp_path / "older_run").mkdir()
    write_split(str(tmp_path / "older_run"), split)  # a run from before the files' hash was recorded
    check_split(str(tmp_path / "older_run"), split, "b" * 64, hint="")  # the parts only


def test_a_data_parallel_checkpoint_restores_on_one_device_and_other_errors_pass_through(tmp_path, monkeypatch):
    """A tree saved replicated over 2 devices restores into an ``eval_shape`` target on this process's device
    (orbax's own "topology mismatch" was reported as a config mismatch); an error that is not damage (out of
    memory) is passed on as it is, never as a damaged checkpoint to remove."""
    import subprocess
    import sys

    import jax

    save = f"""
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from stepjax.training import checkpoint as C
mesh = Mesh(np.array(jax.devices()), ("data",))
assert len(jax.devices()) == 2
tree = {{"w": jax.device_put(jnp.arange(12.0).reshape(3, 4), NamedSharding(mesh, P()))}}
ck = C.RunCheckpoints({str(tmp_path)!r}); ck.save(0, tree, {{"epoch": 0, "config": {{}}}}); ck.wait(); ck.close()
"""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", save], check=True, env=env, timeout=300)
    ckpts = ckpt_lib.RunCheckpoints(tmp_path, create=False)
    try:
        tree, _ = ckpts.restore(jax.eval_shape(lambda: {"w": np.zeros((3, 4), np.float32)}))
        np.testing.assert_array_equal(tree["w"], np.arange(12.0).reshape(3, 4))

        def out_of_memory(*args, **kwargs):
            raise MemoryError("RESOURCE_EXHAUSTED: out of memory")

        monkeypatch.setattr(ckpts.latest, "restore", out_of_memory)
        with pytest.raises(MemoryError):
            ckpts.restore({"w": np.zeros((3, 4), np.float32)})
    finally:
        ckpts.close()


def test_a_checkpoint_removed_by_a_live_trainer_is_not_called_damaged(tmp_path):
    """eval.py takes no lock: a reader lists the checkpoints, then the trainer saves two more epochs and its
    max_to_keep removes the listed ones before they are read (a helper measured 4 of 222 restore_classifier
    calls during a live run failing so, as "damaged, remove it" or a config mismatch). The reader reads the
    newest checkpoint there is now; a named one that was removed is said to be so."""
    _run(tmp_path, [0.1, 0.2])  # latest/0, latest/1
    reader = ckpt_lib.RunCheckpoints(tmp_path, create=False)
    assert reader.latest_epoch() == 1
    other = ckpt_lib.RunCheckpoints(tmp_path, create=False)  # a reader asking for a checkpoint saved after it opened
    writer = ckpt_lib.RunCheckpoints(tmp_path)
    for epoch in (2, 3):  # the live trainer moves on: latest/0 and latest/1 are removed
        writer.save(epoch, _tree(epoch), {"epoch": epoch, "config": CFG})
    writer.wait()
    writer.close()
    try:
        with pytest.raises(FileNotFoundError, match=r"checkpoints/1 was removed while it was read: a run is training"):
            reader.restore(_tree(-1), epoch=1)  # listed, gone when read
        tree, meta = reader.restore(_tree(-1))  # the listed newest (1) is gone: the newest there is now
        assert meta["epoch"] == 3 and np.all(tree["w"] == 3.0)
        assert reader.read_meta()["epoch"] == 3
        with pytest.raises(FileNotFoundError, match=r"no checkpoint .*checkpoints/1 \(it holds \[2, 3\]\)"):
            reader.read_meta(epoch=1)
        assert other.read_meta(epoch=3)["epoch"] == 3 and other.restore(_tree(-1), epoch=2)[1]["epoch"] == 2
    finally:
        reader.close()
        other.close()


def test_a_stop_between_the_best_and_the_latest_save_resumes_without_a_warning(tmp_path):
    """A new best is saved to completion before the latest checkpoint that names it, so a run killed in between
    leaves best/<e> one epoch ahead of latest/: the state the save order is designed to leave. The resume takes
    best/<e> without the 'missing best checkpoint' warning, and the run ends with the same best checkpoint."""
    _run(tmp_path, [0.5, 0.1, 0.9])  # best/2 (best/0 removed by max_to_keep), latest/1 and latest/2
    shutil.rmtree(tmp_path / ckpt_lib.LATEST / "2")  # killed after best/2, before latest/2 was written
    logs = []
    progress = RunProgress(str(tmp_path), CFG, 3, log=logs.append)
    progress.resume(_tree(-1))
    assert progress.start_epoch == 2 and progress.best_epoch == 2
    assert not any("WARNING" in str(line) for line in logs), logs
    progress.end_epoch(2, _tree(2), {"epoch": 2}, (0.9,))  # the retrained epoch 2
    tree, meta = progress.finish(_tree(-1))
    progress.close()
    assert meta["epoch"] == 2 and np.all(tree["w"] == 2.0)
