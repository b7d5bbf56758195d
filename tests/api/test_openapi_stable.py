"""``/openapi.json`` changes only on purpose.

The live description, put in canonical form (keys sorted; tags, parameters, security
requirements and ``required`` lists sorted: their order carries no meaning), must equal the
committed snapshot ``snapshots/openapi.json``. Moving a route between modules, renaming a handler
or reordering the router must leave it as it is; a change to the API itself updates the snapshot
in the same commit:

    BANKHUB_UPDATE_OPENAPI_SNAPSHOT=1 scripts/test tests/api/test_openapi_stable.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.conftest import Harness

SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi.json"
#: lists whose order means nothing to a reader of the description
UNORDERED = frozenset({"tags", "parameters", "security", "required"})


def _key(item: Any) -> str:
    return json.dumps(item, sort_keys=True)


def canonical(node: Any, name: str | None = None) -> Any:
    if isinstance(node, dict):
        return {key: canonical(value, key) for key, value in sorted(node.items())}
    if isinstance(node, list):
        items = [canonical(item) for item in node]
        return sorted(items, key=_key) if name in UNORDERED else items
    return node


def dump(spec: dict[str, Any]) -> str:
    return json.dumps(canonical(spec), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def test_canonical_form_ignores_order_only() -> None:
    one = {"paths": {"/b": {"parameters": [{"name": "x"}, {"name": "a"}]}, "/a": {}}}
    two = {"paths": {"/a": {}, "/b": {"parameters": [{"name": "a"}, {"name": "x"}]}}}
    assert dump(one) == dump(two)
    # the order of anything else (a schema's enum, oneOf, the servers) still counts
    assert dump({"enum": ["a", "b"]}) != dump({"enum": ["b", "a"]})


async def test_openapi_matches_the_snapshot(harness: Harness) -> None:
    response = await harness.client.get("/openapi.json")
    assert response.status_code == 200
    live = dump(response.json())
    if os.environ.get("BANKHUB_UPDATE_OPENAPI_SNAPSHOT") == "1":
        SNAPSHOT.write_text(live, encoding="utf-8")
    assert live == SNAPSHOT.read_text(encoding="utf-8"), (
        "/openapi.json differs from tests/api/snapshots/openapi.json; if the change is meant, "
        "update the snapshot (see this module's docstring)"
    )
