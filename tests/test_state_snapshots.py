"""Snapshots of Tune's driver state survive a copy torn by a hard kill."""

import json
import pickle

from autohas.state_snapshots import SNAPSHOT_DIR, published_experiment_state, restore_snapshot, take_snapshot


def _stage(folder, step):
    folder.mkdir(exist_ok=True)
    (folder / "experiment_state-s1.json").write_text(json.dumps({"step": step}))
    (folder / "search_gen_state-s1.json").write_bytes(pickle.dumps({"counter": step}))
    (folder / ".tmp-search_gen_state-s1.json").write_bytes(b"half")  # Tune's temporary: not state
    (folder / "notes.txt").write_text("other")


def test_restore_puts_back_the_newest_complete_set(tmp_path):
    staging, run = tmp_path / "staging", tmp_path / "run"
    run.mkdir()
    for step in (1, 2):
        _stage(staging, step)
        take_snapshot(str(staging), str(run))
    snapshots = [p for p in (run / SNAPSHOT_DIR).iterdir() if p.name.startswith("snap-")]
    assert len(snapshots) == 1 and sorted(p.name for p in snapshots[0].iterdir()) == [
        "experiment_state-s1.json", "search_gen_state-s1.json"]
    # the background copy was cut: one file torn, one old; a later session's file torn as well
    (run / "experiment_state-s1.json").write_text(json.dumps({"step": 1}))
    (run / "search_gen_state-s1.json").write_bytes(b"")
    (run / "search_gen_state-s2.json").write_bytes(b"\x80")
    (run / "experiment_state-s0.json").write_text(json.dumps({"step": 0}))  # readable: kept
    assert restore_snapshot(str(run))
    assert json.loads((run / "experiment_state-s1.json").read_text()) == {"step": 2}
    assert pickle.loads((run / "search_gen_state-s1.json").read_bytes()) == {"counter": 2}
    assert not (run / "search_gen_state-s2.json").exists()
    assert (run / "experiment_state-s0.json").exists()


def test_published_state_is_the_one_a_resume_restores(tmp_path):
    """A snapshot folder whose files are written but which the pointer does not name yet (a kill
    then resumes from the previous one) is not the published state."""
    staging, run = tmp_path / "staging", tmp_path / "run"
    run.mkdir()
    assert published_experiment_state(str(run)) == ""
    _stage(staging, 1)
    (staging / "experiment_state-s0.json").write_text(json.dumps({"step": 0}))  # a previous session's, synced down
    take_snapshot(str(staging), str(run))
    assert json.loads(published_experiment_state(str(run))) == {"step": 1}  # the newest, as Tune picks it
    unpublished = run / SNAPSHOT_DIR / "snap-unpublished"
    unpublished.mkdir()
    (unpublished / "experiment_state-s1.json").write_text(json.dumps({"step": 2}))
    assert json.loads(published_experiment_state(str(run))) == {"step": 1}
    assert restore_snapshot(str(run)) and json.loads((run / "experiment_state-s1.json").read_text()) == {"step": 1}


def test_without_a_snapshot_only_unreadable_state_goes(tmp_path):
    (tmp_path / "search_gen_state-s1.json").write_bytes(b"")
    (tmp_path / "experiment_state-s1.json").write_text("{}")
    assert not restore_snapshot(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment_state-s1.json"]


def test_prune_keeps_the_checkpoint_a_snapshot_names_and_newer_ones(tmp_path):
    from autohas.state_snapshots import prune_checkpoints

    trial = tmp_path / "gdas-seed0"
    for i in range(4):
        (trial / f"checkpoint_{i:06d}").mkdir(parents=True)
        (trial / f"checkpoint_{i:06d}" / "training.pt").write_bytes(b"x")
    (trial / "result.json").write_text("{}")
    # the snapshot names checkpoint 2; checkpoint 3 registered after it and must survive too
    assert prune_checkpoints([str(trial / "checkpoint_000002"), str(tmp_path / "elsewhere" / "checkpoint_000001")]) == 2
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint_000002", "checkpoint_000003", "result.json"]
