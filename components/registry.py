"""The MLflow Model Registry: a stage output folder becomes a model version; aliases `candidate` and `champion`.

A version's `source` is a folder laid out exactly like the stage output it came from, so code that resolves
`reelforge-dit@champion` reads it like `workspace/<stage output>`. The folder is an immutable snapshot under the
registry store (content-addressed: `<store>/<model>/<sha256[:16]>`), because the runner replaces a stage's
output folder on every re-run and a champion must not change under its alias. Local snapshots hard-link the
stage's files (the runner never edits a file in place, it swaps whole folders), so they cost no space.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import manifest as manifests
from components import tracking
from components.hashing import content_hash
from components.workspace import filesystem, is_remote, workspace

CANDIDATE = "candidate"
CHAMPION = "champion"
TAG = "reelforge."  # prefix of every tag ReelForge writes on a version
METRIC_TAG = "reelforge.metric."  # + metric name, e.g. reelforge.metric.eval.vae/psnr
CONTENT_TAG = "reelforge.content_sha256"

_REF = re.compile(r"^(?:models:/)?(?P<name>[^@/]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))?$")


class RegistryError(ValueError):
    """A model reference, alias or version that does not exist; the message names it."""


@dataclass(frozen=True)
class ModelRef:
    """`name@alias`, `name/3` or `models:/name@alias`; a bare name means its champion."""

    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name}/{self.version}" if self.version else f"{self.name}@{self.alias}"


def parse_ref(ref: str) -> ModelRef:
    """Parse a model reference; a bare name resolves to its `champion`."""
    match = _REF.match(ref.strip())
    if not match:
        raise RegistryError(f"model reference {ref!r}: expected NAME@ALIAS, NAME/VERSION or models:/NAME@ALIAS")
    version = match["version"]
    return ModelRef(match["name"], None if version else (match["alias"] or CHAMPION), version)


def client():
    """An MlflowClient on the tracking store (the registry lives in the same store)."""
    import mlflow

    uri = tracking.tracking_uri()
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def get_version(ref: str | ModelRef):
    """The ModelVersion a reference names; RegistryError naming the model and alias otherwise."""
    from mlflow.exceptions import MlflowException

    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    try:
        if parsed.version:
            return client().get_model_version(parsed.name, parsed.version)
        return client().get_model_version_by_alias(parsed.name, parsed.alias)
    except MlflowException as err:
        raise RegistryError(f"model {parsed}: not in the registry at {tracking.tracking_uri()} ({err.message})") from None


def resolve_source(ref: str) -> str:
    """The folder (path or URI) a reference points at: the version's snapshot of its stage output."""
    return get_version(ref).source


def alias_version(name: str, alias: str) -> Any | None:
    """The version holding `alias`, or None when no version holds it (or the model is not registered)."""
    try:
        return get_version(ModelRef(name, alias))
    except RegistryError:
        return None


def registry_store(store: str | None = None) -> str:
    """Where version snapshots live: `store`, REELFORGE_REGISTRY_STORE, else <workspace>/registry."""
    return store or os.environ.get("REELFORGE_REGISTRY_STORE") or str(workspace() / "registry")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed: a copy is as immutable, only bigger
        shutil.copy2(src, dst)


def snapshot(folder: Path, name: str, store: str | None = None) -> tuple[str, str]:
    """Copy a stage output folder into the registry store once per content; returns (source, sha256)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RegistryError(f"cannot register {name}: {folder} is not a folder (run its stage first)")
    digest = content_hash(folder)
    root = registry_store(store)
    target = f"{root.rstrip('/')}/{name}/{digest[:16]}"
    if is_remote(target):
        fs, path = filesystem(target)
        files = [p for p in folder.rglob("*") if p.is_file()]
        # object stores have no atomic rename: an upload cut short is finished by the next registration
        if not fs.exists(path) or len(fs.find(path)) != len(files):
            for file in files:  # file by file: put() of a folder nests it when the target already exists
                dest = f"{path}/{file.relative_to(folder).as_posix()}"
                fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
                fs.put_file(str(file), dest)
        return target, digest
    target_path = Path(target)
    if not target_path.exists():
        tmp = target_path.with_name(f".{target_path.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(folder, tmp, copy_function=_link_or_copy)
        try:
            os.replace(tmp, target_path)
        except OSError:  # another registration of the same content got there first
            shutil.rmtree(tmp, ignore_errors=True)
            if not target_path.exists():
                raise
    return str(target_path.resolve()), digest


def training_tags(stage: str, ws: Path | None = None) -> tuple[dict[str, str], str | None, str]:
    """(tags, MLflow run id, output folder) from a training stage's manifest; RegistryError when it has none."""
    ws = ws or workspace()
    path = manifests.path_for(ws, stage)
    found = manifests.read(path)
    if found is None:
        raise RegistryError(f"no manifest for stage {stage} at {path}: run the stage before registering it")
    tags = {"reelforge.stage": stage, "reelforge.profile": found.get("profile", ""),
            "reelforge.params_hash": found.get("params_hash", ""), "reelforge.git_commit": found.get("git_commit", ""),
            "reelforge.run_id": found.get("mlflow_run_id") or "", "reelforge.output_dir": found["outputs"]["dir"]}
    for data_path, md5 in (found.get("dvc") or {}).items():
        tags[f"reelforge.dvc.{data_path}"] = md5
    return tags, found.get("mlflow_run_id"), found["outputs"]["dir"]


def _ensure_model(name: str, description: str) -> None:
    from mlflow.exceptions import MlflowException

    c = client()
    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description=description)


def find_by_content(name: str, digest: str) -> Any | None:
    """The newest version of `name` registered from this exact content, if any."""
    found = client().search_model_versions(f"name = '{name}' and tags.`{CONTENT_TAG}` = '{digest}'")
    return max(found, key=lambda v: int(v.version)) if found else None


def register(name: str, folder: Path, tags: dict[str, str], run_id: str | None = None,
             store: str | None = None, description: str = "") -> tuple[Any, bool]:
    """Register a stage output folder as a version of `name` with the `candidate` alias.

    Idempotent on content: the same files registered twice give the same version. Returns (version, created).
    """
    source, digest = snapshot(folder, name, store)
    _ensure_model(name, description or f"ReelForge model {name}: versions are stage output folders.")
    existing = find_by_content(name, digest)
    if existing is not None:
        version, created = existing, False
    else:
        all_tags = {**{k: str(v) for k, v in tags.items()}, CONTENT_TAG: digest}
        run = run_id if run_id and _run_exists(run_id) else None
        version = client().create_model_version(name, source, run_id=run, tags=all_tags,
                                                description=f"registered from {folder}")
        created = True
    client().set_registered_model_alias(name, CANDIDATE, version.version)
    return client().get_model_version(name, version.version), created


def _run_exists(run_id: str) -> bool:
    """A manifest may name a run from another tracking store; linking it would fail, so only link known runs."""
    from mlflow.exceptions import MlflowException

    try:
        client().get_run(run_id)
        return True
    except MlflowException:
        return False


def version_metrics(version: Any) -> dict[str, float]:
    """The evaluation metrics recorded on a version (tags reelforge.metric.<name>)."""
    out = {}
    for key, value in (version.tags or {}).items():
        if key.startswith(METRIC_TAG):
            try:
                out[key[len(METRIC_TAG):]] = float(value)
            except ValueError:
                continue
    return out


def record(name: str, version: str, tags: dict[str, Any], description: str | None = None) -> None:
    """Write tags (and optionally the description) on a version."""
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, str(version), key, str(value))
    if description is not None:
        c.update_model_version(name, str(version), description=description)


def set_alias(name: str, alias: str, version: str) -> None:
    client().set_registered_model_alias(name, alias, str(version))
