"""One-file backups of an installation: settings file, agent scripts, API tokens (hashes)
and generated Asterisk configuration, in a ``.tar.gz`` with a ``manifest.json``."""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from operadora import __version__

MANIFEST = "manifest.json"
FORMAT = 1


class BackupError(Exception):
    """The archive is not an Operadora backup, or restoring it would overwrite files."""


@dataclass
class BackupContents:
    config_file: Path | None = None
    agent_scripts: list[Path] = field(default_factory=list)
    asterisk: list[Path] = field(default_factory=list)  # files or folders
    tokens: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RestoredFile:
    kind: str
    path: Path


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            out.append(path)
        else:
            raise BackupError(f"no such file or folder: {path}")
    return out


def write_backup(contents: BackupContents, out: Path) -> dict[str, Any]:
    """Write the archive; returns its manifest."""
    entries: list[tuple[str, Path]] = []
    if contents.config_file is not None:
        entries.append(("config", contents.config_file))
    entries += [("agent_script", p) for p in _files(contents.agent_scripts)]
    entries += [("asterisk", p) for p in _files(contents.asterisk)]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "operadora": __version__,
        "created_at": time.time(),
        "files": [],
        "tokens": contents.tokens,
    }
    with tarfile.open(out, "w:gz") as tar:
        for i, (kind, path) in enumerate(entries):
            arcname = f"files/{i:04d}-{path.name}"
            tar.add(path, arcname=arcname, recursive=False)
            manifest["files"].append(
                {"kind": kind, "path": str(path.resolve()), "arcname": arcname}
            )
        data = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(data), int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return manifest


def read_manifest(archive: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise BackupError(f"{archive}: no {MANIFEST}")
            manifest: dict[str, Any] = json.loads(member.read())
    except (tarfile.TarError, KeyError, OSError, ValueError) as exc:
        raise BackupError(f"{archive} is not an Operadora backup: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive}: unsupported backup format {manifest.get('format')!r}")
    return manifest


def restore_files(archive: Path, *, force: bool = False) -> list[RestoredFile]:
    """Put every file back where it was; refuses to overwrite unless ``force``."""
    manifest = read_manifest(archive)
    targets = [(f["kind"], Path(f["path"]), str(f["arcname"])) for f in manifest["files"]]
    clashes = [str(p) for _, p, _ in targets if p.exists()]
    if clashes and not force:
        raise BackupError("would overwrite existing files (use --force): " + ", ".join(clashes))
    restored: list[RestoredFile] = []
    with tarfile.open(archive, "r:gz") as tar:
        for kind, path, arcname in targets:
            if PurePosixPath(arcname).parts[0] != "files" or ".." in PurePosixPath(arcname).parts:
                raise BackupError(f"unsafe member name in the archive: {arcname}")
            member = tar.extractfile(arcname)
            if member is None:
                raise BackupError(f"{archive}: {arcname} is missing")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(member.read())
            restored.append(RestoredFile(kind, path))
    return restored
