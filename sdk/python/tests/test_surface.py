"""The public surface is pinned: the names ``bankhub_client`` exports and the signature of
every public method and function, compared with ``surface.txt``. A change to it is a change to
what partners' code calls, made on purpose:

    BANKHUB_UPDATE_SDK_SURFACE=1 pytest sdk/python/tests/test_surface.py
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import msgspec

import bankhub_client
from bankhub_client import signing

SNAPSHOT = Path(__file__).parent / "surface.txt"


def _type(tp: object) -> str:
    if isinstance(tp, type):
        return tp.__qualname__
    return re.sub(r"\b(bankhub_client\._models|msgspec|datetime|decimal)\.", "", str(tp))


def _signature(member: object) -> str:
    """The signature, with addresses of default objects left out (they change per run)."""
    return re.sub(r" at 0x[0-9a-f]+", "", str(inspect.signature(member)))  # type: ignore[arg-type]


def _describe(name: str, value: object) -> list[str]:
    if inspect.ismodule(value):
        lines: list[str] = []
        for attr in sorted(getattr(value, "__all__", [])):
            lines += _describe(f"{name}.{attr}", getattr(value, attr))
        return lines
    if isinstance(value, type) and issubclass(value, msgspec.Struct):
        fields = ", ".join(f"{f.name}: {_type(f.type)}" for f in msgspec.structs.fields(value))
        return [f"{name}({fields})"]
    if isinstance(value, type):
        lines = [f"class {name}({', '.join(b.__name__ for b in value.__bases__)})"]
        for attr, member in sorted(vars(value).items()):
            if attr.startswith("_") and attr not in ("__init__", "__enter__", "__aenter__"):
                continue
            if isinstance(member, property):
                lines.append(f"{name}.{attr}: property")
        for attr, member in inspect.getmembers(value, inspect.isfunction):
            if attr.startswith("_") and attr != "__init__":
                continue
            lines.append(f"{name}.{attr}{_signature(member)}")
        return lines
    if callable(value):
        return [f"{name}{_signature(value)}"]
    return [f"{name} = {value!r}"]


def surface() -> str:
    lines: list[str] = []
    for name in sorted(bankhub_client.__all__):
        lines += _describe(name, getattr(bankhub_client, name))
    lines += _describe("signing", signing)  # not imported by the package: its extra is optional
    return "\n".join(lines) + "\n"


def test_the_public_surface_is_the_committed_one() -> None:
    now = surface()
    if os.environ.get("BANKHUB_UPDATE_SDK_SURFACE") == "1":
        SNAPSHOT.write_text(now, encoding="utf-8")
    assert now == SNAPSHOT.read_text(encoding="utf-8"), (
        "the SDK's public surface changed; if on purpose, update tests/surface.txt (see the "
        "module's docstring) and say so in the changelog"
    )
