"""Team passwords (S3): argon2id, 12 to 256 characters, no composition rules, no common ones.

argon2id with m=19456 KiB, t=2, p=1 (the OWASP minimum the security bar names); a stored hash
made with weaker parameters is re-hashed at the next successful sign-in.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
#: longer than anyone types; bounded so a huge body cannot buy a lot of hashing
MAX_LENGTH = 256

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)
#: verified against when the email is unknown, so both answers take the same time
_DUMMY = _HASHER.hash("not a password of anyone's: only here for timing")

_AROUND = "0123456789!@#$%^&*()-_=+.,;:?~ "
_MIN_CORE = 6


class WeakPassword(ValueError):
    """The password is refused; the message says why, for the form."""


@cache
def common_passwords() -> frozenset[str]:
    text = files("bankhub.dashboard").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _repeats(text: str) -> bool:
    """One short unit repeated: ``aaaaaaaaaaaa``, ``abcabcabcabc``, ``passwordpassword``."""
    return re.fullmatch(r"(.{1,8}?)\1+", text) is not None


def is_common(password: str, context: tuple[str, ...] = ()) -> bool:
    """A known common password, ignoring case and digits or punctuation added at either end;
    a repeated short unit; or one of ``context`` (the email, the product's name) with additions."""
    lowered = password.lower()
    common = common_passwords()
    core = lowered.strip(_AROUND)
    candidates = {lowered, core, lowered.rstrip(_AROUND), lowered.lstrip(_AROUND)}
    if any(len(c) >= _MIN_CORE and c in common for c in candidates):
        return True
    if _repeats(lowered) or _repeats(core) or len(set(lowered)) <= 3:
        return True
    words = {w.lower() for w in context if len(w) >= 4}
    return any(core.replace(w, "") == "" for w in words)


def check_new(password: str, context: tuple[str, ...] = ()) -> None:
    """Raise WeakPassword unless ``password`` may be chosen."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"Use at most {MAX_LENGTH} characters.")
    if is_common(password, context):
        raise WeakPassword("This password is too common or too easy to guess; choose another.")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Constant work whether or not there is a stored hash (unknown members cost the same)."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)
