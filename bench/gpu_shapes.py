"""Whisper model shapes and special tokens for the GPU STT benchmark (no torch needed)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shape:
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    vocab: int
    mels: int = 80

    @property
    def english_only(self) -> bool:
        return self.vocab == 51864


# OpenAI's published model dimensions
SHAPES = {
    "tiny.en": Shape(384, 4, 4, 6, 51864),
    "base": Shape(512, 6, 6, 8, 51865),
    "small": Shape(768, 12, 12, 12, 51865),
    "medium": Shape(1024, 24, 24, 16, 51865),
    "large-v3": Shape(1280, 32, 32, 20, 51866, mels=128),
    "large-v3-turbo": Shape(1280, 32, 4, 20, 51866, mels=128),
}


def special_tokens(shape: Shape) -> tuple[list[int], int]:
    """(prefix, end of text): <|startoftranscript|>[<|en|><|transcribe|>]<|notimestamps|>."""
    if shape.english_only:
        return [50257, 50362], 50256
    extra = shape.vocab - 51865  # large-v3 added one language token
    return [50258, 50259, 50359 + extra, 50363 + extra], 50257
