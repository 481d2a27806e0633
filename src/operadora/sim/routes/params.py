"""ARI request parameters: query string, or fields of a JSON body (``variables`` included)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from operadora.sim.pbx import Pbx, PbxError


class Params:
    def __init__(self, query: dict[str, str], body: dict[str, Any]) -> None:
        self.query = query
        self.body = body

    @classmethod
    async def read(cls, request: web.Request) -> Params:
        body: dict[str, Any] = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                try:
                    data = json.loads(raw)
                except ValueError:
                    raise PbxError(400, "Invalid JSON body") from None
                if isinstance(data, dict):
                    body = data
        return cls(dict(request.query), body)

    def get(self, name: str) -> str | None:
        if name in self.query:
            return self.query[name]
        value = self.body.get(name)
        if value is None or isinstance(value, dict | list):
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def text(self, name: str, default: str = "") -> str:
        value = self.get(name)
        return default if value is None else value

    def required(self, name: str) -> str:
        value = self.get(name)
        if value is None or value == "":
            raise PbxError(400, f"{name} is required")
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise PbxError(400, f"{name} must be an integer") from None

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        return value.lower() in ("true", "1", "yes")

    def variables(self) -> dict[str, str]:
        raw = self.body.get("variables")
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        return {}


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(data, separators=(",", ":")), content_type="application/json"
    )


def no_content() -> web.Response:
    return web.Response(status=204)


def pbx_of(request: web.Request) -> Pbx:
    pbx = request.app[PBX_KEY]
    assert isinstance(pbx, Pbx)
    return pbx


PBX_KEY: web.AppKey[Pbx] = web.AppKey("pbx", Pbx)
