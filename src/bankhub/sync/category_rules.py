"""An app's own categorization rules, read from its row and compiled once per version."""

from __future__ import annotations

import json

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.categories import AppRule, Keywords, RulesError, app_rules
from bankhub.partners.models import App

#: compiled rule sets by their JSON text: apps change their rules rarely, syncs read them often
_compiled: dict[str, Keywords | None] = {}
_MAX_COMPILED = 1024
#: built once (every sync reads it; see ``sync.engine``'s statements)
_RULES = select(App.category_rules).where(App.id == bindparam("app_id"))


async def app_category_rules(session: AsyncSession, app_id: int) -> Keywords | None:
    """The app's rules compiled, or None when it has none. Rules stored before a change of the
    taxonomy that no longer compile are skipped as a whole (the defaults apply), not fatal to
    the sync."""
    stored = (await session.execute(_RULES, {"app_id": app_id})).scalar_one_or_none()
    if not stored:
        return None
    key = json.dumps(stored, sort_keys=True)
    if key not in _compiled:
        if len(_compiled) >= _MAX_COMPILED:
            _compiled.clear()
        try:
            rules = [AppRule(r["category"], r["keyword"], r.get("sign", "any")) for r in stored]  # type: ignore[arg-type]
            _compiled[key] = app_rules(rules)
        except (RulesError, KeyError, TypeError):
            _compiled[key] = None
    return _compiled[key]
