"""Whisper in PyTorch for the GPU STT benchmark: transformers' model built from a config, and a
static-shape path over the same weights that a CUDA graph can capture.

- ``build_model``: ``WhisperForConditionalGeneration`` from a ``WhisperConfig`` (SDPA
  attention), random weights or a converted state dict (``gpu_ct2``).
- ``encode``: the encoder on any window length (transformers' encoder insists on 30 s; our
  engine encodes the utterance plus 6 s, ``docs/voice.md``), with the model's own modules.
- ``HfDecoder``: greedy or teacher-forced decoding through transformers' decoder and its
  dynamic cache, one Python-driven step per token (the plain baseline).
- ``StaticDecoder``: the same decoder math on preallocated self-attention caches, a
  precomputed cross-attention K/V and device-side step inputs, so one step has fixed shapes
  and no host sync; on CUDA it is captured once per (batch, window) and replayed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from transformers import WhisperConfig, WhisperForConditionalGeneration

from gpu_shapes import SHAPES, Shape, special_tokens

__all__ = ["SHAPES", "Shape", "special_tokens"]


def make_config(shape: Shape) -> WhisperConfig:
    prefix, eot = special_tokens(shape)
    return WhisperConfig(
        vocab_size=shape.vocab,
        num_mel_bins=shape.mels,
        d_model=shape.d_model,
        encoder_layers=shape.encoder_layers,
        decoder_layers=shape.decoder_layers,
        encoder_attention_heads=shape.heads,
        decoder_attention_heads=shape.heads,
        encoder_ffn_dim=4 * shape.d_model,
        decoder_ffn_dim=4 * shape.d_model,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=prefix[0],
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        tie_word_embeddings=True,
    )


def _sinusoids(length: int, channels: int) -> torch.Tensor:
    """Whisper's fixed encoder position table (random init would leave it random)."""
    step = math.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-step * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def build_model(
    shape: Shape,
    device: torch.device,
    dtype: torch.dtype,
    state: dict[str, Any] | None = None,
    seed: int = 0,
) -> WhisperForConditionalGeneration:
    config = make_config(shape)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with torch.device(device):
        model = WhisperForConditionalGeneration(config)
    if state is not None:
        tensors = {k: torch.as_tensor(v) for k, v in state.items()}
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        missing = [k for k in missing if k != "proj_out.weight"]
        if missing or unexpected:
            raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    else:
        with torch.no_grad():
            model.model.encoder.embed_positions.weight.copy_(_sinusoids(1500, shape.d_model))
    model.tie_weights()
    if model.proj_out.weight.data_ptr() != model.model.decoder.embed_tokens.weight.data_ptr():
        raise ValueError("proj_out is not tied to the token embeddings")
    return model.to(device=device, dtype=dtype).eval()


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, heads, d // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


@torch.no_grad()
def encode(model: WhisperForConditionalGeneration, mel: torch.Tensor) -> torch.Tensor:
    """Encoder output [B, frames/2, d] for log-mel features [B, mels, frames], any even number
    of frames up to 3000."""
    enc = model.model.encoder
    heads = model.config.encoder_attention_heads
    x = F.gelu(enc.conv1(mel))
    x = F.gelu(enc.conv2(x)).transpose(1, 2)
    x = x + enc.embed_positions.weight[: x.shape[1]]
    for layer in enc.layers:
        h = layer.self_attn_layer_norm(x)
        a = layer.self_attn
        o = F.scaled_dot_product_attention(
            _heads(a.q_proj(h), heads), _heads(a.k_proj(h), heads), _heads(a.v_proj(h), heads)
        )
        x = x + a.out_proj(_merge(o))
        x = x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))
    return enc.layer_norm(x)


@torch.no_grad()
def hf_encode(model: WhisperForConditionalGeneration, mel30: torch.Tensor) -> torch.Tensor:
    """transformers' own encoder (30 s windows only)."""
    out: torch.Tensor = model.model.encoder(input_features=mel30).last_hidden_state
    return out


class HfDecoder:
    """transformers' decoder with its dynamic cache: the prefix in one call, then one call per
    token. ``forced`` [B, S] (prefix + reference tokens) gives teacher forcing; without it the
    argmax is fed back (greedy) until every row has said end of text or ``max_steps``."""

    def __init__(self, model: WhisperForConditionalGeneration, eot: int) -> None:
        self.model = model
        self.eot = eot

    @torch.no_grad()
    def run(
        self, enc: torch.Tensor, prefix: torch.Tensor, forced: torch.Tensor | None, max_steps: int
    ) -> torch.Tensor:
        dec = self.model.model.decoder
        out = dec(input_ids=prefix, encoder_hidden_states=enc, use_cache=True)
        cache = out.past_key_values
        nxt = self.model.proj_out(out.last_hidden_state[:, -1]).argmax(-1)
        produced = [nxt]
        p = prefix.shape[1]
        steps = forced.shape[1] - p if forced is not None else max_steps
        done = nxt == self.eot
        for t in range(steps - 1):
            inp = forced[:, p + t] if forced is not None else nxt
            out = dec(
                input_ids=inp[:, None],
                encoder_hidden_states=enc,
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            nxt = self.model.proj_out(out.last_hidden_state[:, -1]).argmax(-1)
            produced.append(nxt)
            if forced is None:
                done |= nxt == self.eot
                if len(produced) % 4 == 0 and bool(done.all()):
                    break
        return torch.stack(produced, dim=1)


class StaticDecoder:
    """One decoder step with fixed shapes: tokens [B] and position [1] in, argmax [B] out,
    self-attention K/V in preallocated [B, H, max_len, D] caches written at the position."""

    def __init__(
        self,
        model: WhisperForConditionalGeneration,
        batch: int,
        frames: int,
        max_len: int,
        eot: int,
        graph: bool,
    ) -> None:
        self.model = model
        self.eot = eot
        dec = model.model.decoder
        p = dec.embed_tokens.weight
        self.heads = model.config.decoder_attention_heads
        d = model.config.d_model
        shape = (batch, self.heads, max_len, d // self.heads)
        self.k = [torch.zeros(shape, dtype=p.dtype, device=p.device) for _ in dec.layers]
        self.v = [torch.zeros(shape, dtype=p.dtype, device=p.device) for _ in dec.layers]
        cross = (batch, self.heads, frames, d // self.heads)
        self.ck = [torch.zeros(cross, dtype=p.dtype, device=p.device) for _ in dec.layers]
        self.cv = [torch.zeros(cross, dtype=p.dtype, device=p.device) for _ in dec.layers]
        self.tokens = torch.zeros(batch, dtype=torch.long, device=p.device)
        self.pos = torch.zeros(1, dtype=torch.long, device=p.device)
        self.arange = torch.arange(max_len, device=p.device)
        self.out = torch.zeros(batch, dtype=torch.long, device=p.device)
        self.max_len = max_len
        self.graph: torch.cuda.CUDAGraph | None = None
        self.capture_error: str | None = None
        if graph:
            try:
                self._capture()
            except Exception as exc:  # measured without the graph, and said so
                self.graph = None
                self.capture_error = f"{type(exc).__name__}: {exc}"

    @torch.no_grad()
    def set_encoder(self, enc: torch.Tensor) -> None:
        """Cross-attention K/V of every layer, once per batch of utterances."""
        for layer, ck, cv in zip(self.model.model.decoder.layers, self.ck, self.cv, strict=True):
            a = layer.encoder_attn
            ck.copy_(_heads(a.k_proj(enc), self.heads))
            cv.copy_(_heads(a.v_proj(enc), self.heads))

    @torch.no_grad()
    def step(self) -> None:
        dec = self.model.model.decoder
        x = dec.embed_tokens(self.tokens)[:, None] + dec.embed_positions.weight[self.pos][None]
        mask = (self.arange <= self.pos)[None, None, None, :]
        for layer, k, v, ck, cv in zip(dec.layers, self.k, self.v, self.ck, self.cv, strict=True):
            h = layer.self_attn_layer_norm(x)
            a = layer.self_attn
            k.index_copy_(2, self.pos, _heads(a.k_proj(h), self.heads))
            v.index_copy_(2, self.pos, _heads(a.v_proj(h), self.heads))
            o = F.scaled_dot_product_attention(_heads(a.q_proj(h), self.heads), k, v, mask)
            x = x + a.out_proj(_merge(o))
            c = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            o = F.scaled_dot_product_attention(_heads(c.q_proj(h), self.heads), ck, cv)
            x = x + c.out_proj(_merge(o))
            x = x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))
        x = dec.layer_norm(x[:, 0])
        self.out.copy_(F.linear(x, dec.embed_tokens.weight).argmax(-1))

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.step()

    def _advance(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.step()

    @torch.no_grad()
    def run(
        self,
        enc: torch.Tensor,
        prefix: torch.Tensor,
        forced: torch.Tensor | None,
        max_steps: int,
        encoder_set: bool = False,
    ) -> torch.Tensor:
        """Same contract as ``HfDecoder.run``; the prefix goes through one token per step."""
        if not encoder_set:
            self.set_encoder(enc)
        p = prefix.shape[1]
        total = forced.shape[1] - 1 if forced is not None else p + max_steps - 1
        if total > self.max_len:
            raise ValueError(f"{total} decoder positions, the cache holds {self.max_len}")
        steps = torch.arange(total, device=self.pos.device)
        produced = []
        done = torch.zeros_like(self.out, dtype=torch.bool)
        for t in range(total):
            self.pos.copy_(steps[t : t + 1])
            if t < p:
                self.tokens.copy_(prefix[:, t])
            elif forced is not None:
                self.tokens.copy_(forced[:, t])
            else:
                self.tokens.copy_(self.out)
            self._advance()
            if t >= p - 1:
                produced.append(self.out.clone())
                if forced is None:
                    done |= self.out == self.eot
                    if len(produced) % 4 == 0 and bool(done.all()):
                        break
        return torch.stack(produced[: total - p + 1], dim=1)
