"""End-to-end classifier training on the built-in walkers: learning, checkpoints, resume, eval, inference."""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from stepjax.data import pipeline
from stepjax.training import checkpoint as ckpt_lib
from stepjax.training.fit import fit_classifier
from conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "configs"))
import step as step_config  # noqa: E402


def tiny_config(epochs=6, **model):
    """A small STEP hybrid on 240 short walkers: compiles and trains in seconds on 2 cores."""
    cfg = step_config.get_config()
    cfg.data.num_gaits = 240
    cfg.data.num_frames = 32
    cfg.model.channels = (8, 16, 16)
    cfg.model.kernel_size = 5
    cfg.model.hidden = 32
    cfg.model.update(model)
    cfg.train.epochs = epochs
    cfg.train.batch_size = 16
    cfg.train.lr = 1e-2
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run") / "step")
    cfg = tiny_config()
    result = fit_classifier(cfg, workdir, progress=False, log=lambda *a: None)
    return cfg, workdir, result


def _params(workdir, which="latest"):
    from stepjax.inference import restore_classifier

    return restore_classifier(workdir, which)[2]


def test_short_training_learns_above_chance(trained):
    cfg, workdir, result = trained
    # 4 classes: chance is 25% (the walker classes overlap by design, so perfect accuracy is not expected)
    assert result["val"]["accuracy"] > 0.45, result["val"]
    assert result["test"]["accuracy"] > 0.4, result["test"]
    lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [l["epoch"] for l in lines] == list(range(cfg.train.epochs))
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert result["best_epoch"] == max(range(len(lines)), key=lambda e: (lines[e]["val_accuracy"], -lines[e]["val_loss"]))
    assert "test_accuracy" not in lines[0]  # the test split is never looked at during training
    saved = json.load(open(os.path.join(workdir, "results.json")))
    assert saved["test"]["confusion_matrix"] == result["test"]["confusion_matrix"]


def test_official_protocol_number_is_reported_labelled_and_never_selects(tmp_path):
    """``eval.report_test_every_epoch`` (configs/step_official.py) logs the test accuracy of every epoch and
    reports their maximum (the official protocol's number, selected on the test set) under a label that says so;
    the checkpoint is still the best *validation* epoch. ``cfg.train``'s loss options reach the step."""
    from stepjax.training.fit import make_classifier_step

    cfg = tiny_config(epochs=3)
    cfg.eval.report_test_every_epoch = True
    result = fit_classifier(cfg, str(tmp_path / "w"), progress=False, log=lambda *a: None)
    lines = [json.loads(l) for l in open(tmp_path / "w" / "metrics.jsonl")]
    assert all("test_accuracy" in l for l in lines)
    assert result["test_accuracy_max_over_epochs_OFFICIAL_PROTOCOL"] == max(l["test_accuracy"] for l in lines)
    assert result["best_epoch"] == max(range(len(lines)), key=lambda e: (lines[e]["val_accuracy"],
                                                                         -lines[e]["val_loss"]))
    step = make_classifier_step(ml_collections.ConfigDict(dict(official_double_softmax=True, label_smoothing=0.1,
                                                               compute_dtype="bfloat16")))
    assert step.keywords == dict(official_double_softmax=True, label_smoothing=0.1, compute_dtype="bfloat16")
    assert make_classifier_step(ml_collections.ConfigDict()).keywords == dict(
        official_double_softmax=False, label_smoothing=0.0, compute_dtype="float32")


def test_a_resumed_run_refuses_a_split_other_than_the_one_it_trained_on(tmp_path):
    """``split.json`` records the real gaits of each part; resuming on a split that came out different (other
    data under the same path, other splitting code) is refused instead of continuing on other gaits."""
    cfg = tiny_config(epochs=2)
    workdir = tmp_path / "w"
    assert fit_classifier(cfg, str(workdir), progress=False, log=lambda *a: None, stop_after=1) is None
    from stepjax.training.progress import read_split

    recorded = read_split(str(workdir))
    swapped = {k: v.tolist() for k, v in recorded.items()}
    swapped["train"][0], swapped["val"][0] = swapped["val"][0], swapped["train"][0]
    (workdir / "split.json").write_text(json.dumps(swapped))
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"other data .*\(train, val differ from its split.json"):
        fit_classifier(cfg, str(workdir), progress=False, log=lambda *a: None)
    assert json.loads((workdir / "split.json").read_text()) == swapped  # the record is kept, not overwritten


def test_evaluation_takes_the_recorded_split_of_unchanged_files(tmp_path, monkeypatch):
    """``eval.py`` evaluates a run on the parts it trained with: where ``split.json`` records the data files and
    they are unchanged, its indices, even where today's splitting code splits the same files otherwise (e.g.
    E-Gait keys of BVH windows, grouped by clip since 2026-12-05); without a record of the files (walkers) the
    split the config gives now must be the recorded one."""
    from types import SimpleNamespace

    from stepjax.data import pipeline
    from stepjax.data.splits import Split
    from stepjax.training.progress import run_split, write_split

    trained_with = Split(np.array([0, 1, 2, 3]), np.array([4, 5]), np.array([6, 7]))
    now = Split(np.array([0, 1, 2, 4]), np.array([3, 5]), np.array([6, 7]))
    monkeypatch.setattr(pipeline, "split_dataset", lambda raw, data_cfg: now)  # what the config gives today
    raw = lambda num_gaits, fingerprint: SimpleNamespace(labels=np.zeros(num_gaits), fingerprint=lambda: fingerprint)
    write_split(str(tmp_path), trained_with, fingerprint="ab12")
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(run_split(str(tmp_path), raw(8, "ab12"), None, hint=""), part),
                                      getattr(trained_with, part))
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"\(train, val, the data files differ"):
        run_split(str(tmp_path), raw(8, "cd34"), None, hint="")  # other files under the path
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"not disjoint parts of the 7 gaits the data gives now"):
        run_split(str(tmp_path), raw(7, "ab12"), None, hint="")  # the same files load as fewer gaits now
    record = json.loads((tmp_path / "split.json").read_text())
    (tmp_path / "split.json").write_text(json.dumps({k: v for k, v in record.items() if k != "test"}))
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"is not a split record \(KeyError\('test'\)\)"):
        run_split(str(tmp_path), raw(8, "ab12"), None, hint="")
    write_split(str(tmp_path), now)  # no record of the files: compared through the split
    assert run_split(str(tmp_path), raw(8, None), None, hint="") is now
    write_split(str(tmp_path), trained_with)
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"train, val differ"):
        run_split(str(tmp_path), raw(8, None), None, hint="")


def test_eval_scores_the_recorded_test_part_where_the_files_are_unchanged(trained, monkeypatch, tmp_path):
    """``eval.py --split test`` on a run whose ``split.json`` records its data files, unchanged: the parts it
    records are scored even where the splitting code gives another split today."""
    import shutil

    from stepjax import evaluation
    from stepjax.data import pipeline
    from stepjax.training.progress import read_split, write_split

    cfg, trained_dir, result = trained
    workdir = str(tmp_path / "run")
    shutil.copytree(trained_dir, workdir)
    monkeypatch.setattr(pipeline.RawDataset, "fingerprint", lambda self: "ab12")  # as if read from files
    raw = pipeline.load_source(cfg.data)
    recorded = pipeline.split_dataset(raw, cfg.data)
    write_split(workdir, recorded, fingerprint="ab12")
    monkeypatch.setattr(pipeline, "split_dataset", lambda raw, c: recorded._replace(test=recorded.test[:5]))
    report = evaluation.evaluate_workdir(workdir)
    assert report["num_gaits"] == len(read_split(workdir)["test"]) == len(recorded.test) > 5
    assert report["accuracy"] == pytest.approx(result["test"]["accuracy"])


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(trained, tmp_path):
    cfg, workdir, result = trained
    resumed = str(tmp_path / "resumed")
    assert fit_classifier(cfg, resumed, progress=False, log=lambda *a: None, stop_after=2) is None
    assert ckpt_lib.RunCheckpoints(resumed).latest_epoch() == 1
    # the run "started" under another jax: resuming says so (the numbers may then differ beyond rounding)
    path = os.path.join(resumed, "provenance.jsonl")
    start = json.loads(open(path).read())
    start["packages"]["jax"] = "0.0.1"
    open(path, "w").write(json.dumps(start) + "\n")
    logged = []
    again = fit_classifier(cfg, resumed, progress=False, log=logged.append)
    assert [r["event"] for r in map(json.loads, open(path))] == ["start", "resume"]
    resume = json.loads(open(path).readlines()[-1])
    assert resume["epoch"] == 2 and resume["packages"]["jax"] == jax.__version__
    assert any(f"jax 0.0.1 -> {jax.__version__}" in str(line) for line in logged), logged
    a, b = _params(workdir), _params(resumed)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a["model"], b["model"])
    assert again["test"]["accuracy"] == result["test"]["accuracy"]
    lines = [json.loads(l)["epoch"] for l in open(os.path.join(resumed, "metrics.jsonl"))]
    assert lines == list(range(cfg.train.epochs))


def test_checkpoint_of_another_config_is_refused(trained, monkeypatch):
    """Refused before the data is loaded or generated (a mistaken --workdir costs no data preparation)."""
    cfg, workdir, _ = trained
    other = tiny_config(channels=(8, 16, 32))
    monkeypatch.setattr(pipeline, "prepare", lambda *a, **k: pytest.fail("the data was prepared first"))
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"model\.channels"):
        fit_classifier(other, workdir, progress=False, log=lambda *a: None)


def test_predict_fn_is_pure_and_matches_under_jit_and_vmap(trained):
    from stepjax import load_classifier
    from stepjax.data.walkers import make_walkers

    _, workdir, _ = trained
    predict_fn, variables = load_classifier(workdir)
    gaits = jnp.asarray(make_walkers(6, seed=123, num_frames=32).gaits)
    eager = predict_fn(variables, gaits)
    jitted = jax.jit(predict_fn)(variables, gaits)
    # one (T, 16, 3) gait per call; jitted, since an eager vmap runs (and compiles) op by op (~8 s)
    mapped = jax.jit(jax.vmap(predict_fn, in_axes=(None, 0)))(variables, gaits)
    np.testing.assert_allclose(jitted.logits, eager.logits, atol=1e-5)
    np.testing.assert_allclose(mapped.logits, eager.logits, atol=1e-4)
    np.testing.assert_allclose(eager.probs.sum(-1), 1.0, atol=1e-6)

    @jax.jit
    def user_code(v, g):  # inside a user's own jitted function, with a gradient through the model
        return jax.grad(lambda g: predict_fn(v, g).logits[:, 0].sum())(g)

    assert np.all(np.isfinite(user_code(variables, gaits)))

    # bad input is a clear error, not a broadcasting traceback; variable-length gaits go through ``lengths``
    for bad, match in [(gaits.reshape(6, 32, 48), r"reshape\(\.\.\., 16, 3\)"), (gaits[:, :20], "32-frame gaits"),
                       (gaits[:0], "no gaits"), (jnp.swapaxes(gaits, 1, 2), r"\(N, T, 16, 3\)")]:
        with pytest.raises(ValueError, match=match):
            predict_fn(variables, bad)
    np.testing.assert_allclose(predict_fn(variables, gaits, jnp.full((6,), 32)).logits, eager.logits, atol=1e-4)
    one = jax.jit(predict_fn)(variables, gaits[0], 20)  # a 20-frame gait tiled to 32: affective features use 20
    assert one.logits.shape == (4,) and np.all(np.isfinite(one.logits))
    nan_gaits = gaits.at[2, 4, 7, 1].set(jnp.nan)
    with pytest.raises(ValueError, match="NaN or inf"):
        predict_fn(variables, nan_gaits)
    traced = jax.jit(predict_fn)(variables, nan_gaits)  # XLA's fused ReLUs once made this finite (and wrong)
    assert np.all(np.isnan(traced.probs[2])) and np.all(np.isnan(traced.features[2]))
    np.testing.assert_allclose(np.delete(np.asarray(traced.logits), 2, 0), np.delete(np.asarray(eager.logits), 2, 0),
                               atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, T, 16, 3\) or one gait \(T, 16, 3\)"):
        predict_fn(variables, gaits[:, :, :15])
    for g, lengths in [(gaits, jnp.full((5,), 32)), (gaits, 32), (gaits[0], jnp.full((2,), 32))]:
        with pytest.raises(ValueError, match="lengths must have shape"):
            predict_fn(variables, g, lengths)


def test_frozen_predictor_matches_predict_fn(trained):
    """``freeze`` bakes the weights in as constants (XLA folds the weight-only work): same predictions for a
    batch and for one gait, and it folds: fewer FLOPs per call than the jitted ``predict_fn``."""
    from stepjax import load_classifier
    from stepjax.data.walkers import make_walkers
    from stepjax.inference import freeze

    _, workdir, _ = trained
    predict_fn, variables = load_classifier(workdir)
    predict = freeze(predict_fn, variables)
    gaits = jnp.asarray(make_walkers(5, seed=77, num_frames=32).gaits)
    want = jax.jit(predict_fn)(variables, gaits)
    got = predict(gaits)
    np.testing.assert_allclose(got.logits, want.logits, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(got.features, want.features, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(predict(gaits[2]).logits, want.logits[2], atol=1e-4, rtol=1e-5)
    flops = lambda compiled: compiled.cost_analysis()["flops"]  # noqa: E731
    assert flops(predict.lower(gaits[:1]).compile()) < flops(jax.jit(predict_fn).lower(variables, gaits[:1]).compile())
    conv_fn, _ = load_classifier(workdir, temporal_impl="conv", graph_impl="project_first")  # other formulations,
    np.testing.assert_allclose(jax.jit(conv_fn)(variables, gaits).logits, want.logits, atol=1e-4, rtol=1e-5)  # same
    with pytest.raises(ValueError, match="unknown graph_impl"):
        load_classifier(workdir, graph_impl="official")


def test_eval_cli_writes_json_and_png(trained, tmp_path):
    import shutil

    _, workdir, result = trained
    out_json, out_png, copy = tmp_path / "eval.json", tmp_path / "cm.png", tmp_path / "copy"
    shutil.copytree(workdir, copy)  # a second run with the same numbers (the same run twice is refused)
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "eval.py"), f"--workdir={workdir}",
                           f"--workdir={copy}", f"--json={out_json}", f"--png={out_png}"],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.load(open(out_json))
    assert report["runs"][0]["accuracy"] == pytest.approx(result["test"]["accuracy"])
    assert report["aggregate"]["accuracy"]["std"] == 0.0 and report["aggregate"]["num_runs"] == 2
    assert "mean +- sample std (ddof=1) over 2 runs" in proc.stdout
    assert f"{workdir} (best checkpoint) on walkers:test" in proc.stdout  # the text names the checkpoint too
    first = json.loads(open(os.path.join(workdir, "provenance.jsonl")).readline())
    assert report["runs"][0]["trained_with"] == first  # what the checkpoint was trained with
    assert f"trained with stepjax {first['stepjax']}" in proc.stdout
    assert out_png.stat().st_size > 1000


def test_predict_cli_classifies_unlabelled_gaits(trained, tmp_path, capsys):
    """``python -m stepjax.predict``: unlabelled E-Gait keys and .npy arrays, variable lengths brought to the
    training length with the real frames for the affective features, as ``predict_fn`` with ``lengths``."""
    import csv
    import io

    from stepjax import load_classifier
    from stepjax.data.egait import write_egait
    from stepjax.data.preprocess import real_frame_counts, to_fixed_length
    from stepjax.data.walkers import make_walkers
    from stepjax.predict import main

    _, workdir, _ = trained
    w = make_walkers(6, seed=11, num_frames=32)
    gaits = [g[:32 - 3 * i] for i, g in enumerate(w.gaits)]
    write_egait(tmp_path / "walks.h5", None, {f"walk{i}": g.reshape(len(g), 48) for i, g in enumerate(gaits)},
                labelled=False)
    np.save(tmp_path / "walks.npy", np.asarray(w.gaits))
    predict_fn, variables = load_classifier(workdir)
    want = np.asarray(predict_fn(variables, to_fixed_length(gaits, 32), real_frame_counts(gaits, 32)).probs)
    main([f"--workdir={workdir}", f"--gaits={tmp_path / 'walks.h5'}"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["key"] for r in rows] == [f"walk{i}" for i in range(6)]
    got = np.array([[float(r[f"p_{n}"]) for n in ("Angry", "Neutral", "Happy", "Sad")] for r in rows])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert [r["emotion"] for r in rows] == [("Angry", "Neutral", "Happy", "Sad")[i] for i in want.argmax(-1)]
    main([f"--workdir={workdir}", f"--gaits={tmp_path / 'walks.npy'}", f"--out={tmp_path / 'p.json'}"])
    rows = json.loads((tmp_path / "p.json").read_text())
    full = np.asarray(predict_fn(variables, jnp.asarray(w.gaits)).probs)
    np.testing.assert_allclose([[r[f"p_{n}"] for n in ("Angry", "Neutral", "Happy", "Sad")] for r in rows], full,
                               atol=1e-5)
    assert "wrote 6 predictions" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((2, 32, 15, 3)))
    with pytest.raises(SystemExit) as exit_info:
        main([f"--workdir={workdir}", f"--gaits={tmp_path / 'bad.npy'}"])
    assert exit_info.value.code == 2 and "gait 0 must have shape (T, 16, 3), got (32, 15, 3)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # refused before any work, not written as CSV under another name
        main([f"--workdir={workdir}", f"--gaits={tmp_path / 'walks.npy'}", f"--out={tmp_path / 'p.txt'}"])
    assert exit_info.value.code == 2 and "--out must end in .csv or .json" in capsys.readouterr().err
    write_egait(tmp_path / "short.h5", None, {"long": np.zeros((8, 48)), "tiny": np.zeros((3, 48))}, labelled=False)
    with pytest.raises(SystemExit) as exit_info:  # named by its key, not its position in the file
        main([f"--workdir={workdir}", f"--gaits={tmp_path / 'short.h5'}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "1 of 2 gaits have fewer than 4 frames" in err and ": tiny (3);" in err


def test_clis_report_user_mistakes_without_a_traceback(trained, tmp_path):
    """A missing workdir or file is one ``<prog>: error: ...`` line and exit status 2, not a traceback (which
    STEPJAX_TRACEBACK=1 brings back)."""
    _, workdir, _ = trained
    missing = tmp_path / "no_such_run"
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text("--config.model.channels=(8,8,8)\n")
    outside = tmp_path / "my_config.py"  # a config of one's own, written like configs/step.py, elsewhere
    outside.write_text("import os, sys\nsys.path.insert(0, os.path.dirname(__file__))\nimport common\n")
    wrong_name = tmp_path / "wrong_name.py"  # common is found; a name in it is misspelt: no sys.path hint
    wrong_name.write_text(f"import sys\nsys.path.insert(0, {str(PROJECT_ROOT / 'configs')!r})\n"
                          "from common import classifier_modle\n")
    misspelt = tmp_path / "misspelt.py"
    misspelt.write_text(f"import sys\nsys.path.insert(0, {str(PROJECT_ROOT / 'configs')!r})\nimport step\n"
                        "def get_config():\n    cfg = step.get_config()\n    cfg.model.chanels = (8, 8, 8)\n"
                        "    return cfg\n")
    cases = [([str(PROJECT_ROOT / "eval.py"), f"--workdir={missing}"], "eval.py: error: .*no such run directory"),
             ([str(PROJECT_ROOT / "eval.py"), f"--workdir={workdir}", f"--features={missing}.h5"],
              "eval.py: error: .*no_such_run.h5"),
             (["-m", "stepjax.generation", f"--workdir={workdir}", f"--out-features={tmp_path / 'g.h5'}"],
              "stepjax.generation: error: .* holds a 'classifier' run, not a generator"),
             ([str(PROJECT_ROOT / "eval.py"), f"--workdir={workdir}", f"--json={missing}/out.json"],
              "eval.py: error: cannot write .*out.json: no such folder"),  # before the work, not after
             ([str(PROJECT_ROOT / "eval.py"), f"--workdir={workdir}", f"--png={tmp_path / 'cm.bogus'}"],
              "eval.py: error: --png .*cm.bogus: matplotlib cannot write 'bogus'; name it \\*.png"),
             ([str(PROJECT_ROOT / "eval.py"), f"--workdir={workdir}", "--labels=l.h5"], "--labels goes with --features"),
             ([str(PROJECT_ROOT / "eval.py"), f"--workdir={workdir}", f"--classifier={workdir}"],
              "--classifier is for generator workdirs"),
             ([str(PROJECT_ROOT / "eval.py"), f"--workdir={workdir}", "--per-class=4"],
              "--per_class is for generator workdirs"),  # not silently ignored
             ([str(PROJECT_ROOT / "eval.py"), f"--workdir={workdir}", "--classifier-checkpoint=latest"],
              "--classifier_checkpoint is for generator workdirs"),
             ([str(PROJECT_ROOT / "train.py"), "--config=configs/step.py", f"--workdir={tmp_path / 'w'}",
               "--config.train.epoch=1"], 'train.py: error: .*names no key.*Did you mean "epochs"'),
             ([str(PROJECT_ROOT / "train.py"), "--config=configs/step.py"], "train.py: error: flag --workdir=None"),
             ([str(PROJECT_ROOT / "train.py"), "--config=configs/step.py", f"--workdir={tmp_path / 'w'}",
               f"--flagfile={flagfile}", "--config.model.channels=(4,4,4)"],  # once (8, 8, 8, 4, 4, 4)
              r"train.py: error: --config.model.channels is given more than once"),
             ([str(PROJECT_ROOT / "train.py"), "--config=configs/stp.py", f"--workdir={tmp_path / 'w'}"],
              r"train.py: error: --config configs/stp.py: no such file \(configs/ holds .*step.py"),
             ([str(PROJECT_ROOT / "train.py"), "--config=configs/step.py", f"--workdir={tmp_path / 'w'}",
               "--config.data.num_gaits=abc"], "train.py: error: flag --config.data.num_gaits=abc: invalid literal"),
             ([str(PROJECT_ROOT / "train.py"), f"--config={outside}", f"--workdir={tmp_path / 'w'}"],
              r"train.py: error: the config file does not load: ModuleNotFoundError: .*'common' \(a config outside "
              r"configs/ reaches configs/common.py by putting that folder on sys.path"),
             ([str(PROJECT_ROOT / "train.py"), f"--config={wrong_name}", f"--workdir={tmp_path / 'w'}"],
              r"ImportError: cannot import name 'classifier_modle' from 'common' \([^)]*\)\n\(STEPJAX_TRACEBACK"),
             ([str(PROJECT_ROOT / "train.py"), f"--config={misspelt}", f"--workdir={tmp_path / 'w'}"],
              r"train.py: error: model.chanels is not a field of STEPClassifier; did you mean model.channels\?"),
             ([str(PROJECT_ROOT / "eval.py")], "eval.py: error: flag --workdir=None")]  # absl's flag errors too
    for args, message in cases:
        proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
        assert proc.returncode == 2 and re.search(message, proc.stderr), proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "w").exists()  # refused before any work
    proc = subprocess.run([sys.executable, *cases[0][0]], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          timeout=600, env={**os.environ, "STEPJAX_TRACEBACK": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "FileNotFoundError" in proc.stderr


def test_top_level_api_is_complete_and_lazy():
    """``import stepjax`` loads no JAX; the documented entry points resolve to the functions of their modules, and
    every submodule loads on first attribute access (``stepjax.models.STEPClassifier`` after ``import stepjax``)."""
    code = ("import sys, pkgutil, stepjax; assert 'jax' not in sys.modules, 'eager import'\n"
            "import stepjax.data, stepjax.training\n"
            "for pkg in (stepjax, stepjax.data, stepjax.training):\n"
            "    names = {m.name for m in pkgutil.iter_modules(pkg.__path__)}\n"
            "    assert all(getattr(pkg, n).__name__ == f'{pkg.__name__}.{n}' for n in names), pkg\n"
            "assert stepjax.models.STEPClassifier.__name__ == 'STEPClassifier'\n"
            "import stepjax.inference as i, stepjax.generation as g, stepjax.affective as a, stepjax.data.egait as e\n"
            "assert (stepjax.load_classifier, stepjax.freeze) == (i.load_classifier, i.freeze)\n"
            "assert (stepjax.load_generator, stepjax.generate) == (g.load_generator, g.generate)\n"
            "assert stepjax.affective_features is a.affective_features and stepjax.read_egait is e.read_egait\n"
            "assert set(stepjax.__all__) <= set(dir(stepjax))\n"
            "try:\n    stepjax.nope\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit('no error')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_baseline_step_trains_checkpoints_and_loads(tmp_path):
    """Baseline-STEP (no affective features): its preprocessor has no affective arrays; the run must still
    checkpoint, restore and serve predictions (a zero-size normaliser once made orbax refuse the save)."""
    from stepjax import load_classifier
    from stepjax.data.walkers import make_walkers

    cfg = tiny_config(epochs=1)
    cfg.preprocess.num_affective = 0
    workdir = str(tmp_path / "baseline")
    result = fit_classifier(cfg, workdir, progress=False, log=lambda *a: None)
    assert result["test"]["num_gaits"] > 0
    predict_fn, variables = load_classifier(workdir)
    assert variables["preprocessor"].aff_center is None
    gaits = jnp.asarray(make_walkers(3, seed=5, num_frames=32).gaits)
    out = jax.jit(predict_fn)(variables, gaits)
    assert out.logits.shape == (3, 4) and np.all(np.isfinite(out.logits))
    # no affective features to carry a NaN: without predict_fn's explicit mask XLA's fused ReLUs can drop it
    nan_out = jax.jit(predict_fn)(variables, gaits.at[1, 3, 5, 1].set(jnp.nan))
    assert np.all(np.isnan(nan_out.probs[1])) and np.all(np.isfinite(np.asarray(nan_out.probs)[[0, 2]]))


def test_bfloat16_mixed_precision_step_keeps_float32_master_weights():
    import optax

    """``compute_dtype='bfloat16'``: parameters, optimizer state, BN statistics and the loss stay float32,
    the step's loss agrees with the float32 step to bfloat16 accuracy, and the two updates point the same way."""
    from stepjax.data.pipeline import Arrays
    from stepjax.training.fit import build_classifier
    from stepjax.training.loop import classifier_train_step
    from stepjax.training.state import create_train_state

    cfg = tiny_config()
    rng = np.random.default_rng(0)
    batch = Arrays(jnp.asarray(rng.normal(size=(16, 32, 16, 3)), jnp.float32),
                   jnp.asarray(rng.normal(size=(16, 29)), jnp.float32), jnp.asarray(np.arange(16) % 4))
    model = build_classifier(cfg)
    state = create_train_state(model, optax.sgd(1.0), jax.random.PRNGKey(0), batch.gaits[:1],
                               batch.affective[:1])  # update = -gradient

    @jax.jit
    def both(state):
        return tuple(classifier_train_step(state, batch, jax.random.PRNGKey(1), compute_dtype=d)
                     for d in ("float32", "bfloat16"))

    (s32, m32), (s16, m16) = both(state)
    for leaf in jax.tree_util.tree_leaves((s16.params, s16.opt_state, s16.batch_stats, m16)):
        assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
    assert abs(float(m16["loss"]) - float(m32["loss"])) <= 0.02 * float(m32["loss"])
    d32 = np.concatenate([np.ravel(a - b) for a, b in zip(jax.tree_util.tree_leaves(s32.params),
                                                         jax.tree_util.tree_leaves(state.params))])
    d16 = np.concatenate([np.ravel(a - b) for a, b in zip(jax.tree_util.tree_leaves(s16.params),
                                                         jax.tree_util.tree_leaves(state.params))])
    assert np.dot(d32, d16) / (np.linalg.norm(d32) * np.linalg.norm(d16)) > 0.9


def test_train_step_updates_the_batchnorm_running_statistics():
    """One ``classifier_train_step`` moves the input ``data_bn``'s running statistics as PyTorch does:
    ``mean <- 0.9 mean + 0.1 batch_mean`` and ``var <- 0.9 var + 0.1 unbiased_batch_var`` per (joint, coord),
    over the batch's (N, T) values (computed here with numpy)."""
    import optax

    from stepjax.data.pipeline import Arrays
    from stepjax.training.fit import build_classifier
    from stepjax.training.loop import classifier_train_step
    from stepjax.training.state import create_train_state

    rng = np.random.default_rng(1)
    gaits = rng.normal(size=(8, 32, 16, 3)).astype(np.float32) * 0.3 + 1.0
    batch = Arrays(jnp.asarray(gaits), jnp.asarray(rng.normal(size=(8, 29)), jnp.float32), jnp.asarray(np.arange(8) % 4))
    state = create_train_state(build_classifier(tiny_config()), optax.sgd(0.1), jax.random.PRNGKey(0),
                               batch.gaits[:1], batch.affective[:1])
    new, _ = jax.jit(classifier_train_step)(state, batch, jax.random.PRNGKey(1))
    old_bn, new_bn = state.batch_stats["data_bn"]["bn"], new.batch_stats["data_bn"]["bn"]
    flat = gaits.reshape(-1, 16, 3).astype(np.float64)
    np.testing.assert_allclose(new_bn["mean"], 0.9 * old_bn["mean"] + 0.1 * flat.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_bn["var"], 0.9 * old_bn["var"] + 0.1 * flat.var(0, ddof=1), rtol=1e-5, atol=1e-6)
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(new.params),
                                                   jax.tree_util.tree_leaves(state.params))]
    assert sum(moved) > len(moved) // 2


def _adam_reference(params, grads, lr, wd_coupled=0.0, wd_decoupled=0.0, decay=None, clip=None,
                    b1=0.9, b2=0.999, eps=1e-8):
    """Adam written out in float64 numpy, one parameter leaf at a time (``params``/``grads``: dicts of arrays,
    ``grads`` a list over steps): the torch Adam formulas with coupled L2 (``g + wd * p`` before the moments),
    AdamW's decoupled decay (``p -= lr * wd * p`` on the leaves in ``decay``) and global-norm clipping of the raw
    gradient before either."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    for t, g in enumerate(grads, start=1):
        g = {k: np.asarray(a, np.float64) for k, a in g.items()}
        if clip is not None:
            norm = np.sqrt(sum(np.sum(a ** 2) for a in g.values()))
            g = {k: a * min(1.0, clip / norm) for k, a in g.items()}
        for k in p:
            gk = g[k] + wd_coupled * p[k]
            m[k] = b1 * m[k] + (1 - b1) * gk
            v2[k] = b2 * v2[k] + (1 - b2) * gk ** 2
            step = (m[k] / (1 - b1 ** t)) / (np.sqrt(v2[k] / (1 - b2 ** t)) + eps)
            if decay is not None and k in decay:
                step = step + wd_decoupled * p[k]
            p[k] = p[k] - lr * step
    return p


@pytest.mark.parametrize("optimizer,clip", [("adam_l2", None), ("adamw", None), ("adam_l2", 1.0)])
def test_optimizers_match_hand_written_adam(optimizer, clip):
    """``make_optimizer``: 'adam_l2' = torch Adam with coupled L2 on every parameter (the official recipe), 'adamw'
    = decoupled decay on kernels only (not biases, BN scales, edge importances), ``grad_clip`` = global-norm
    clipping of the raw gradient before the optimizer; three steps against :func:`_adam_reference` (float64),
    with gradients of very different norms (10, 0.5, 3) so that clipping before vs after Adam differs."""
    import ml_collections
    import optax

    from stepjax.training.state import make_optimizer

    rng = np.random.default_rng(0)
    shapes = {"kernel": (3, 4), "bias": (4,), "scale": (4,), "edge_importance": (2, 2)}
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    grads = []
    for norm in (10.0, 0.5, 3.0):
        g = {k: rng.normal(size=s) for k, s in shapes.items()}
        total = np.sqrt(sum(np.sum(a ** 2) for a in g.values()))
        grads.append({k: (a * norm / total).astype(np.float32) for k, a in g.items()})
    lr, wd = 0.5, 0.1
    cfg = ml_collections.ConfigDict(dict(optimizer=optimizer, lr=lr, weight_decay=wd, schedule="constant",
                                         epochs=1, grad_clip=clip or 0.0))
    tx = make_optimizer(cfg, 1)
    with pytest.raises(ValueError, match="needs steps_per_epoch to place the learning-rate schedule"):
        make_optimizer(cfg, None)  # was a TypeError deep in the schedule (piecewise, cosine)
    tree = {"layer": {k: jnp.asarray(v) for k, v in params.items()}}
    state = tx.init(tree)
    for g in grads:
        updates, state = tx.update({"layer": {k: jnp.asarray(v) for k, v in g.items()}}, state, tree)
        tree = optax.apply_updates(tree, updates)
    if optimizer == "adam_l2":
        want = _adam_reference(params, grads, lr, wd_coupled=wd, clip=clip)
    else:
        want = _adam_reference(params, grads, lr, wd_decoupled=wd, decay={"kernel"}, clip=clip)
    for k in shapes:
        np.testing.assert_allclose(np.asarray(tree["layer"][k]), want[k], rtol=0, atol=3e-5, err_msg=k)  # float32 steps of 0.5


@pytest.mark.parametrize("epochs", [1000, 50])
def test_official_milestones_scale_with_the_epochs(epochs):
    """configs/step_official.py: lr 1e-3, x0.1 at 50 / 75 / 87.5 % of the epochs (500/750/875 of 1000, the
    official recipe), also when the run is shortened with --config.train.epochs."""
    import step_official
    from stepjax.training.state import make_schedule

    train = step_official.get_config().train
    train.epochs = epochs
    lr = make_schedule(train, steps_per_epoch=3)
    at = lambda e: float(lr(e * 3))  # noqa: E731
    m = [round(f * epochs) for f in (0.5, 0.75, 0.875)]
    assert [at(0), at(m[0] - 1), at(m[0]), at(m[1]), at(m[2]), at(epochs - 1)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-5, 1e-6, 1e-6], rel=1e-5)


def test_milestones_on_the_same_epoch_each_decay():
    """A 3-epoch run of the official fractions puts two milestones on epoch 2 (round(1.5) = round(2.25) = 2):
    both apply there, as in PyTorch's MultiStepLR (a dict keyed by step once kept only one)."""
    import step_official
    from stepjax.training.state import make_schedule

    train = step_official.get_config().train
    train.epochs = 3
    lr = make_schedule(train, steps_per_epoch=2)
    assert [float(lr(s)) for s in range(6)] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 1e-5, 1e-5], rel=1e-5)


@pytest.mark.parametrize("field,value,match", [
    ("epochs", 0, "epochs must be a positive integer"), ("compute_dtype", "bf16", r"compute_dtype must be one of"),
    ("batch_size", 0, "batch_size"), ("lr", 0.0, "lr must be > 0"),
    # values that would silently train something else: a negative clip norm flips every gradient (ascent)
    ("grad_clip", -1.0, r"grad_clip must be a finite number >= 0 \(0 = no clipping\)"), ("label_smoothing", 2.0, "label_smoothing"),
    ("weight_decay", -1.0, "weight_decay"), ("warmup_epochs", -1, "warmup_epochs"), ("momentum", 1.5, "momentum"),
    ("weight_decay", float("inf"), "weight_decay must be a finite number"), ("optimizer", "adam", "optimizer"),
    ("checkpoint_every", 0, "checkpoint_every must be an integer >= 1"),
    ("data_parallel", True, "train.data_parallel is for single runs")])
def test_train_config_mistakes_fail_before_any_work(tmp_path, field, value, match):
    from stepjax.training.run import train_from_config

    cfg = tiny_config()
    if field == "checkpoint_every":
        cfg.checkpoint_every = value
    elif field == "data_parallel":  # the vmapped k-fold / seeds runs (configs/step_cv.py)
        import step_cv

        cfg = step_cv.get_config()
        cfg.train.data_parallel = True
    else:
        cfg.train[field] = value
    with pytest.raises(ValueError, match=match):
        train_from_config(cfg, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_losses_and_models_refuse_rates_outside_their_range():
    from stepjax.losses import classification_loss
    from stepjax.models import STEPClassifier

    logits, labels = jnp.zeros((2, 4)), jnp.array([0, 1])
    for smoothing in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0, 1\]"):
            classification_loss(logits, labels, label_smoothing=smoothing)
    assert float(classification_loss(logits, labels, label_smoothing=1.0)) == pytest.approx(np.log(4))
    for kwargs in (dict(head_dropout=1.5), dict(dropout=1.0), dict(dropout=-0.1)):
        model = STEPClassifier(channels=(4, 4, 4), kernel_size=3, hidden=8, num_affective=29, **kwargs)
        with pytest.raises(ValueError, match=r"dropout rates must lie in \[0, 1\)"):
            jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 16, 3)), jnp.zeros((1, 29)))


def test_evaluating_an_empty_split_names_one_that_is_not(trained, monkeypatch, tmp_path):
    """A run trained without a test part (``data.split`` with a test fraction of 0): ``eval.py`` (default
    ``--split test``) says so and names the split to evaluate instead."""
    import shutil

    from stepjax import evaluation
    from stepjax.data import pipeline
    from stepjax.training.progress import write_split

    cfg, trained_dir, _ = trained
    workdir = str(tmp_path / "no_test")
    shutil.copytree(trained_dir, workdir)
    real = pipeline.split_dataset
    monkeypatch.setattr(pipeline, "split_dataset", lambda raw, c: real(raw, c)._replace(test=np.array([], int)))
    raw = pipeline.load_source(cfg.data)
    write_split(workdir, pipeline.split_dataset(raw, cfg.data), fingerprint=raw.fingerprint())  # as it trained
    with pytest.raises(ValueError, match=r"split 'test' of .* is empty \(its data.split is .*\); evaluate --split val"):
        evaluation.evaluate_workdir(workdir)
    assert evaluation.evaluate_workdir(workdir, split="val")["num_gaits"] == len(real(
        pipeline.load_source(cfg.data), cfg.data).val)


def test_eval_on_files_scores_held_out_gaits_and_refuses_the_runs_own_training_gaits(trained, monkeypatch, tmp_path):
    """``eval.py --features F``: a file of the run's held-out gaits gives the numbers of ``--split test``; a file
    that holds gaits the run trained or was selected on (e.g. the file it was trained on, README's
    ``eval.py --workdir runs/egait --features features.h5``) is refused, as its score would not be a test
    number; where the run's own data no longer loads, a warning says the check was not made."""
    from stepjax import evaluation
    from stepjax.data import pipeline
    from stepjax.data.egait import write_egait_arrays

    cfg, workdir, result = trained
    raw = pipeline.load_source(cfg.data)
    split = pipeline.split_dataset(raw, cfg.data)

    def files(name, idx):
        f, l = str(tmp_path / f"{name}.h5"), str(tmp_path / f"{name}_labels.h5")
        write_egait_arrays(f, l, raw.gaits[idx], raw.labels[idx])
        return dict(features=f, labels=l)

    held_out = evaluation.evaluate_workdir(workdir, **files("test", split.test))
    assert held_out["num_gaits"] == len(split.test)
    assert held_out["accuracy"] == pytest.approx(result["test"]["accuracy"])
    own = files("all", np.arange(len(raw.labels)))  # every gait of the run's data, as its training file holds

    def no_inference(*args, **kwargs):
        raise AssertionError("a file that is refused is refused before inference")

    monkeypatch.setattr(evaluation, "predict_gaits", no_inference)
    with pytest.raises(ValueError, match=rf"{len(split.train) + len(split.val)} of the {len(raw.labels)} gaits .* "
                                         rf"trained on or was selected on \({len(split.train)} of its train part, "
                                         rf"{len(split.val)} of its val part\): .* not a test number"):
        evaluation.evaluate_workdir(workdir, **own)
    one_val = files("one_val", np.concatenate([split.test, split.val[:1]]))
    with pytest.raises(ValueError, match=r"1 of the .* was selected on \(1 of its val part\)"):
        evaluation.evaluate_workdir(workdir, **one_val)

    monkeypatch.undo()
    real_split = pipeline.split_dataset
    monkeypatch.setattr(pipeline, "split_dataset", lambda raw, c: real_split(raw, c)._replace(train=split.train[1:]))
    with pytest.warns(UserWarning, match=r"could not be checked .* \(its data or split is not the one it trained on\)"):
        evaluation.evaluate_workdir(workdir, **own)  # walkers: no files recorded, the split is compared

    def unreadable(data_cfg):
        raise FileNotFoundError("features.h5: no such file")

    monkeypatch.setattr(pipeline, "load_source", unreadable)
    with pytest.warns(UserWarning, match=r"could not be checked .* \(its own data does not load as in training: "
                                         r"features.h5: no such file\)"):
        evaluation.evaluate_workdir(workdir, **own)


def test_evaluation_refuses_silent_wrong_numbers(monkeypatch):
    """NaN logits are an error (their argmax would count as 'Angry'), and a mean +- std over runs trained on
    different data configs (hence different test splits) is refused."""
    from stepjax import evaluation
    from stepjax.inference import Prediction
    from stepjax.training import checkpoint

    def predict_fn(variables, gaits, lengths=None):
        logits = jnp.where(jnp.arange(gaits.shape[0])[:, None] == 2, jnp.nan, jnp.ones((gaits.shape[0], 4)))
        return Prediction(logits, logits, logits)

    with pytest.raises(ValueError, match=r"non-finite logits for 1 of 4 gaits \(first indices \[2\]\)"):
        evaluation.predict_labels(predict_fn, None, np.zeros((4, 8, 16, 3), np.float32))
    for chunk in (0, -1, 2.5):  # once range()'s or concatenate's own errors
        with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
            evaluation.predict_labels(predict_fn, None, np.zeros((4, 8, 16, 3), np.float32), chunk=chunk)
    with pytest.raises(ValueError, match=r"no gaits: shape \(0, 8, 16, 3\)"):
        evaluation.predict_labels(predict_fn, None, np.zeros((0, 8, 16, 3), np.float32))
    from stepjax.gen_metrics import classifier_outputs  # gen_eval's recognition accuracy, same refusal

    with pytest.raises(ValueError, match=r"non-finite logits for 1 of 4 gaits"):
        classifier_outputs(predict_fn, None, np.zeros((4, 8, 16, 3), np.float32), chunk=3)
    monkeypatch.setattr(checkpoint, "read_run_config", lambda w: {"data": {"num_gaits": len(w)}})
    with pytest.raises(ValueError, match="different data configs"):
        evaluation.evaluate_workdirs(["a", "bb"])
    with pytest.raises(ValueError, match=r"the same run is given more than once \(runs/a, runs/a/\)"):
        evaluation.evaluate_workdirs(["runs/a", "runs/b", "runs/a/"])  # would count as two runs of a std


def test_a_model_with_fewer_classes_than_the_data_is_refused_by_name(monkeypatch, tmp_path):
    """A 3-class model on 4-class data: label 3 has no output, and inside the jitted step it would only make the
    loss NaN ("lower train.lr"). Refused before training, in single runs and in vmapped k-fold / seeds runs."""
    from stepjax.training import multirun

    cfg = tiny_config(epochs=1, num_classes=3)
    monkeypatch.setattr(multirun, "build_runset", lambda *a, **k: pytest.fail("the runs were built first"))
    with pytest.raises(ValueError, match=r"labels up to 3 \(\d+ gaits >= 3\) but the model predicts 3 classes"):
        fit_classifier(cfg, str(tmp_path / "w"), progress=False, log=lambda *a: None)
    cfg.runs = ml_collections.ConfigDict(dict(mode="seeds", num_seeds=2))
    with pytest.raises(ValueError, match=r"labels up to 3 .* model predicts 3 classes"):
        multirun.fit_classifier_runs(cfg, progress=False)


def test_predict_fn_carries_the_training_length(trained):
    """``load_classifier``'s ``predict_fn.num_frames`` is the run's training length, which ``predict_gaits`` takes
    by default (a user's gaits of other lengths need it, and the checkpoint knows it)."""
    from stepjax import load_classifier
    from stepjax.data.walkers import make_walkers
    from stepjax.inference import predict_gaits

    cfg, workdir, _ = trained
    predict_fn, variables = load_classifier(workdir)
    assert predict_fn.num_frames == cfg.data.num_frames == 32
    gaits = [np.asarray(g) for g in make_walkers(3, seed=9, num_frames=45).gaits]
    gaits[1] = gaits[1][:20]
    by_default = predict_gaits(predict_fn, variables, gaits)
    np.testing.assert_array_equal(by_default.logits, predict_gaits(predict_fn, variables, gaits, 32).logits)
    with pytest.raises(ValueError, match="pass num_frames"):
        predict_gaits(lambda *a: None, variables, gaits)
