"""Bearer-token authentication with roles: viewers read, admins also act."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from operadora.api.errors import ApiError
from operadora.store.admin import TokenIdentity, TokenRepository

_bearer = HTTPBearer(auto_error=False, description="A token from `operadora token create`")


class TokenAuth:
    """Verifies tokens against their stored hashes, with a short cache (revocation takes
    effect within ``ttl_s``)."""

    def __init__(self, tokens: TokenRepository, ttl_s: float = 5.0) -> None:
        self.tokens, self.ttl_s = tokens, ttl_s
        self._cache: dict[str, tuple[float, TokenIdentity | None]] = {}

    async def identify(self, token: str) -> TokenIdentity | None:
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        identity = await self.tokens.verify(token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now + self.ttl_s, identity)
        return identity


async def viewer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenIdentity:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "a bearer token is required")
    auth: TokenAuth = request.app.state.auth
    identity = await auth.identify(credentials.credentials)
    if identity is None:
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")
    request.state.token = credentials.credentials
    return identity


async def admin(identity: Annotated[TokenIdentity, Depends(viewer)]) -> TokenIdentity:
    if identity.role != "admin":
        raise ApiError(403, "forbidden", "this action needs an admin token", role=identity.role)
    return identity


Viewer = Annotated[TokenIdentity, Depends(viewer)]
Admin = Annotated[TokenIdentity, Depends(admin)]
