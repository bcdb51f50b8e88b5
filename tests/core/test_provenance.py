"""Settings recorded with persistent outputs: exact digests, and folders started over when settings change."""

from __future__ import annotations

import hashlib
import json

from vbert.core.provenance import SETTINGS_FILE, claim, digest, same_settings


def test_digest_of_a_folder_is_names_and_bytes_in_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_bytes(b"x")
    (tmp_path / "b" / "c.txt").write_bytes(b"yz")
    expected = hashlib.sha256(b"a.txt\0x" + b"b/c.txt\0yz").hexdigest()
    assert digest(tmp_path) == expected
    assert digest(tmp_path / "a.txt") == hashlib.sha256(b"a.txt\0x").hexdigest()
    (tmp_path / "b" / "c.txt").write_bytes(b"yZ")
    assert digest(tmp_path) != expected


def test_claim_keeps_a_folder_made_with_the_same_settings(tmp_path):
    out = tmp_path / "out"
    claim(out, {"learning_rate": 1e-3, "steps": (2, 4)})
    (out / "step-000002").mkdir()
    assert same_settings(out, {"learning_rate": 1e-3, "steps": (2, 4)})
    claim(out, {"learning_rate": 1e-3, "steps": (2, 4)})
    assert (out / "step-000002").exists()


def test_claim_starts_over_a_folder_made_otherwise(tmp_path, caplog):
    out = tmp_path / "out"
    claim(out, {"learning_rate": 1e-3})
    (out / "step-000002").mkdir()
    claim(out, {"learning_rate": 5e-5})
    assert sorted(p.name for p in out.iterdir()) == [SETTINGS_FILE]
    assert json.loads((out / SETTINGS_FILE).read_text()) == {"learning_rate": 5e-5}
    assert "made from other inputs or settings" in caplog.text


def test_claim_starts_over_a_folder_without_settings(tmp_path):
    out = tmp_path / "out"
    (out / "msl128").mkdir(parents=True)
    claim(out, {"a": 1})
    assert sorted(p.name for p in out.iterdir()) == [SETTINGS_FILE]
