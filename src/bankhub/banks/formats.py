"""Reading bank registries: the xs2a-adapter CSV, the FinTS institute directory and bankhub's
own JSON or YAML format.

Nothing here touches the database. A file becomes :class:`BankRecord` s (one per bank to store)
and :class:`Refusal` s (the line of a row that is skipped, and why). A file that cannot be read as
a whole (not UTF-8, not JSON or YAML, not the documented top-level shape) raises
:class:`RegistryFileError` naming the line, and nothing of it is imported.

BICs are checked with ``schwifty`` (structure and ISO country), and a bank code (BLZ) against
schwifty's IBAN data for the BIC's country (its length and kind of characters), rather than with
rules of our own. The JSON reader is the standard library's, run through its pure-Python scanner
so that each bank's line can be named; YAML is PyYAML's safe loader with YAML 1.2 booleans (so
that ``country: NO`` stays Norway).
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import json
import json.decoder
import json.scanner
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
import yaml
from schwifty import BIC
from schwifty.domain import Component
from schwifty.exceptions import SchwiftyException
from schwifty.registry import get_iban_spec

from bankhub.connectors.ukob.params import UkobParams
from bankhub.connectors.xs2a.params import InstitutionConfigError

SOURCE_XS2A_ADAPTER = "xs2a-adapter"
SOURCE_BANKHUB = "bankhub"
SOURCE_FINTS_INSTITUTES = "fints-institutes"
FORMATS = (SOURCE_XS2A_ADAPTER, SOURCE_BANKHUB, SOURCE_FINTS_INSTITUTES)

#: the catalogue colours of a bank whose entry names none
DEFAULT_COLOR = ("1F3A5F", "FFFFFF")
MAX_NAME = 200
MAX_URL = 2000
#: the xs2a-adapter CSV: id, name, BIC, URL, adapter id, BLZ, then optionally the OAuth IdP URL(s)
#: and the SCA approaches (the columns of the registry's ``AspspCsvRecord``)
XS2A_ADAPTER_COLUMNS = (
    "id",
    "name",
    "BIC",
    "URL",
    "adapter id",
    "BLZ",
    "IdP URL",
    "SCA approaches",
)
_ADAPTER_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*-adapter$")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,119}$")
_HEX_COLOR = re.compile(r"^[0-9A-Fa-f]{6}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ScaApproach(StrEnum):
    """NextGenPSD2 1.3's SCA approaches (``aspspScaApproach``)."""

    REDIRECT = "REDIRECT"
    OAUTH = "OAUTH"
    DECOUPLED = "DECOUPLED"
    EMBEDDED = "EMBEDDED"


class RegistryFileError(ValueError):
    """The file cannot be read as a registry at all; ``line`` is where it went wrong."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line
        self.reason = message


@dataclass(frozen=True, slots=True)
class BankRecord:
    """One bank as it is stored: ``key`` is its stable identity across imports (see
    ``docs/banks.md``); ``params`` are its connector's institution parameters."""

    key: str
    line: int
    source: str
    name: str
    bic: str
    blz: str | None
    country_code: str
    connector: str
    params: dict[str, Any]
    logo_url: str | None = None
    color_primary: str = DEFAULT_COLOR[0]
    color_secondary: str = DEFAULT_COLOR[1]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A row that was skipped (or, as a note, kept with something worth a look)."""

    line: int
    reason: str


@dataclass(slots=True)
class Registry:
    """What a registry file holds: the banks to store, the rows refused, the notes on kept rows."""

    format: str
    rows: int = 0
    records: list[BankRecord] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    notes: list[Refusal] = field(default_factory=list)


class _RowError(ValueError):
    pass


# --- checks shared by both formats ------------------------------------------------------------


def _text(value: str, what: str, limit: int = MAX_NAME) -> str:
    value = value.strip()
    if not value:
        raise _RowError(f"{what} is empty")
    if len(value) > limit:
        raise _RowError(f"{what} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise _RowError(f"{what} holds control characters")
    return value


def _bic(value: str) -> BIC:
    raw = value.strip()
    if not raw:
        raise _RowError("BIC is empty")
    try:
        return BIC(raw)
    except SchwiftyException as exc:
        raise _RowError(f"BIC {raw!r} is not a valid BIC ({exc})") from None


def _country(value: str, what: str) -> str:
    """An ISO country with IBANs (every country an XS2A or UK Open Banking bank is in)."""
    code = value.strip().upper()
    try:
        get_iban_spec(code)
    except SchwiftyException:
        raise _RowError(f"{what} {value!r} is not a country with IBANs") from None
    return code


def _bank_code(value: str | None, country: str) -> str | None:
    """The domestic bank code (BLZ in Germany) in the shape of the country's IBANs."""
    if value is None or not value.strip():
        return None
    code = value.strip()
    spec = get_iban_spec(country)
    span = spec.positions[Component.BANK_CODE]
    length = span.end - span.start
    if length == 0:
        raise _RowError(f"{country} IBANs have no bank code, but the row gives {code!r}")
    kind = re.match(r"^\d+!([nac])", spec.bban_spec)
    numeric = kind is not None and kind.group(1) == "n"
    if len(code) != length or (numeric and not code.isdigit()) or not code.isalnum():
        shape = f"{length} digits" if numeric else f"{length} letters or digits"
        raise _RowError(f"BLZ {code!r} is not a {country} bank code ({shape})")
    return code


def _https_url(value: str, what: str) -> str:
    url = value.strip()
    if not url:
        raise _RowError(f"{what} is empty")
    if "{" in url or "}" in url:
        # the registry's template URLs (``{Service Group}``) must be filled in per bank
        raise _RowError(f"{what} {url!r} holds a placeholder to be filled in, not a bank's URL")
    if len(url) > MAX_URL or _CONTROL.search(url) or " " in url:
        raise _RowError(f"{what} {url[:80]!r} is not a URL")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise _RowError(f"{what} {url!r} must be an https:// URL")
    if parts.username or parts.password:
        raise _RowError(f"{what} must not carry credentials")
    if parts.fragment:
        raise _RowError(f"{what} {url!r} must not have a #fragment")
    try:
        _ = parts.port
    except ValueError:
        raise _RowError(f"{what} {url!r} has an invalid port") from None
    return url.rstrip("/")


def _color(value: str, what: str) -> str:
    if not _HEX_COLOR.match(value):
        raise _RowError(f"{what} {value!r} must be six hexadecimal digits, e.g. 1F3A5F")
    return value.upper()


def _bic_notes(bic: BIC, blz: str | None) -> list[str]:
    """What schwifty's bank registry says against an otherwise valid row (kept, reported):
    that registry trails mergers, so its silence is no reason to refuse a bank."""
    notes: list[str] = []
    if not bic.exists:
        notes.append(f"BIC {bic.compact} is not in schwifty's bank registry")
    elif blz is not None and bic.domestic_bank_codes and blz not in bic.domestic_bank_codes:
        notes.append(
            f"BLZ {blz} is not one of BIC {bic.compact}'s bank codes in schwifty's registry "
            f"({', '.join(bic.domestic_bank_codes[:3])})"
        )
    return notes


# --- the xs2a-adapter CSV ---------------------------------------------------------------------


def _split_urls(value: str, what: str) -> list[str]:
    return [_https_url(part, what) for part in value.split()]


def _sca_approaches(value: str) -> list[str]:
    parts = [p for p in re.split(r"[|,;\s]+", value.strip()) if p]
    approaches: list[str] = []
    for part in parts:
        try:
            approach = ScaApproach(part.upper()).value
        except ValueError:
            allowed = ", ".join(a.value for a in ScaApproach)
            raise _RowError(f"SCA approach {part!r} is not one of {allowed}") from None
        if approach not in approaches:
            approaches.append(approach)
    return approaches


def _looks_like_url(value: str) -> bool:
    return "://" in value


def _shifted(row: list[str]) -> str | None:
    """Name a row whose values sit one column off (a URL where the adapter id belongs, an
    adapter id where the BLZ belongs, ...), so the refusal says what happened."""
    expected = {2: "BIC", 3: "URL", 4: "adapter id", 5: "BLZ"}
    for index, what in expected.items():
        if index >= len(row):
            break
        value = row[index].strip()
        if what != "URL" and _looks_like_url(value):
            return f"columns shifted: the {what} column holds a URL ({value[:80]!r})"
        if what == "URL" and value and not _looks_like_url(value) and _ADAPTER_ID.match(value):
            return f"columns shifted: the URL column holds an adapter id ({value!r})"
        if what == "BLZ" and _ADAPTER_ID.match(value):
            return f"columns shifted: the BLZ column holds an adapter id ({value!r})"
    return None


def _xs2a_adapter_row(row: list[str], line: int) -> tuple[BankRecord, list[str]]:
    if not 6 <= len(row) <= len(XS2A_ADAPTER_COLUMNS):
        raise _RowError(
            f"has {len(row)} columns; the xs2a-adapter format has 6 to 8 "
            f"({', '.join(XS2A_ADAPTER_COLUMNS)})"
        )
    if (shifted := _shifted(row)) is not None:
        raise _RowError(shifted)
    raw_id, raw_name, raw_bic, raw_url, raw_adapter, raw_blz = (v.strip() for v in row[:6])
    try:
        registry_id = str(uuid.UUID(raw_id))
    except ValueError:
        raise _RowError(f"id {raw_id[:60]!r} is not a UUID") from None
    name = _text(raw_name, "name")
    bic = _bic(raw_bic)
    country = _country(bic.country_code, "the BIC's country")
    blz = _bank_code(raw_blz, country)
    base_url = _https_url(raw_url, "URL")
    if not _ADAPTER_ID.match(raw_adapter):
        raise _RowError(f"adapter id {raw_adapter[:60]!r} is not an xs2a-adapter id")
    params: dict[str, Any] = {"base_url": base_url, "name": name, "adapter": raw_adapter}
    if len(row) > 6 and row[6].strip():
        params["idp_urls"] = _split_urls(row[6], "IdP URL")
    if len(row) > 7 and row[7].strip():
        params["sca_approaches"] = _sca_approaches(row[7])
    record = BankRecord(
        key=f"{SOURCE_XS2A_ADAPTER}:{registry_id}",
        line=line,
        source=SOURCE_XS2A_ADAPTER,
        name=name,
        bic=bic.compact,
        blz=blz,
        country_code=country,
        connector="xs2a",
        params=params,
    )
    return record, _bic_notes(bic, blz)


def read_xs2a_adapter(text: str) -> Registry:
    """The xs2a-adapter registry CSV (no header; see :data:`XS2A_ADAPTER_COLUMNS`)."""
    registry = Registry(SOURCE_XS2A_ADAPTER)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    seen_ids: dict[str, int] = {}
    seen_rows: dict[tuple[str, str, str | None, str], int] = {}
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # a broken quote swallows the rest of the file: nothing after it can be trusted
            raise RegistryFileError(f"not CSV: {exc}", line) from None
        if not any(cell.strip() for cell in row):
            continue  # blank lines are not rows
        registry.rows += 1
        try:
            record, notes = _xs2a_adapter_row(row, line)
        except _RowError as exc:
            registry.refusals.append(Refusal(line, str(exc)))
            continue
        if (first := seen_ids.get(record.key)) is not None:
            registry.refusals.append(Refusal(line, f"id already used on line {first}"))
            continue
        # The registry lists some banks several times under new ids with nothing else changed:
        # one catalogue entry each, or the connect page would show the same bank twice.
        same = (record.name, record.bic, record.blz, json.dumps(record.params, sort_keys=True))
        if (first := seen_rows.get(same)) is not None:
            registry.refusals.append(
                Refusal(line, f"duplicate of line {first} (same name, BIC, BLZ, URL and adapter)")
            )
            continue
        seen_ids[record.key] = line
        seen_rows[same] = line
        registry.records.append(record)
        registry.notes.extend(Refusal(line, note) for note in notes)
    return registry


# --- bankhub's own format (JSON or YAML) ------------------------------------------------------


class Color(msgspec.Struct, forbid_unknown_fields=True):
    primary: str
    secondary: str


class BankEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One bank in bankhub's registry format (``docs/banks.md``)."""

    #: the bank's stable identity across imports; by default its BIC and BLZ (``BIC/BLZ``)
    key: str | None = None
    name: str
    bic: str
    blz: str | None = None
    #: ISO 3166 alpha-2; by default the BIC's country
    country: str | None = None
    #: the bank's API root, e.g. the XS2A base URL (``https://api.bank.example/psd2``)
    base_url: str
    connector: Literal["xs2a", "ukob"] = "xs2a"
    sca_approaches: list[ScaApproach] = msgspec.field(
        default_factory=lambda: [ScaApproach.REDIRECT]
    )
    preferred_sca_approach: ScaApproach | None = None
    #: ``bank_offered``: the user picks accounts at the bank; ``global``: every account
    #: (``allPsd2``)
    consent_model: Literal["bank_offered", "global"] = "bank_offered"
    #: whether the bank answers ``bookingStatus=both`` or only ``booked``
    booking_status: Literal["booked", "both"] = "both"
    #: how far back the bank keeps transactions; by default the connector's depth
    history_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    consent_days: Annotated[int, msgspec.Meta(ge=1, le=180)] = 90
    frequency_per_day: Annotated[int, msgspec.Meta(ge=1, le=96)] = 4
    psu_id_required: bool = False
    idp_urls: list[str] = msgspec.field(default_factory=list)
    #: the OAUTH SCA approach (docs/connectors-xs2a.md): which variant, the authorization
    #: server's RFC 8414 metadata URL (by default the first of ``idp_urls``), the client id
    #: the bank registered for the operator
    oauth_variant: Literal["pre-step", "integrated"] | None = None
    oauth_metadata_url: str | None = None
    oauth_client_id: str | None = None
    logo_url: str | None = None
    color: Color | None = None
    #: UK Open Banking (``connector: ukob``, docs/connectors-ukob.md): the bank's OpenID
    #: Provider metadata, the client id and signing key id registered with it, and its
    #: ``x-fapi-financial-id``
    well_known_url: str | None = None
    client_id: str | None = None
    signing_key_id: str | None = None
    financial_id: str | None = None
    #: this bank's own transport (QWAC/OBWAC) and signing (QSealC/OBSeal) certificates, where
    #: they are not the operator's (security/eidas.py); passphrases only by variable name
    qwac_cert_file: str | None = None
    qwac_key_file: str | None = None
    qwac_key_passphrase_env: str | None = None
    qseal_cert_file: str | None = None
    qseal_key_file: str | None = None
    qseal_key_passphrase_env: str | None = None


#: the entry fields that pass on to the connector's parameters as they are, when given
_PASSED_ON = (
    "qwac_cert_file",
    "qwac_key_file",
    "qwac_key_passphrase_env",
    "qseal_cert_file",
    "qseal_key_file",
    "qseal_key_passphrase_env",
)
_UKOB_FIELDS = ("well_known_url", "client_id", "signing_key_id", "financial_id")


class BankFile(msgspec.Struct, forbid_unknown_fields=True):
    #: entries are checked one by one, so that one bad bank is refused and not the whole file
    banks: list[Any]
    version: Literal[1] = 1


def bank_file_schema() -> dict[str, Any]:
    """The JSON Schema of bankhub's format, from the structs themselves (``docs/banks.md``)."""
    _, defs = msgspec.json.schema_components([BankFile, BankEntry])
    file_schema = dict(defs.pop("BankFile"))
    file_schema["properties"] = {
        **file_schema["properties"],
        "banks": {"type": "array", "items": {"$ref": "#/$defs/BankEntry"}},
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **file_schema, "$defs": defs}


class _Located(dict[str, Any]):
    """A mapping that remembers the line it started on."""

    line: int = 0


#: the standard library's pure-Python JSON parts (not in its type stubs): the object parser and
#: the scanner that calls a ``parse_object`` of ours, where the C scanner would not
_JSON_OBJECT: Any = getattr(json.decoder, "JSONObject")  # noqa: B009
_PY_SCANNER: Any = getattr(json.scanner, "py_make_scanner")  # noqa: B009


def _json_with_lines(text: str) -> Any:
    """``json.loads`` whose objects know the line they start on."""
    newlines = [m.start() for m in re.finditer("\n", text)]

    def parse_object(
        s_and_end: tuple[str, int], strict: bool, scan_once: Any, *args: Any
    ) -> tuple[Any, int]:
        value, end = _JSON_OBJECT(s_and_end, strict, scan_once, *args)
        located = _Located(value)
        located.line = bisect.bisect_left(newlines, s_and_end[1]) + 1
        return located, end

    decoder: Any = json.JSONDecoder()
    decoder.parse_object = parse_object
    decoder.scan_once = _PY_SCANNER(decoder)
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise RegistryFileError(f"not JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise RegistryFileError("not a registry: nested too deeply") from None


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with YAML 1.2's booleans (true/false only: ``NO`` is Norway)."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _yaml_map(loader: _YamlLoader, node: yaml.MappingNode) -> Iterable[_Located]:
    located = _Located()
    located.line = node.start_mark.line + 1
    yield located
    located.update({str(k): v for k, v in loader.construct_mapping(node).items()})


_YamlLoader.add_constructor("tag:yaml.org,2002:map", _yaml_map)


def _yaml_with_lines(text: str) -> Any:
    # ``yaml.load``'s own steps, with the safe loader above (no arbitrary objects)
    loader = _YamlLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = f"not YAML: {exc.problem or exc.context}"
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            # an unclosed bracket is found at the end; where it was opened is the useful line
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise RegistryFileError(message, line) from None
    except yaml.YAMLError as exc:
        raise RegistryFileError(f"not YAML: {exc}") from None
    except RecursionError:
        raise RegistryFileError("not a registry: nested too deeply") from None
    finally:
        loader.dispose()


def _validation_message(exc: msgspec.ValidationError) -> str:
    return str(exc).replace("`$.", "`").replace(" - at `$`", "")


def _bankhub_entry(raw: Any, line: int, keys: dict[str, int]) -> tuple[BankRecord, list[str]]:
    if not isinstance(raw, Mapping):
        raise _RowError("a bank must be an object with name, bic, base_url, ...")
    for name in ("bic", "blz"):
        if isinstance(raw.get(name), int) and not isinstance(raw.get(name), bool):
            raise _RowError(f"{name} must be a string (quote it: {name}: '{raw[name]}')")
    try:
        entry = msgspec.convert(dict(raw), BankEntry)
    except msgspec.ValidationError as exc:
        raise _RowError(_validation_message(exc)) from None
    name = _text(entry.name, "name")
    bic = _bic(entry.bic)
    country = _country(entry.country or bic.country_code, "country")
    blz = _bank_code(entry.blz, country)
    approaches = [a.value for a in dict.fromkeys(entry.sca_approaches)]
    if not approaches:
        raise _RowError("sca_approaches is empty")
    preferred = (entry.preferred_sca_approach or ScaApproach(approaches[0])).value
    if preferred not in approaches:
        raise _RowError(f"preferred_sca_approach {preferred} is not one of sca_approaches")
    if entry.key is not None and not _KEY.match(entry.key):
        raise _RowError(
            f"key {entry.key[:60]!r} must be 1 to 120 letters, digits or . _ : / - characters"
        )
    key = entry.key or f"{bic.compact}/{blz or '-'}"
    if (first := keys.get(key)) is not None:
        raise _RowError(
            f"key {key!r} already used on line {first}"
            + ("" if entry.key else " (give each bank sharing a BIC and BLZ its own key)")
        )
    params: dict[str, Any] = {
        "base_url": _https_url(entry.base_url, "base_url"),
        "name": name,
        "sca_approaches": approaches,
        "preferred_sca_approach": preferred,
        "all_psd2": entry.consent_model == "global",
        "booking_status": entry.booking_status,
        "consent_days": entry.consent_days,
        "frequency_per_day": entry.frequency_per_day,
        "psu_id_required": entry.psu_id_required,
    }
    if entry.history_days is not None:
        params["history_days"] = entry.history_days
    if entry.idp_urls:
        params["idp_urls"] = [_https_url(u, "idp_urls") for u in entry.idp_urls]
    if entry.oauth_variant is not None:
        params["oauth_variant"] = entry.oauth_variant
    if entry.oauth_metadata_url is not None:
        params["oauth_metadata_url"] = _https_url(entry.oauth_metadata_url, "oauth_metadata_url")
    if entry.oauth_client_id is not None:
        params["oauth_client_id"] = _text(entry.oauth_client_id, "oauth_client_id")
    for field_name in _PASSED_ON:
        if getattr(entry, field_name) is not None:
            params[field_name] = getattr(entry, field_name)
    if entry.connector == "ukob":
        params = _ukob_params(entry, params)
    elif any(getattr(entry, f) is not None for f in _UKOB_FIELDS):
        raise _RowError(f"{', '.join(_UKOB_FIELDS)} are for connector: ukob")
    color = entry.color or Color(*DEFAULT_COLOR)
    record = BankRecord(
        key=f"{SOURCE_BANKHUB}:{key}",
        line=line,
        source=SOURCE_BANKHUB,
        name=name,
        bic=bic.compact,
        blz=blz,
        country_code=country,
        connector=entry.connector,
        params=params,
        logo_url=_https_url(entry.logo_url, "logo_url") if entry.logo_url else None,
        color_primary=_color(color.primary, "color.primary"),
        color_secondary=_color(color.secondary, "color.secondary"),
    )
    keys[key] = line
    return record, _bic_notes(bic, blz)


def _ukob_params(entry: BankEntry, params: dict[str, Any]) -> dict[str, Any]:
    """A UK Open Banking bank's parameters, checked the way its connector reads them; the
    Berlin Group fields mean nothing to it and are left out."""
    for name in ("well_known_url", "client_id", "signing_key_id"):
        if getattr(entry, name) is None:
            raise _RowError(f"{name} is required for connector: ukob")
    kept = {k: v for k, v in params.items() if k in ("base_url", "name", "consent_days")}
    kept.update({k: v for k, v in params.items() if k in (*_PASSED_ON, "history_days")})
    kept["well_known_url"] = _https_url(str(entry.well_known_url), "well_known_url")
    for name in ("client_id", "signing_key_id", "financial_id"):
        if getattr(entry, name) is not None:
            kept[name] = getattr(entry, name)
    try:
        UkobParams.from_institution(kept)
    except InstitutionConfigError as exc:
        raise _RowError(str(exc)) from None
    return kept


def read_bankhub(text: str, *, yaml_text: bool) -> Registry:
    """bankhub's registry format: ``{"version": 1, "banks": [...]}`` in JSON or YAML."""
    document = _yaml_with_lines(text) if yaml_text else _json_with_lines(text)
    if not isinstance(document, Mapping):
        raise RegistryFileError('not a registry: the file must be an object with "banks"', 1)
    top_line = document.line if isinstance(document, _Located) else 1
    try:
        bank_file = msgspec.convert(dict(document), BankFile)
    except msgspec.ValidationError as exc:
        raise RegistryFileError(f"not a registry: {_validation_message(exc)}", top_line) from None
    registry = Registry(SOURCE_BANKHUB)
    keys: dict[str, int] = {}
    for index, raw in enumerate(bank_file.banks):
        line = raw.line if isinstance(raw, _Located) else top_line
        registry.rows += 1
        try:
            record, notes = _bankhub_entry(raw, line, keys)
        except _RowError as exc:
            registry.refusals.append(Refusal(line, f"bank #{index + 1}: {exc}"))
            continue
        registry.records.append(record)
        registry.notes.extend(Refusal(line, note) for note in notes)
    return registry


# --- the FinTS institute directory ---------------------------------------------------------------


def _fints_row(raw: Any) -> tuple[str, str, str | None, str]:
    """BLZ, name, BIC (or None) and PIN/TAN URL of a directory row; a row without a URL is
    refused: a FinTS server's address is the bank's to publish, never derived from others."""
    if not isinstance(raw, Mapping):
        raise _RowError("a row must be an object with blz, name, bic and pinTanURL")
    for name in ("blz", "name", "bic", "pinTanURL"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise _RowError(f"{name} must be a string")
    blz = _bank_code(raw.get("blz") or "", "DE")
    if blz is None:
        raise _RowError("blz is empty")
    name = _text(raw.get("name") or "", "name")
    url = (raw.get("pinTanURL") or "").strip()
    if not url:
        raise _RowError(
            f"BLZ {blz} ({name}): the directory gives no PIN/TAN URL; "
            "bankhub does not guess one (add the bank with its URL in bankhub's format)"
        )
    bic = _bic(raw["bic"]).compact if (raw.get("bic") or "").strip() else None
    _https_url(url, "pinTanURL")
    # kept exactly as published: a FinTS server may answer on its path with the slash only
    return blz, name, bic, url


def read_fints_institutes(text: str) -> Registry:
    """The FinTS institute directory (``fints-institutes.json``: a JSON list of rows with
    ``blz``, ``bic``, ``name``, ``location``, ``pinTanURL``, ...), one bank per BLZ and name.

    The directory lists a bank once per branch (same BLZ, name, BIC and URL, another
    ``location``): such rows are one bank, and each further branch is a note. Two banks may
    share a BLZ (a brand of another bank): each is its own catalogue entry.
    """
    document = _json_with_lines(text)
    if not isinstance(document, list):
        raise RegistryFileError("not a FinTS institute directory: the file must be a JSON list", 1)
    registry = Registry(SOURCE_FINTS_INSTITUTES)
    seen: dict[tuple[str, str], tuple[int, str | None, str]] = {}
    for raw in document:
        line = raw.line if isinstance(raw, _Located) else 1
        registry.rows += 1
        try:
            blz, name, bic, url = _fints_row(raw)
        except _RowError as exc:
            registry.refusals.append(Refusal(line, str(exc)))
            continue
        same = (blz, name.casefold())
        if (first := seen.get(same)) is not None:
            if first[1:] != (bic, url):
                registry.refusals.append(
                    Refusal(line, f"BLZ {blz} ({name}) has another BIC or URL on line {first[0]}")
                )
            else:
                registry.notes.append(Refusal(line, f"a branch of the bank on line {first[0]}"))
            continue
        seen[same] = (line, bic, url)
        digest = hashlib.sha256(name.casefold().encode()).hexdigest()[:12]
        registry.records.append(
            BankRecord(
                key=f"{SOURCE_FINTS_INSTITUTES}:{blz}:{digest}",
                line=line,
                source=SOURCE_FINTS_INSTITUTES,
                name=name,
                bic=bic or "",
                blz=blz,
                country_code="DE",
                connector="fints",
                params={"blz": blz, "fints_url": url, "name": name},
            )
        )
        if bic is None:
            registry.notes.append(Refusal(line, f"BLZ {blz} ({name}) has no BIC: found by BLZ"))
        else:
            registry.notes.extend(Refusal(line, note) for note in _bic_notes(BIC(bic), blz))
    return registry


# --- files ------------------------------------------------------------------------------------


def guess_format(path: Path, text: str = "") -> str:
    """``xs2a-adapter`` for ``.csv``; ``fints-institutes`` for a JSON list of rows with a
    ``pinTanURL`` (bankhub's own format is an object); else ``bankhub``."""
    if path.suffix.lower() == ".csv":
        return SOURCE_XS2A_ADAPTER
    if path.suffix.lower() == ".json" and text.lstrip().startswith("[") and '"pinTanURL"' in text:
        return SOURCE_FINTS_INSTITUTES
    return SOURCE_BANKHUB


def read_registry(data: bytes, *, name: str, format: str | None = None) -> Registry:
    """Read a registry file's bytes; ``format`` is one of :data:`FORMATS` (by default from the
    file name: ``.csv`` is the xs2a-adapter format, ``.json``/``.yaml``/``.yml`` bankhub's)."""
    if format is not None and format not in FORMATS:
        raise RegistryFileError(f"unknown registry format {format!r}; use {' or '.join(FORMATS)}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RegistryFileError(f"not UTF-8 text (byte {exc.start})", line) from None
    chosen = format or guess_format(Path(name), text)
    if chosen == SOURCE_XS2A_ADAPTER:
        return read_xs2a_adapter(text)
    if chosen == SOURCE_FINTS_INSTITUTES:
        return read_fints_institutes(text)
    return read_bankhub(text, yaml_text=Path(name).suffix.lower() in (".yaml", ".yml"))


def read_registry_file(path: Path, format: str | None = None) -> Registry:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    return read_registry(data, name=path.name, format=format)
