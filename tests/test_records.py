"""A run's records on disk: their lines, seals, and the check of a seal against the file."""
import json

from autohas.records import digest, lines, scan, seal


def _records(algo, seed, n):
    return [{"algo": algo, "seed": seed, "trial_id": f"{algo}_{seed}_{i:05d}", "valid_acc": 90.0 + i / 3,
             "best_test_acc": None if i == 0 else 93.5, "params": float("nan"), "seq": i} for i in range(n)]


def test_a_seal_from_lines_at_hand_is_the_seal():
    records = _records("rea", 0, 5)
    text = lines(records)
    assert text == "".join(json.dumps(r) + "\n" for r in records)
    assert seal(records, text) == seal(records) == {"records": 5, "sha256": digest(records)}


def test_a_seal_checked_against_the_lines_as_written_or_as_dumped_again(tmp_path):
    """The file's own lines decide when they are the sealed ones; lines written another way (other
    spacing) are dumped again before they are compared, so only a changed record is damage."""
    rea, rnd = _records("rea", 0, 4), _records("random", 1, 3)
    seals = {("rea", 0): seal(rea), ("random", 1): seal(rnd)}
    path = tmp_path / "results.jsonl"
    path.write_text(lines(rea[:2]) + lines(rnd) + lines(rea[2:]))  # runs interleaved, as parallel runs write
    found = scan(str(path))
    assert found.damage(seals) == []
    assert lines(found.records()) == lines(rea[:2] + rnd + rea[2:])  # in file order
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rea) + lines(rnd))
    assert scan(str(path)).damage(seals) == []  # the same records, spaced otherwise
    changed = [dict(r) for r in rea]
    changed[3]["valid_acc"] = 12.0
    path.write_text(lines(changed) + lines(rnd))
    damage = scan(str(path)).damage(seals)
    assert [(run, "finished with 4 records, the file holds 4 that differ from them" in line) for run, line in damage] == [
        (("rea", 0), True)]
