"""The one Settings model, nested by component.

Precedence: defaults < config file < environment < CLI overrides. Environment variables use the
prefix ``OPERADORA_`` and ``__`` for nesting (``OPERADORA_MEDIA__PORT=9092``). The names of the
user's original design are accepted too (``ASTERISK_HOST``, ``ARI_PASSWORD``, ``AI_BACKEND_HOST``,
``AI_BACKEND_PORT``). Components receive their own sub-settings; nothing else reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

CONFIG_FILE_ENV = "OPERADORA_CONFIG"
# The config file named on the command line; wins over OPERADORA_CONFIG, never written to it.
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("operadora_config_file", default=None)


class _Section(BaseModel):
    """A settings section: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class AriServerSettings(_Section):
    """One Asterisk server reached through ARI."""

    name: str = "asterisk-1"
    url: str = "http://127.0.0.1:8088/ari"
    username: str = "operadora"
    password: SecretStr | None = None
    app: str = "callcenter-ai"
    connect_timeout_s: float = Field(5.0, gt=0)
    request_timeout_s: float = Field(5.0, gt=0)
    reconnect_max_backoff_s: float = Field(30.0, gt=0)
    # as the reference traces were recorded: a channel's ChannelDestroyed (with the hang-up
    # cause) reaches the application only with subscribeAll once the channel left Stasis
    subscribe_all: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class AsteriskSettings(_Section):
    """The Asterisk servers Operadora controls and how they reach Operadora's media server."""

    servers: list[AriServerSettings] = Field(default_factory=lambda: [AriServerSettings()])
    # host:port at which Asterisk connects to our AudioSocket server (externalMedia external_host)
    media_address: str = "127.0.0.1:9092"
    media_format: Literal["slin", "slin16"] = "slin16"
    # a call whose AudioSocket connection has not arrived by then is hung up (failed)
    media_connect_timeout_s: float = Field(5.0, gt=0)
    # what a caller over the rate limit (api.rate_limit_calls) hears before the hang-up: ARI
    # media URIs played in turn on the channel (Asterisk's core sounds, in the channel's language)
    refusal_media: list[str] = Field(
        default_factory=lambda: ["sound:im-sorry", "sound:please-try-call-later"]
    )
    refusal_max_s: float = Field(15.0, gt=0)  # hang up by then even if the prompt never ends


class MediaSettings(_Section):
    """The AudioSocket media server."""

    host: str = "127.0.0.1"
    port: int = Field(9092, ge=0, le=65535)
    uuid_timeout_s: float = Field(5.0, gt=0)
    max_payload: int = Field(8192, gt=0, le=65535)
    frame_ms: int = Field(20, gt=0)
    workers: int = Field(1, ge=1)
    # native: the C engine reads, frames and paces the audio on its own thread (Linux, built at
    # install); asyncio: all of it on the event loop; auto: native where it was built
    engine: Literal["auto", "native", "asyncio"] = "auto"
    # the native engine's I/O thread runs this much less nice (ahead of) the process's other threads
    # (the VAD, the speech models) when permitted, so its paced writes are not queued behind
    # them on a busy machine; 0 leaves it at the process's niceness
    io_nice_boost: int = Field(5, ge=0, le=39)
    uvloop: bool = True
    # rate assumed until the first inbound audio frame names it (the dialplan app is 8 kHz)
    default_sample_rate: Literal[8000, 16000] = 8000
    # with no inbound audio yet, start sending silence after this long (Asterisk's AudioSocket()
    # app hangs up after 2 s with no audio either way)
    keepalive_after_s: float = Field(1.0, ge=0)
    write_buffer_limit: int = Field(65536, gt=0)  # bytes we queue before dropping frames
    write_stall_s: float = Field(5.0, gt=0)  # a peer that reads nothing this long is dropped
    send_buffer_bytes: int = Field(0, ge=0)  # SO_SNDBUF per connection; 0 = kernel default
    inbound_queue_frames: int = Field(500, gt=0)  # unread inbound frames before reading pauses
    # each call's writes fall this long after its inbound frames arrive (barge-in reaches the
    # wire within a few ms); with no inbound audio the writes keep a free-running 20 ms grid
    write_after_inbound_ms: float = Field(3.0, ge=0, le=20)


class VadSettings(_Section):
    engine: Literal["silero", "webrtc", "energy"] = "silero"
    threshold: float = Field(0.5, gt=0, lt=1)
    min_speech_ms: int = Field(120, ge=0)
    end_of_turn_silence_ms: int = Field(280, ge=0)
    barge_in_min_speech_ms: int = Field(60, ge=0)
    # Silero only: windows of all calls that complete within this many ms are scored in one
    # batch on the event loop (~13 us a window instead of ~90 alone); 0 scores each window
    # by itself as it completes
    batch_wait_ms: float = Field(5.0, ge=0, le=30)


class SttSettings(_Section):
    engine: Literal["whisper", "openai", "fake"] = "whisper"
    model_path: Path | None = None  # a faster-whisper model directory; default: bundled tiny.en
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "int8"
    beam_size: int = Field(1, ge=1, le=10)
    # CTranslate2 threads per Whisper decode on the CPU; 0: half the cores, 1 to 4
    cpu_threads: int = Field(0, ge=0, le=64)
    language: str | None = None
    base_url: str | None = None  # OpenAI-compatible /v1/audio/transcriptions server
    api_key: SecretStr | None = None
    model: str = "whisper-1"
    timeout_s: float = Field(15.0, gt=0)


class TtsSettings(_Section):
    engine: Literal["espeak", "piper", "http", "fake"] = "espeak"
    voice: str | None = None
    model_path: Path | None = None  # a Piper .onnx voice
    base_url: str | None = None  # OpenAI-compatible /v1/audio/speech or F5-TTS server
    api_key: SecretStr | None = None
    model: str = "tts-1"
    rate_wpm: int = Field(175, gt=0)
    timeout_s: float = Field(15.0, gt=0)


class AgentSettings(_Section):
    engine: Literal["scripted", "llm"] = "scripted"
    script: Path | None = None  # YAML agent script; default: the shipped call-center script
    language: Literal["en", "es"] = "en"
    base_url: str | None = None  # OpenAI-compatible chat-completions server
    api_key: SecretStr | None = None
    model: str = "qwen3-14b"
    system_prompt: str | None = None
    temperature: float = Field(0.3, ge=0, le=2)
    timeout_s: float = Field(20.0, gt=0)
    intent_threshold: float = Field(0.45, ge=0, le=1)


class VoiceSettings(_Section):
    vad: VadSettings = Field(default_factory=VadSettings)
    stt: SttSettings = Field(default_factory=SttSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    models_dir: Path = Path("~/.local/share/operadora/models")
    # decode the utterance at its first pause, so the transcript is ready when the turn ends
    speculative_stt: bool = True
    playback_lookahead_ms: float = Field(60.0, ge=20)  # agent audio queued ahead of the wire
    # when the speculative transcript already reads as a finished sentence, end the turn after this
    # much silence instead of vad.end_of_turn_silence_ms (0: always wait the full silence)
    complete_turn_silence_ms: int = Field(160, ge=0)
    # pause agent playback on the first loud caller frame (well above any echo of the agent) instead
    # of waiting for a full VAD window; the VAD confirms the barge-in or playback resumes
    fast_barge_in: bool = True


class StoreSettings(_Section):
    url: SecretStr = SecretStr("sqlite+aiosqlite:///./operadora.db")
    recordings_dir: Path = Path("./recordings")
    recording_retention_days: int = Field(30, ge=1)


class StateSettings(_Section):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: SecretStr | None = None
    instance_id: str | None = None


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    rate_limit_calls: int = Field(5, ge=1)
    rate_limit_window_s: float = Field(60.0, gt=0)


class HardwareSettings(_Section):
    gateway_prefixes: list[str] = Field(default_factory=lambda: ["gateway-fxo"])
    gateway_addresses: list[str] = Field(default_factory=list)
    dahdi_dev: Path = Path("/dev/dahdi")
    dahdi_scan: str = "dahdi_scan"
    probe_timeout_s: float = Field(3.0, gt=0)
    sip_port: int = Field(5060, ge=1, le=65535)  # gateway port when an address names none
    gateway_lines: int = Field(1, ge=1)  # FXO lines behind each gateway endpoint (GXW4108: 8)
    probe_transport: Literal["udp", "tcp"] = "udp"
    nvidia_smi: str = "nvidia-smi"


class DialplanSettings(_Section):
    """What ``operadora asterisk-config`` renders (see docs/asterisk-config.md)."""

    context: str = "call-center"
    ai_extension: str = "110"
    audiosocket_extension: str = "100"
    queue_extension: str = "200"
    ivr_extension: str = "300"
    queue_name: str = "support-queue"
    queue_members: list[str] = Field(default_factory=list)  # e.g. ["PJSIP/agent1"]
    ari_transfer_handling: bool = True  # PJSIP_TRANSFER_HANDLING(ari-only) before Stasis
    http_bind: str = "127.0.0.1"  # Asterisk's HTTP/ARI server; its port is the ARI url's
    sip_bind: str = "0.0.0.0:5060"  # PJSIP transport: gateways and trunks must reach it
    dahdi_group: int | None = None  # DAHDI group for outbound calls (Dial(DAHDI/g<N>/...))
    codecs: list[str] = Field(default_factory=lambda: ["ulaw", "alaw"])
    trunk_host: str | None = None  # SIP trunk provider host[:port]; none: no trunk snippet
    trunk_username: str | None = None
    trunk_password: SecretStr | None = None


EndpointState = Literal["online", "offline", "unknown"]


def _default_sim_endpoints() -> dict[str, EndpointState]:
    return {"PJSIP/gateway-fxo-1": "online"}


class SimSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8088, ge=0, le=65535)
    username: str = "operadora"
    password: SecretStr | None = None
    # PBX simulator (docs/simulator.md); None = the shipped recording-setup configuration
    dialplan_file: Path | None = None  # extensions.conf
    queues_file: Path | None = None  # queues.conf
    pjsip_file: Path | None = None  # pjsip.conf (its endpoints are listed, offline)
    musiconhold_file: Path | None = None
    globals: dict[str, str] = Field(default_factory=dict)  # override dialplan [globals]
    # extra endpoints and their states, e.g. {"PJSIP/gateway-fxo-1": "online"}
    endpoints: dict[str, EndpointState] = Field(default_factory=_default_sim_endpoints)
    sounds_dir: Path = Path("/usr/share/asterisk/sounds/en")
    # SIP (UDP) for real phones such as sipp, on host:sip_port; None = off, 0 = any free port
    sip_port: int | None = Field(None, ge=0, le=65535)


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = False


class _DesignNamesSource(PydanticBaseSettingsSource):
    """Maps the environment names used in the user's design onto our settings."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = self._environ
        out: dict[str, Any] = {}
        server: dict[str, Any] = {}
        if host := env.get("ASTERISK_HOST"):
            server["url"] = f"http://{host}:{env.get('ASTERISK_ARI_PORT', '8088')}/ari"
        if password := env.get("ARI_PASSWORD"):
            server["password"] = password
        if user := env.get("ARI_USER"):
            server["username"] = user
        if server:
            out["asterisk"] = {"servers": [server]}
        media: dict[str, Any] = {}
        if host := env.get("AI_BACKEND_HOST"):
            media["host"] = host
        if port := env.get("AI_BACKEND_PORT"):
            media["port"] = port
        if media:
            out["media"] = media
            if "asterisk" not in out:
                out["asterisk"] = {}
            out["asterisk"]["media_address"] = (
                f"{media.get('host', '127.0.0.1')}:{media.get('port', 9092)}"
            )
        return out


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OPERADORA_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    asterisk: AsteriskSettings = Field(default_factory=AsteriskSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    hardware: HardwareSettings = Field(default_factory=HardwareSettings)
    dialplan: DialplanSettings = Field(default_factory=DialplanSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _DesignNamesSource(settings_cls, os.environ),
        ]
        path = _CONFIG_FILE.get() or os.environ.get(CONFIG_FILE_ENV)
        if path:
            sources.append(_file_source(settings_cls, Path(path)))
        return tuple(sources)


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting."""


def _file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    if not path.is_file():
        raise ConfigError(f"{CONFIG_FILE_ENV}: no such config file: {path}")
    if path.suffix == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    if path.suffix in (".yaml", ".yml"):
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    raise ConfigError(f"{CONFIG_FILE_ENV}: config file must be .toml, .yaml or .yml: {path}")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one message per bad setting."""
    token = _CONFIG_FILE.set(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            env = "OPERADORA_" + "__".join(str(p).upper() for p in err["loc"])
            lines.append(f"setting {name} ({env}): {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    finally:
        _CONFIG_FILE.reset(token)


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data with every secret masked."""
    return settings.model_dump(mode="json")  # SecretStr dumps as '**********'


def require_secret(value: SecretStr | None, setting: str) -> str:
    """Return a secret's value or refuse to go on, naming the setting that is missing."""
    if value is None or not value.get_secret_value():
        env = "OPERADORA_" + setting.upper().replace(".", "__")
        raise ConfigError(f"setting {setting} ({env}) is required and has no value")
    return value.get_secret_value()
