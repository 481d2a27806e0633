"""Errors every voice provider raises, whatever its SDK or server says."""

from __future__ import annotations


class ProviderError(Exception):
    """A speech or language provider failed; ``retryable`` says whether trying again may help."""

    def __init__(self, provider: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.retryable = retryable


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says what to install."""

    def __init__(self, what: str, extra: str, package: str | None = None) -> None:
        hint = f"pip install 'operadora[{extra}]'"
        if package:
            hint += f" (or: pip install {package})"
        super().__init__(f"{what} needs an optional dependency that is not installed: {hint}")
        self.extra = extra


def http_status_retryable(status: int) -> bool:
    """Rate limits, timeouts and server errors are worth a retry; client errors are not."""
    return status in (408, 409, 425, 429) or status >= 500
