"""Model references and version snapshots (local hard links, object stores), without an MLflow store."""
import os

import fsspec
import pytest

from components.registry import ModelRef, RegistryError, parse_ref, snapshot


@pytest.mark.parametrize("ref, expected", [
    ("reelforge-dit@champion", ModelRef("reelforge-dit", "champion")),
    ("models:/reelforge-vae@candidate", ModelRef("reelforge-vae", "candidate")),
    ("reelforge-dit/7", ModelRef("reelforge-dit", None, "7")),
    ("reelforge-dit", ModelRef("reelforge-dit", "champion")),
])
def test_parse_ref(ref, expected):
    assert parse_ref(ref) == expected


def test_parse_ref_names_the_bad_reference():
    with pytest.raises(RegistryError, match="model reference 'a@b@c': expected NAME@ALIAS"):
        parse_ref("a@b@c")


def stage_output(tmp_path):
    out = tmp_path / "vae" / "stage3"
    (out / "sub").mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"w1")
    (out / "sub" / "vae_config.json").write_text("{}")
    return out


def test_local_snapshot_links_files_and_is_content_addressed(tmp_path):
    out = stage_output(tmp_path)
    source, digest = snapshot(out, "reelforge-vae", str(tmp_path / "registry"))
    assert source == str(tmp_path / "registry" / "reelforge-vae" / digest[:16])
    assert os.path.samefile(os.path.join(source, "model.safetensors"), out / "model.safetensors")  # a hard link
    assert snapshot(out, "reelforge-vae", str(tmp_path / "registry")) == (source, digest)
    (out / "model.safetensors").unlink()  # the runner swaps folders: the old files' links keep the snapshot whole
    (out / "model.safetensors").write_bytes(b"w2")
    assert open(os.path.join(source, "model.safetensors"), "rb").read() == b"w1"
    assert snapshot(out, "reelforge-vae", str(tmp_path / "registry"))[0] != source


def test_remote_snapshot_uploads_once_and_finishes_a_partial_upload(tmp_path):
    out = stage_output(tmp_path)
    fs = fsspec.filesystem("memory")
    source, digest = snapshot(out, "reelforge-vae", "memory://e2-registry")
    path = f"/e2-registry/reelforge-vae/{digest[:16]}"
    assert source == f"memory:/{path}"
    assert sorted(fs.find(path)) == [f"{path}/model.safetensors", f"{path}/sub/vae_config.json"]
    fs.rm(f"{path}/sub/vae_config.json")
    snapshot(out, "reelforge-vae", "memory://e2-registry")
    assert fs.cat(f"{path}/sub/vae_config.json") == b"{}"
    fs.rm("/e2-registry", recursive=True)


def test_snapshot_of_a_missing_folder_says_to_run_the_stage(tmp_path):
    with pytest.raises(RegistryError, match="cannot register reelforge-vae: .*/nope is not a folder"):
        snapshot(tmp_path / "nope", "reelforge-vae", str(tmp_path / "registry"))
