"""What a FinTS login keeps between dialogs: never the PIN, never a TAN.

``client`` is python-fints' ``deconstruct(including_private=False)`` blob, base64-encoded. That
blob is zlib-compressed JSON holding the system id, the bank parameter data (BPD: public bank
settings) and the selected TAN mechanism and medium; without ``including_private`` it leaves out
the user parameter data (account numbers, holder names). ``system_id`` and ``tan_mechanism`` are
repeated in the clear so the platform and operators can read them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from bankhub.connectors.base import StateStore

KEY = "fints"
VERSION = 1


@dataclass(frozen=True, slots=True)
class SavedState:
    client: bytes | None = None
    system_id: str | None = None
    tan_mechanism: str | None = None


def load(store: StateStore) -> SavedState:
    """Read the saved state; anything unreadable is ignored (the next login rebuilds it)."""
    raw = store.load().get(KEY)
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        return SavedState()
    blob: bytes | None = None
    if isinstance(raw.get("client"), str):
        try:
            blob = base64.b64decode(raw["client"], validate=True)
        except (binascii.Error, ValueError):
            blob = None
    system_id = raw.get("system_id")
    mechanism = raw.get("tan_mechanism")
    return SavedState(
        client=blob,
        system_id=system_id if isinstance(system_id, str) else None,
        tan_mechanism=mechanism if isinstance(mechanism, str) else None,
    )


def save(store: StateStore, saved: SavedState) -> None:
    state: dict[str, Any] = store.load()
    state[KEY] = {
        "version": VERSION,
        "client": base64.b64encode(saved.client).decode("ascii") if saved.client else None,
        "system_id": saved.system_id,
        "tan_mechanism": saved.tan_mechanism,
    }
    store.save(state)
