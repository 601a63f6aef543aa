"""Which VBench weights are in the store: a path for each present one, the missing file for each absent one.

Names come from configs/<weights_profile>/weights.yaml (the weights store: REELFORGE_WEIGHTS or `store`).
`overrides` maps a name to an explicit path (a folder or file anywhere), which skips the list for that name.
Nothing is downloaded: an absent file makes its dimensions "not computed" with the file named.
"""
from __future__ import annotations

from dataclasses import dataclass

from components.hashing import exists
from components.weights import check_one, manifest_for, store_uri


@dataclass(frozen=True)
class Located:
    """A weight name resolved against the store: its path, and why it cannot be used when it cannot."""

    name: str
    path: str
    present: bool
    reason: str = ""


def locate(names: list[str], profile: str, store: str | None = None,
           overrides: dict[str, str] | None = None) -> dict[str, Located]:
    """Status of each named weight (no hashing here: the loaders record sha256 of what they read)."""
    overrides = overrides or {}
    entries = {e["name"]: e for e in manifest_for(profile)}
    store = store or store_uri()
    out: dict[str, Located] = {}
    for name in names:
        if name in overrides:
            path = overrides[name]
            out[name] = Located(name, path, exists(path), "" if exists(path) else f"missing {name}: {path}")
            continue
        if name not in entries:
            out[name] = Located(name, "", False, f"{name} is not listed in configs/{profile}/weights.yaml")
            continue
        status = check_one(entries[name], store, verify=False)
        hint = f" ({status.detail})" if status.detail else ""
        out[name] = Located(name, status.path, status.status == "present",
                            "" if status.status == "present" else f"missing {name}: {status.path}{hint}")
    return out
