import h5py
import numpy as np
import pytest

from stepjax.data import egait
from conftest import EGAIT_SAMPLES, require


def _gaits(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return {f"{i:03d}_Angry_positions.csv": rng.normal(size=(20 + i, 16, 3)).astype(np.float32) for i in range(n)}


def test_round_trip(tmp_path):
    gaits = _gaits()
    labels = {k: i % 4 for i, k in enumerate(gaits)}
    egait.write_egait(tmp_path / "f.h5", tmp_path / "l.h5", gaits, labels)
    data = egait.read_egait(tmp_path / "f.h5", tmp_path / "l.h5")
    assert data.keys == tuple(sorted(gaits))
    for k, g in zip(data.keys, data.gaits):
        np.testing.assert_array_equal(g, gaits[k])
        assert g.dtype == np.float32
    np.testing.assert_array_equal(data.labels, [labels[k] for k in data.keys])
    assert data.labels.dtype == np.int32
    np.testing.assert_array_equal(data.lengths, [20, 21, 22])


def test_keys_matched_by_name_not_position(tmp_path):
    gaits = _gaits()
    keys = sorted(gaits)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        for k in keys:
            f[k] = gaits[k].reshape(-1, 48)
    with h5py.File(tmp_path / "l.h5", "w") as f:  # labels written in reverse order with other values
        for i, k in enumerate(reversed(keys)):
            f[k] = np.int64(i)
    data = egait.read_egait(tmp_path / "f.h5", tmp_path / "l.h5")
    np.testing.assert_array_equal(data.labels, [2, 1, 0])


def test_synthetic_labels_from_key_suffix(tmp_path):
    gaits = np.zeros((4, 75, 16, 3), np.float32) + np.arange(4)[:, None, None, None]
    keys = egait.write_egait_arrays(tmp_path / "synth.h5", None, gaits, [3, 0, 2, 1])
    assert keys[0] == "00001_Sad"
    data = egait.read_egait(tmp_path / "synth.h5")
    np.testing.assert_array_equal(data.labels, [3, 0, 2, 1])
    assert egait.label_from_key("00003_happy") == 2
    # without a labels file the key's word is the label: given labels that contradict it are an error, not dropped
    with pytest.raises(ValueError, match=r"key 'b_Sad' \(Sad\) was given label 0 \(2 such keys\)"):
        egait.write_egait_arrays(tmp_path / "x.h5", None, gaits[:3], [2, 0, 0], keys=["a_Happy", "b_Sad", "c_Neutral"])
    with pytest.raises(ValueError, match="labelled=False, which writes no labels"):
        egait.write_egait(tmp_path / "x.h5", None, {"x_Happy": gaits[0]}, {"x_Happy": 2}, labelled=False)
    assert not (tmp_path / "x.h5").exists()
    egait.write_egait(tmp_path / "x.h5", None, {"x_Happy": gaits[0]}, {"x_Happy": 2})  # agreeing labels are fine
    np.testing.assert_array_equal(egait.read_egait(tmp_path / "x.h5").labels, [2])


@pytest.mark.parametrize("problem, match", [
    ("missing_label", r"l\.h5: no label for key '001_x'"),
    ("extra_label", r"no gait for key '999_x'"),
    ("columns", r"'000_x' has shape \(10, 47\)"),
    ("nan", r"'001_x' contains NaN/inf \(first at frame 3, column 5\)"),
    ("empty", r"f\.h5: file holds no gaits"),
    ("bad_label", r"label of key '000_x' is 7"),
    ("string_label", r"label of key '000_x' is .*expected one integer"),
    ("bool_label", r"label of key '000_x' is .*dtype bool"),
    ("group_label", r"label of key '000_x' is a group"),
    ("vector_label", r"label of key '000_x' is \[0\. 0\. 0\. \.\.\. .*shape \(10, 48\)"),
    ("not_hdf5", r"l\.h5: not an HDF5 file"),
    ("string_gait", r"f\.h5: key '001_x' has dtype .*S.*expected real numbers"),
    ("beyond_float32", r"'001_x' contains NaN/inf \(first at frame 2, column 7: 1e\+39, beyond float32's range\)"),
    ("truncated", r"f\.h5: cannot be read, a truncated or damaged HDF5 file\?"),
])
def test_bad_files_give_clear_errors(tmp_path, problem, match):
    f_path, l_path = tmp_path / "f.h5", tmp_path / "l.h5"
    feats = {"000_x": np.zeros((10, 48)), "001_x": np.zeros((10, 48))}
    labels = {"000_x": 0, "001_x": 1}
    if problem == "missing_label":
        del labels["001_x"]
    if problem == "extra_label":
        labels["999_x"] = 2
    if problem == "columns":
        feats["000_x"] = np.zeros((10, 47))
    if problem == "nan":
        feats["001_x"][3, 5] = np.nan
    if problem == "empty":
        feats = {}
    if problem == "beyond_float32":  # finite in the file's float64, inf in float32
        feats["001_x"][2, 7] = 1e39
    if problem == "string_gait":
        feats["001_x"] = np.full((10, 48), b"x")
    if problem == "bad_label":
        labels["000_x"] = 7
    odd = {"string_label": "Sad", "bool_label": np.bool_(True), "vector_label": np.zeros((10, 48))}
    with h5py.File(f_path, "w") as f:
        for k, v in feats.items():
            f[k] = v
    with h5py.File(l_path, "w") as f:
        for k, v in labels.items():
            if k == "000_x" and problem == "group_label":
                f.create_group(k)
            else:
                f[k] = odd.get(problem, np.int64(v)) if k == "000_x" else np.int64(v)
    if problem == "not_hdf5":
        l_path.write_text("not hdf5")
    if problem == "truncated":  # a copy cut short: the HDF5 signature is intact
        f_path.write_bytes(f_path.read_bytes()[:1500])
    with pytest.raises(egait.EGaitFormatError, match=match):
        egait.read_egait(f_path, l_path)


def test_missing_file_and_bad_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        egait.read_egait(tmp_path / "nope.h5")
    egait.write_egait(tmp_path / "f.h5", tmp_path / "l.h5", {"a": np.zeros((2, 16, 3))}, {"a": 0})
    with pytest.raises(egait.EGaitFormatError, match=r"f\.h5: key 'a' does not end in one of .*eval\.py --labels.*"
                                                     r"read_egait_gaits reads gaits without labels"):
        egait.read_egait(tmp_path / "f.h5")
    with pytest.raises(ValueError, match="exactly the keys"):
        egait.write_egait(tmp_path / "g.h5", tmp_path / "m.h5", {"a": np.zeros((2, 16, 3))}, {"b": 0})


def test_reads_real_egait_samples():
    data = egait.read_egait(require(EGAIT_SAMPLES / "sample_features.h5"), EGAIT_SAMPLES / "sample_labels.h5")
    assert data.keys == ("002_Sad_positions.csv", "004_Angry_positions.csv", "008_Happy_positions.csv")
    np.testing.assert_array_equal(data.lengths, [32, 26, 30])
    np.testing.assert_array_equal(data.labels, [3, 1, 1])  # perceived labels, not the key's word
    assert all(np.abs(g[:, 0]).max() == 0 for g in data.gaits)  # root-relative


@pytest.mark.parametrize("labels,match", [([0, 1, 2, -1], r"entries \[3\] are \[-1\]"), ([0, 7, 1, 2], r"\[7\]"),
                                          ([0, 1.5, 1, 2], r"\[1.5\]")])
def test_writer_refuses_labels_outside_the_four_classes(tmp_path, labels, match):
    gaits = np.zeros((4, 5, 16, 3))
    with pytest.raises(ValueError, match=match):
        egait.write_egait_arrays(tmp_path / "f.h5", tmp_path / "l.h5", gaits, labels)
    with pytest.raises(ValueError, match=match):
        egait.write_egait(tmp_path / "f.h5", tmp_path / "l.h5", {f"k{i}": g for i, g in enumerate(gaits)},
                          {f"k{i}": l for i, l in enumerate(labels)})


def test_writer_refuses_keys_its_reader_would_refuse(tmp_path):
    with pytest.raises(ValueError, match="without '/'"):
        egait.write_egait(tmp_path / "f.h5", tmp_path / "l.h5", {"subj1/001": np.zeros((5, 48))}, {"subj1/001": 2})
    with pytest.raises(ValueError, match="non-empty strings"):
        egait.write_egait(tmp_path / "f.h5", tmp_path / "l.h5", {7: np.zeros((5, 48))}, {7: 2})
    with pytest.raises(ValueError, match=r"keys must be distinct, repeated: \['a'\]"):  # not a gait silently lost
        egait.write_egait_arrays(tmp_path / "f.h5", tmp_path / "l.h5", np.zeros((3, 5, 16, 3)), [0, 1, 2],
                                 keys=["a", "a", "b"])
    with pytest.raises(ValueError, match=r"add a leading axis"):
        egait.write_egait_arrays(tmp_path / "f.h5", tmp_path / "l.h5", np.zeros((5, 48)), [0])
    with pytest.raises(ValueError, match=r"gaits of different shapes .*pass write_egait a dict"):
        egait.write_egait_arrays(tmp_path / "f.h5", None, [np.zeros((5, 16, 3)), np.zeros((6, 16, 3))], [0, 1])
    for features, labels in (("f.npy", "l.h5"), ("f.h5", "l.NPZ")):  # stepjax.predict reads *.npy as NumPy
        with pytest.raises(ValueError, match=r"an HDF5 file under a NumPy extension .*; name it \*\.h5"):
            egait.write_egait_arrays(tmp_path / features, tmp_path / labels, np.zeros((1, 5, 16, 3)), [0])
    assert not list(tmp_path.iterdir())


def test_a_failed_write_leaves_earlier_files_whole_and_never_mixes_gaits_with_labels(tmp_path, monkeypatch):
    """Every gait is checked before anything is written, and each file is written through a temporary file
    renamed when complete: a bad gait (or a crash) leaves an earlier file as it was, never a truncated one that
    reads back as fewer gaits. One path for both features and labels is refused (the labels would replace the
    gaits)."""
    f, l = tmp_path / "f.h5", tmp_path / "l.h5"
    good = _gaits()
    egait.write_egait(f, l, good, {k: 1 for k in good})
    bad = {**_gaits(4, seed=1)}
    bad[sorted(bad)[2]][3, 5, 1] = np.nan
    with pytest.raises(ValueError, match="contains NaN/inf"):
        egait.write_egait(f, l, bad, {k: 2 for k in bad})
    with pytest.raises(ValueError, match="dtype <U1"):
        egait.write_egait(f, l, {"a": np.full((5, 48), "x")}, {"a": 0})
    with pytest.raises(ValueError, match="the features and labels paths are the same file"):
        egait.write_egait(f, tmp_path / "." / "f.h5", good, {k: 1 for k in good})
    def crash(*args):  # a failure after both temporary files are complete: nothing may have been replaced yet
        raise OSError("disk full")

    monkeypatch.setattr(egait.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        egait.write_egait(f, l, _gaits(5, seed=2), {k: 3 for k in _gaits(5, seed=2)})
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match=r"nodir/f.h5: no such folder"):
        egait.write_egait(tmp_path / "nodir" / "f.h5", None, good, labelled=False)
    back = egait.read_egait(f, l)
    assert back.keys == tuple(good) and np.all(back.labels == 1) and sorted(p.name for p in tmp_path.iterdir()) == [
        "f.h5", "l.h5"]  # no temporary file left behind
    np.testing.assert_allclose(back.gaits[0], good[back.keys[0]], rtol=1e-6)


def test_generator_conditioning_refuses_labels_outside_the_classes():
    from stepjax.models.cvae import onehot_labels

    np.testing.assert_array_equal(onehot_labels(np.array([0, 3]), 4), np.eye(4)[[0, 3]])
    for bad in ([4, 9], [-1, 2]):
        with pytest.raises(ValueError, match="whole numbers in 0..3"):
            onehot_labels(np.array(bad), 4)
    with pytest.raises(ValueError, match=r"one-hot \(2, 4\)"):
        onehot_labels(np.eye(3)[:2], 4)
    with pytest.raises(ValueError, match="must be integer class indices, got dtype float32"):
        onehot_labels(np.array([0.5], np.float32), 4)
