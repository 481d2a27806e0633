"""Every route the simulator serves exists in Asterisk 22.10.1's ARI Swagger documents, with the
same method, path and parameter names."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import pytest
from aiohttp import web

from operadora.sim.routes import bridges, channels, events, misc

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2].parent / "shared" / "asterisk" / "ari-api-docs"
PARAM_USE = re.compile(
    r"params\.(?:get|text|required|integer|flag)\(\s*\"(\w+)\"|request\.query\.get\(\s*\"(\w+)\""
)
CALLS = re.compile(r"\b(_?\w+)\(")


def swagger() -> dict[tuple[str, str], dict[str, str]]:
    ops: dict[tuple[str, str], dict[str, str]] = {}
    for doc in sorted(DOCS.glob("*.json")):
        for api in json.loads(doc.read_text()).get("apis", []):
            for op in api.get("operations", []):
                params = {p["name"]: p["paramType"] for p in op.get("parameters", [])}
                ops[(op["httpMethod"], api["path"])] = params
    return ops


def served() -> list[tuple[str, str, Any, ModuleType]]:
    out = []
    for module in (channels, bridges, misc, events):
        for route in module.routes:
            assert isinstance(route, web.RouteDef)
            out.append((route.method, route.path, route.handler, module))
    return out


def used_params(handler: Any, module: ModuleType, seen: set[str] | None = None) -> set[str]:
    """Parameter names the handler (and module helpers it calls) reads from the request."""
    seen = seen if seen is not None else set()
    source = inspect.getsource(handler)
    names = {a or b for a, b in PARAM_USE.findall(source)}
    if "params.variables()" in source:
        names.add("variables")
    handlers = {route.handler for route in module.routes if isinstance(route, web.RouteDef)}
    for called in CALLS.findall(source):
        helper = getattr(module, called, None)
        if isinstance(helper, FunctionType) and called not in seen and helper not in handlers:
            if helper.__module__ == module.__name__:
                seen.add(called)
                names |= used_params(helper, module, seen)
    return names


def test_swagger_documents_are_there() -> None:
    assert len(swagger()) > 90


@pytest.mark.parametrize("method,path,handler,module", served(), ids=lambda v: str(v)[:60])
def test_route_is_documented_with_the_same_parameters(
    method: str, path: str, handler: Any, module: ModuleType
) -> None:
    assert path.startswith("/ari/")
    ops = swagger()
    key = (method, path[len("/ari") :])
    assert key in ops, f"{method} {path} is not an ARI operation"
    documented = ops[key]
    path_params = set(re.findall(r"\{(\w+)\}", path))
    assert path_params == {n for n, kind in documented.items() if kind == "path"}
    unknown = used_params(handler, module) - set(documented)
    assert not unknown, f"{method} {path} reads undocumented parameters {sorted(unknown)}"


def test_the_checker_sees_parameters() -> None:
    by_path = {(m, p): (h, mod) for m, p, h, mod in served()}
    handler, module = by_path[("POST", "/ari/channels")]
    assert {"endpoint", "app", "appArgs", "channelId", "otherChannelId", "callerId"} <= used_params(
        handler, module
    )
    handler, module = by_path[("GET", "/ari/events")]
    assert used_params(handler, module) == {"app", "subscribeAll"}
