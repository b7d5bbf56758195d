"""The SDK says what bankhub's ``/openapi.json`` says, in both directions.

Two checks: the generated modules are exactly what ``scripts/generate.py`` makes of the
committed description and of a running server's; and, independently of the generator, a walk
of the description against the SDK's models and methods (every operation, parameter, field,
type and enum value there is in the SDK, and the SDK has nothing the description lacks).
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sdk_support import Bankhub

import bankhub_client
from bankhub_client import AsyncBankhubClient, BankhubClient, _models
from bankhub_client._operations import OPERATIONS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import generate  # noqa: E402


def _generated(spec: dict[str, Any]) -> dict[str, str]:
    return {name: generate.formatted(text) for name, text in generate.render(spec).items()}


def _committed() -> dict[str, str]:
    package = ROOT / "src" / "bankhub_client"
    return {name: (package / name).read_text(encoding="utf-8") for name in generate.render_names}


@pytest.fixture(scope="module")
def snapshot() -> dict[str, Any]:
    return generate.load(None)


def test_the_committed_modules_are_generated_from_the_snapshot(snapshot: dict[str, Any]) -> None:
    assert _generated(snapshot) == _committed(), "run: python sdk/python/scripts/generate.py"


def test_a_running_server_describes_the_same_api(bankhub: Bankhub) -> None:
    live = generate.load(f"{bankhub.url}/openapi.json")
    assert _generated(live) == _committed(), (
        "the server's /openapi.json differs from what the SDK was generated from"
    )


# --- the independent walk ----------------------------------------------------------------------


def _schemas(spec: dict[str, Any]) -> dict[str, Any]:
    return dict(spec["components"]["schemas"])


def _nullable(node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    options = node.get("oneOf")
    if options and any(o.get("type") == "null" for o in options):
        rest = [o for o in options if o.get("type") != "null"]
        return rest[0], True
    return node, False


def _kind(node: dict[str, Any], schemas: dict[str, Any]) -> str:
    """The description's type of a field, in msgspec.inspect's words."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _kind(schemas[name], schemas) if "enum" in schemas[name] else "ref:" + name
    if "enum" in node:
        return "enum:" + ",".join(sorted(map(str, node["enum"])))
    kind = node["type"]
    if kind == "array":
        return f"list[{_kind(node['items'], schemas)}]"
    return {"integer": "int", "number": "float", "boolean": "bool", "object": "dict"}.get(
        kind, "str"
    )


def _sdk_kind(t: msgspec.inspect.Type) -> str:
    if isinstance(t, msgspec.inspect.StructType):
        return "ref:" + t.cls.__name__
    if isinstance(t, msgspec.inspect.LiteralType):
        return "enum:" + ",".join(sorted(map(str, t.values)))
    if isinstance(t, msgspec.inspect.ListType):
        return f"list[{_sdk_kind(t.item_type)}]"
    if isinstance(t, msgspec.inspect.DictType):
        return "dict"
    if isinstance(t, msgspec.inspect.IntType):
        return "int"
    if isinstance(t, msgspec.inspect.FloatType):
        return "float"
    if isinstance(t, msgspec.inspect.BoolType):
        return "bool"
    # the wire's strings: text, decimal amounts, RFC 3339 times, dates, file content
    strings = (
        msgspec.inspect.StrType,
        msgspec.inspect.DecimalType,
        msgspec.inspect.DateTimeType,
        msgspec.inspect.DateType,
        msgspec.inspect.BytesType,
    )
    assert isinstance(t, strings), t
    return "str"


def _split(t: msgspec.inspect.Type) -> tuple[msgspec.inspect.Type, bool]:
    """(the type, None allowed); msgspec leaves ``UnsetType`` out (``required`` says it)."""
    if not isinstance(t, msgspec.inspect.UnionType):
        return t, False
    rest = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
    assert len(rest) == 1, t
    return rest[0], len(rest) < len(t.types)


def test_every_schema_is_a_model_with_its_fields_types_and_enums(
    snapshot: dict[str, Any],
) -> None:
    schemas = _schemas(snapshot)
    models = {
        name
        for name in _models.__all__
        if isinstance(value := getattr(_models, name), type) and issubclass(value, msgspec.Struct)
    }
    aliases = {name for name in _models.__all__ if name not in models}
    assert models | aliases == set(schemas), "models and the description's schemas differ"
    for name in aliases:
        value = getattr(_models, name)
        assert typing.get_origin(value) is typing.Literal, name
        assert list(typing.get_args(value)) == schemas[name]["enum"], name
    for name in sorted(models):
        schema = schemas[name]
        info = msgspec.inspect.type_info(getattr(_models, name))
        assert isinstance(info, msgspec.inspect.StructType)
        fields = {f.name: f for f in info.fields}
        props = schema.get("properties", {})
        assert set(fields) == set(props), name
        required = set(schema.get("required", []))
        for field, prop in props.items():
            node, nullable = _nullable(prop)
            t, none = _split(fields[field].type)
            where = f"{name}.{field}"
            assert none == nullable, where
            assert fields[field].required == (field in required), where
            assert _sdk_kind(t) == _kind(node, schemas), where


def _params(method: Any) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(method).parameters)


def test_every_v2_operation_is_a_method_with_its_parameters(snapshot: dict[str, Any]) -> None:
    schemas = _schemas(snapshot)
    described: set[tuple[str, str]] = set()
    for path, ops in snapshot["paths"].items():
        if not path.startswith("/v2/"):
            continue
        for verb, op in ops.items():
            if verb not in ("get", "post", "put", "delete", "patch"):
                continue
            key = (verb.upper(), path)
            described.add(key)
            assert key in OPERATIONS, f"the SDK has no method for {key}"
            name = OPERATIONS[key]
            for cls in (BankhubClient, AsyncBankhubClient):
                params = _params(getattr(cls, name))
                expected = {"self"}
                for p in op.get("parameters", []):
                    if p["in"] == "header":
                        assert p["name"] == "Idempotency-Key", (key, p["name"])
                        expected.add("idempotency_key")
                    else:
                        expected.add(p["name"])
                for media in op.get("requestBody", {}).get("content", {}).values():
                    body = media["schema"]
                    if "$ref" in body:
                        body = schemas[body["$ref"].rsplit("/", 1)[-1]]
                    expected |= set(body["properties"])
                    if "file" in body["properties"]:
                        expected.add("filename")
                if all("login-secret" in s for s in op["security"]):
                    expected.add("login_secret")
                assert set(params) == expected, (cls.__name__, key)
                for p in op.get("parameters", []):
                    if p["in"] == "path":
                        assert params[p["name"]].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
                    elif p["in"] == "query" and p.get("required"):
                        assert params[p["name"]].default is inspect.Parameter.empty, key
    assert set(OPERATIONS) == described, "the SDK has methods the description lacks"


def test_models_are_exported() -> None:
    for name in _models.__all__:
        assert getattr(bankhub_client, name) is getattr(_models, name)
    assert isinstance(bankhub_client, types.ModuleType)
