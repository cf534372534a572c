"""Run provenance (``provenance.jsonl``): what each start and resume of a run was trained with."""

import json
import shutil
import subprocess

import jax
import pytest

import stepjax
from stepjax.training import provenance


def test_a_record_names_the_software_and_devices_of_this_process(tmp_path):
    record = provenance.append(tmp_path, "start", 0, log=pytest.fail)
    assert provenance.read(tmp_path) == [record]
    assert record["event"] == "start" and record["epoch"] == 0
    assert record["stepjax"] == stepjax.__version__
    assert record["packages"]["jax"] == jax.__version__ and set(record["packages"]) == set(provenance.PACKAGES)
    assert record["backend"] == jax.default_backend()
    assert record["devices"] == f"{jax.device_count()} x {jax.devices()[0].device_kind}"
    assert (record["git_commit"], record["code_diff"]) == provenance.git_state()


def test_resume_under_other_software_is_said_and_the_same_software_is_not(tmp_path):
    provenance.append(tmp_path, "start", 0, log=pytest.fail)
    provenance.append(tmp_path, "resume", 3, log=pytest.fail)  # same process: nothing to say
    path = tmp_path / provenance.PROVENANCE_FILE
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    first["packages"]["flax"], first["stepjax"] = "0.0.0", "0.0.0"
    path.write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    said = []
    provenance.append(tmp_path, "resume", 5, log=said.append)
    assert len(said) == 1
    assert f"flax 0.0.0 -> {provenance.current('start')['packages']['flax']}" in said[0]
    assert f"stepjax 0.0.0 -> {stepjax.__version__}" in said[0]
    assert [r["epoch"] for r in provenance.read(tmp_path)] == [0, 3, 5]


def test_a_resume_under_another_cpu_count_or_random_number_setup_says_so(tmp_path, monkeypatch):
    """XLA:CPU's results follow the CPUs the process may use (one core and two round differently from the first
    epoch) and every random draw follows jax's PRNG setup (``JAX_THREEFRY_PARTITIONABLE``): a resume under
    another one continues another run, so the note says so; records from before these keys were kept compare
    nothing for them."""
    import os

    record = provenance.append(tmp_path, "start", 0, log=pytest.fail)
    assert record["cpus"] >= 1 and record["jax_prng"].startswith(str(jax.config.jax_default_prng_impl))
    said = []
    old = jax.config.jax_threefry_partitionable
    jax.config.update("jax_threefry_partitionable", not old)
    try:
        provenance.append(tmp_path, "resume", 2, log=said.append)
    finally:
        jax.config.update("jax_threefry_partitionable", old)
    assert len(said) == 1 and "other machine setup (jax_prng threefry2x32, " in said[0], said
    said.clear()
    more = record["cpus"] + 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(more)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: more)
    provenance.append(tmp_path, "resume", 3, log=said.append)
    assert len(said) == 1 and f"cpus {record['cpus']} -> {more}" in said[0], said
    monkeypatch.undo()
    path = tmp_path / provenance.PROVENANCE_FILE
    older = {k: v for k, v in record.items() if k not in ("cpus", "jax_prng")}  # a record of an earlier stepjax
    path.write_text(json.dumps(older) + "\n")
    provenance.append(tmp_path, "resume", 4, log=pytest.fail)


def test_a_line_cut_off_by_a_crash_is_skipped_and_does_not_swallow_the_next_record(tmp_path):
    path = tmp_path / provenance.PROVENANCE_FILE
    path.write_text('{"event": "start", "epoch": 0}\n{"event": "resume", "ep')  # killed mid-write
    provenance.append(tmp_path, "resume", 1, log=lambda *a: None)
    records = provenance.read(tmp_path)
    assert [(r["event"], r["epoch"]) for r in records] == [("start", 0), ("resume", 1)]
    assert provenance.read(tmp_path / "no_such_run") == []


def test_software_changes_and_summary():
    old = {"stepjax": "0.1.0", "git_commit": "a" * 40, "code_diff": None, "python": "3.11.7",
           "packages": {"jax": "0.10.2", "numpy": "2.0.0"}, "devices": "1 x cpu"}
    new = {**old, "code_diff": "3f2a" * 4, "packages": {"jax": "0.10.3", "numpy": "2.0.0", "h5py": "3.12.1"}}
    assert provenance.software_changes(old, new) == [f"code_diff None -> {'3f2a' * 4}", "h5py None -> 3.12.1",
                                                     "jax 0.10.2 -> 0.10.3"]
    assert provenance.software_changes(old, dict(old, devices="2 x cpu", argv=["x"])) == []  # the machine
    assert provenance.summary(new) == "stepjax 0.1.0 (git aaaaaaa + changes 3f2a3f2a), jax 0.10.3, on 1 x cpu"
    assert provenance.summary(dict(old, git_commit=None)) == "stepjax 0.1.0, jax 0.10.2, on 1 x cpu"
    assert provenance.summary(None) == "unrecorded"
    with pytest.raises(ValueError, match="event"):
        provenance.append(".", "restart")


def test_the_start_of_the_run_now_in_a_workdir_is_its_last_start(tmp_path):
    """A start in a workdir without a checkpoint (a crash before the first one, a protocol run again) begins a new
    run: reports and the resume check read its record, not the first line of the file."""
    path = tmp_path / provenance.PROVENANCE_FILE
    crashed = dict(provenance.current("start", 0), git_commit="a" * 40)
    crashed["packages"]["jax"] = "0.0.1"
    path.write_text(json.dumps(crashed) + "\n")
    start = provenance.append(tmp_path, "start", 0, log=pytest.fail)
    assert provenance.run_start(tmp_path) == start
    provenance.append(tmp_path, "resume", 4, log=pytest.fail)  # same software as the start: nothing to say
    assert provenance.run_start(tmp_path) == start and len(provenance.read(tmp_path)) == 3
    assert provenance.run_start(tmp_path / "no_such_run") is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_state_reads_the_commit_and_a_digest_of_the_code_changes(tmp_path):
    assert provenance.git_state(tmp_path) == (None, None)  # not a checkout
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    code = tmp_path / "stepjax"
    code.mkdir()
    (code / "a.py").write_text("LR = 1\n")
    (tmp_path / "README.md").write_text("docs\n")
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "a"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "README.md").write_text("other docs\n")  # outside the code: not a code change
    (tmp_path / "notes.txt").write_text("untracked, outside the code\n")
    assert provenance.git_state(tmp_path) == (head, None)
    (code / "a.py").write_text("LR = 2\n")
    _, two = provenance.git_state(tmp_path)
    (code / "a.py").write_text("LR = 3\n")
    _, three = provenance.git_state(tmp_path)
    assert two and three and two != three  # another uncommitted edit is another digest
    (code / "a.py").write_text("LR = 1\n")
    (code / "new.py").write_text("X = 1\n")  # an untracked module counts
    _, new = provenance.git_state(tmp_path)
    assert new and new not in (two, three)


def test_a_mean_over_runs_of_different_software_says_so():
    """``eval.py``'s mean +- std over runs trained with other code or libraries carries a note (and the list in
    its JSON); runs of the same software, or without records, do not."""
    from stepjax.evaluation import distinct_software, format_reports

    a = provenance.current("start", 0)
    b = dict(a, git_commit="b" * 40, time_utc="later", argv=["other"])
    scores = dict(accuracy=0.5, balanced_accuracy=0.5, macro_f1=0.5, num_gaits=4, per_class={},
                  confusion_matrix=[[1, 0], [0, 1]], checkpoint="best", data="walkers:test")
    runs = [dict(scores, workdir=f"r{i}", trained_with=t) for i, t in enumerate((a, dict(a, time_utc="x"), b))]
    assert distinct_software(runs[:2]) == [provenance.summary(a)]  # the time and the command do not count
    assert distinct_software(runs) == [provenance.summary(a), f"{provenance.summary(b)} (git_commit {a['git_commit']} "
                                                              f"-> {'b' * 40})"]
    assert distinct_software([dict(scores, trained_with=None)] * 2) == []
    assert distinct_software([runs[0], dict(scores, trained_with=None)]) == [provenance.summary(a), "unrecorded"]
    numpy_only = dict(a, packages=dict(a["packages"], numpy="0.0.1"))  # the summary line alone would not show it
    assert distinct_software([runs[0], dict(scores, trained_with=numpy_only)])[1].endswith(
        f"(numpy {a['packages']['numpy']} -> 0.0.1)")
    agg = {"num_runs": 3, **{k: {"mean": 0.5, "std": 0.0} for k in ("accuracy", "balanced_accuracy", "macro_f1")}}
    text = format_reports({"runs": runs, "aggregate": agg, "software": distinct_software(runs)})
    assert "note: these runs were trained with different software: " in text and "git bbbbbbb" in text
    assert "note:" not in format_reports({"runs": runs[:2], "aggregate": dict(agg, num_runs=2),
                                          "software": distinct_software(runs[:2])})
