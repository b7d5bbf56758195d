"""The simulated bank behind the sandbox connector: an operator outage switch and consent codes.

Everything here is process-local. That is enough for the embedded default and for tests; a
scaled-out deployment serving the sandbox from several processes flips the switch in each.
"""

from __future__ import annotations

import hashlib
import hmac

# A simulated bank signs its own consent codes; this key is public on purpose and protects nothing
# real: it only lets the sandbox page and the sandbox connector agree on which codes are genuine.
_CONSENT_CODE_KEY = b"bankhub-sandbox-bank: simulated consent codes, not a secret"

_down: set[str] = set()


def set_outage(slug: str, down: bool) -> None:
    """Take the sandbox institution ``slug`` offline (``down=True``) or bring it back."""
    if down:
        _down.add(slug)
    else:
        _down.discard(slug)


def is_down(slug: str) -> bool:
    """Whether the operator has taken the sandbox institution ``slug`` offline."""
    return slug in _down


def consent_code(request_id: str) -> str:
    """The code the sandbox bank's consent page hands back when the user approves ``request_id``."""
    return hmac.new(_CONSENT_CODE_KEY, request_id.encode(), hashlib.sha256).hexdigest()


def is_valid_consent_code(request_id: str, code: str) -> bool:
    """Constant-time check of a code returned through the redirect."""
    return hmac.compare_digest(consent_code(request_id).encode(), code.encode())
