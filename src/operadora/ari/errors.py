"""ARI errors mapped to what they mean for call control.

A 404 means the channel, bridge or playback is gone (usually: the other party hung up);
409/422 mean the request does not fit the current state; 5xx and transport failures are
worth retrying.
"""

from __future__ import annotations


class AriError(Exception):
    """An ARI request failed. ``status`` is the HTTP status (0 when no response came)."""

    retryable = False

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        super().__init__(f"{where}{status} {message}".strip())


class AriBadRequest(AriError):
    """400: a parameter is missing or malformed (a bug on our side)."""


class AriUnauthorized(AriError):
    """401/403: the ARI user name or password is wrong."""


class AriNotFound(AriError):
    """404: the channel, bridge, playback or recording no longer exists."""


class AriConflict(AriError):
    """409: the resource is in a state that forbids the request (e.g. channel not in Stasis)."""


class AriUnprocessable(AriError):
    """422: the request is understood but impossible (e.g. redirect to another technology)."""


class AriServerError(AriError):
    """5xx: Asterisk failed; the request may succeed if repeated."""

    retryable = True


class AriUnavailable(AriError):
    """Asterisk could not be reached or did not answer in time."""

    retryable = True


_BY_STATUS: dict[int, type[AriError]] = {
    400: AriBadRequest,
    401: AriUnauthorized,
    403: AriUnauthorized,
    404: AriNotFound,
    409: AriConflict,
    412: AriConflict,
    422: AriUnprocessable,
}


def error_for_status(status: int, message: str, *, method: str = "", path: str = "") -> AriError:
    """The exception class that names what an HTTP error status means in ARI."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = AriServerError if status >= 500 else AriError
    return cls(status, message, method=method, path=path)
