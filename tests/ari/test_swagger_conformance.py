"""What the client sends and reads exists in Asterisk 22's ARI Swagger, with the same types."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from operadora.ari import models
from operadora.ari import operations as ops
from operadora.ari.events import HANDLED_EVENTS, AriEvent
from operadora.ari.models import AriModel, AriType
from operadora.ari.operations import OPERATIONS, Operation, Param

pytestmark = pytest.mark.unit

DOCS = Path("/work/shared/asterisk/ari-api-docs")
if not DOCS.is_dir():
    DOCS = Path(__file__).resolve().parents[3] / "shared" / "asterisk" / "ari-api-docs"


def _load() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in DOCS.glob("*.json")}


SWAGGER = _load()
ALL_MODELS: dict[str, dict[str, Any]] = {}
for _doc in SWAGGER.values():
    ALL_MODELS.update(_doc.get("models", {}))


def _swagger_op(resource: str, path: str, method: str) -> dict[str, Any]:
    for api in SWAGGER[resource]["apis"]:
        if api["path"] == path:
            for op in api["operations"]:
                if op["httpMethod"] == method:
                    return dict(op)
    raise AssertionError(f"{method} {path} is not in {resource}.json")


def test_the_client_declares_operations() -> None:
    assert len(OPERATIONS) >= 25
    names = {(op.resource, op.nickname) for op in OPERATIONS}
    assert ("channels", "externalMedia") in names
    assert ("bridges", "addChannel") in names


def operation_problems(op: Operation) -> list[str]:
    """What does not match the Swagger in one declared operation (empty: conforms)."""
    try:
        swagger = _swagger_op(op.resource, op.path, op.method)
    except AssertionError as exc:
        return [str(exc)]
    problems = []
    if swagger["nickname"] != op.nickname:
        problems.append(f"nickname {op.nickname} != {swagger['nickname']}")
    if swagger["responseClass"] != op.response:
        problems.append(f"response {op.response} != {swagger['responseClass']}")
    declared = {p["name"]: p for p in swagger.get("parameters", [])}
    for param in op.params:
        spec = declared.get(param.name)
        if spec is None:
            problems.append(f"no parameter {param.name}")
            continue
        if spec["paramType"] != param.where:
            problems.append(f"{param.name}: paramType {param.where} != {spec['paramType']}")
        if spec["dataType"] != param.data_type:
            problems.append(f"{param.name}: dataType {param.data_type} != {spec['dataType']}")
        if bool(spec.get("allowMultiple")) != param.multiple:
            problems.append(f"{param.name}: allowMultiple differs")
    required = {n for n, p in declared.items() if p.get("required") and p["paramType"] != "body"}
    missing = required - {p.name for p in op.params}
    if missing:
        problems.append(f"required parameters not declared: {sorted(missing)}")
    return problems


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.resource}.{op.nickname}")
def test_operation_matches_swagger(op: Operation) -> None:
    assert operation_problems(op) == []


def test_the_check_catches_mistakes() -> None:
    good = ops.BRIDGE_ADD_CHANNEL
    assert operation_problems(good) == []
    typo = dataclasses.replace(good, params=(*good.params[:1], Param("channels", multiple=True)))
    assert any("no parameter channels" in p for p in operation_problems(typo))
    wrong_type = dataclasses.replace(ops.CHANNEL_CONTINUE, params=(Param("priority", "long"),))
    problems = operation_problems(wrong_type)
    assert any("dataType long != int" in p for p in problems)
    assert any("required parameters not declared" in p for p in problems)  # channelId
    assert operation_problems(dataclasses.replace(good, path="/bridges/{bridgeId}/add"))


def _ari_models() -> list[type[AriModel]]:
    found: list[type[AriModel]] = []
    for value in vars(models).values():
        if isinstance(value, type) and issubclass(value, AriModel) and value.ari_model:
            found.append(value)
    found.extend(HANDLED_EVENTS)
    found.append(AriEvent)
    return found


def _swagger_type(annotation: Any, metadata: list[Any]) -> str:
    for item in metadata:
        if isinstance(item, AriType):
            return item.name
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        assert len(inner) == 1
        return _swagger_type(inner[0], [])
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        return _swagger_type(base, meta)
    if origin is list:
        return f"List[{_swagger_type(typing.get_args(annotation)[0], [])}]"
    if origin is dict:
        return "object"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return str(annotation.ari_model)
    return {str: "string", int: "int", bool: "boolean", float: "double"}[annotation]


def _swagger_properties(model: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    spec = ALL_MODELS[model]
    props.update(spec["properties"])
    # Event fields come from Event and Message, the bases every event extends
    if model != "Message" and (
        model == "Event" or ("Event" in ALL_MODELS and model in ALL_MODELS["Event"]["subTypes"])
    ):
        props.update(ALL_MODELS["Event"]["properties"])
        props.update(ALL_MODELS["Message"]["properties"])
    return props


def model_problems(cls: type[AriModel]) -> list[str]:
    """Fields of one model that the Swagger does not have, or has with another type."""
    if cls.ari_model not in ALL_MODELS:
        return [f"{cls.ari_model} is not an ARI model"]
    props = _swagger_properties(cls.ari_model)
    problems = []
    for name, field in cls.model_fields.items():
        if name not in props:
            problems.append(f"{cls.ari_model}.{name} is not in the Swagger")
            continue
        expected = props[name]["type"]
        got = _swagger_type(field.annotation, list(field.metadata))
        if got != expected:
            problems.append(f"{cls.ari_model}.{name}: {got} != {expected}")
    return problems


@pytest.mark.parametrize("cls", _ari_models(), ids=lambda c: c.ari_model)
def test_model_fields_match_swagger(cls: type[AriModel]) -> None:
    assert model_problems(cls) == []


def test_the_model_check_catches_mistakes() -> None:
    class BadChannel(AriModel):
        ari_model: ClassVar[str] = "Channel"
        id: str
        state: int = 0  # a string in ARI
        callerid: str = ""  # the field is called caller

    assert model_problems(BadChannel) == [
        "Channel.state: int != string",
        "Channel.callerid is not in the Swagger",
    ]


def test_every_handled_event_is_an_ari_event_type() -> None:
    subtypes = set(ALL_MODELS["Event"]["subTypes"])
    for cls in HANDLED_EVENTS:
        assert cls.ari_model in subtypes
