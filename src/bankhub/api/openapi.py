"""What the routes tell ``/openapi.json``: their error answers, credentials and query parameters.

The routes name the seed's error codes they can answer; :func:`errors` groups them by HTTP status
into responses whose body is the seed's envelope. Every route can also answer ``InternalError``
(500) and ``ServerMaintenance`` (503), and every route that reads a body ``ContentInputInvalid``,
``DataInvalid`` (400) and 413 past the size limit. Every write that honours ``Idempotency-Key``
gets the header and its 409 and 422 answers from :func:`bankhub.api.idempotency.describe`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.params import Parameter

from bankhub import __version__
from bankhub.api.errors import STATUS, ErrorCode
from bankhub.api.schemas import ErrorBody

E = ErrorCode

#: a partner app's credentials: ``client-id`` plus one of the two secrets
APP_SECURITY: list[dict[str, list[str]]] = [
    {"client-id": [], "service-secret": []},
    {"client-id": [], "app-secret": []},
    {"bearer": []},
]
#: the app's credentials plus the ``login-secret`` of one of its logins
LOGIN_SECURITY: list[dict[str, list[str]]] = [
    {**requirement, "login-secret": []} for requirement in APP_SECURITY
]

#: what authenticating the app can answer
APP_AUTH = (
    E.CLIENT_NOT_FOUND,
    E.CREDENTIAL_INVALID,
    E.KEY_REVOKED,
    E.APP_ARCHIVED,
    E.INVALID_TOKEN,
    E.INSUFFICIENT_SCOPE,
    E.ADDRESS_NOT_ALLOWED,
    E.REFERER_NOT_ALLOWED,
    E.ADDRESS_BLOCKED,
    E.RATE_LIMITED,
    E.HTTPS_REQUIRED,
    # an app with signature keys (docs/signatures.md)
    E.SIGNATURE_INVALID,
    E.SIGNATURE_EXPIRED,
    E.SIGNATURE_REPLAYED,
    E.SIGNATURE_REQUIRED,
)
#: what authenticating the app and its login can answer (a missing login-secret is BadRequest)
LOGIN_AUTH = (*APP_AUTH, E.BAD_REQUEST, E.LOGIN_NOT_FOUND)
#: what reading a JSON body can answer, besides 413
BODY = (E.CONTENT_INPUT_INVALID, E.DATA_INVALID)
ALWAYS = (E.INTERNAL_ERROR, E.SERVER_MAINTENANCE)

FRAMEWORK_ERROR = {"status_code", "detail"}
#: an empty query value, which the routes read as a parameter left out
EMPTY = Schema(type=OpenAPIType.STRING, max_length=0)
#: the largest id the databases store; path and query ids beyond it name nothing
MAX_ID = 2**63 - 1


def errors(*codes: ErrorCode, body: bool = False, write: bool = False) -> dict[int, ResponseSpec]:
    """The error responses of a route that can answer ``codes`` (plus :data:`ALWAYS`).

    ``body``: the route reads a JSON body. ``write``: a POST, PUT or DELETE without a body model,
    whose body, when one is sent, must still be JSON (``ContentInputInvalid``) and small (413).
    """
    extra = BODY if body else (E.CONTENT_INPUT_INVALID,) if write else ()
    wanted = [*codes, *extra, *ALWAYS]
    by_status: dict[int, list[str]] = {}
    for code in wanted:
        names = by_status.setdefault(STATUS[code], [])
        if str(code) not in names:
            names.append(str(code))
    if body or write:
        by_status[413] = [str(E.BAD_REQUEST)]
    return {
        status: ResponseSpec(
            data_container=ErrorBody,
            description=_describe(status, names),
            generate_examples=False,
        )
        for status, names in sorted(by_status.items())
    }


def _describe(status: int, names: list[str]) -> str:
    if status == 413:
        return "The body is larger than the limit (1 MiB); `error` is `BadRequest`."
    return "The error envelope (`error`, `message`, `extra`); `error` is one of: " + ", ".join(
        f"`{n}`" for n in names
    )


@dataclass
class PublicOperation(Operation):
    """An operation that needs no credentials (``security: []`` overrides the document's).

    Litestar adds a 400 in its own shape to any route with parameters; a public route answers
    every error in the envelope, so only the responses the route names are kept.
    """

    def __post_init__(self) -> None:
        self.security = []
        self.responses = {
            status: response
            for status, response in (self.responses or {}).items()
            if not _is_framework_error(response)
        }


@dataclass
class EnvelopeOperation(Operation):
    """An operation whose framework-made error answers are described as the seed's envelope
    (Litestar puts its own 400 shape on routes with a multipart body)."""

    def __post_init__(self) -> None:
        responses = dict(self.responses or {})
        for status, response in responses.items():
            if _is_framework_error(response):
                responses[status] = OpenAPIResponse(
                    description="The error envelope (`error`, `message`, `extra`)",
                    content={
                        "application/json": OpenAPIMediaType(
                            schema=Reference(ref="#/components/schemas/ErrorBody")
                        )
                    },
                )
        self.responses = responses


def _is_framework_error(response: OpenAPIResponse | Reference) -> bool:
    """Litestar's own error shape (``status_code``, ``detail``), which bankhub never sends."""
    if isinstance(response, Reference):
        return False
    return any(
        isinstance(media.schema, Schema) and set(media.schema.required or ()) == FRAMEWORK_ERROR
        for media in (response.content or {}).values()
    )


def _strict_structs(base: type[msgspec.Struct] = msgspec.Struct) -> dict[str, type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for cls in base.__subclasses__():
        if cls.__struct_config__.forbid_unknown_fields:
            found[cls.__name__] = cls
        found.update(_strict_structs(cls))
    return found


REQUEST_ID = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=64),
    description=(
        "The request's id: the caller's `X-Request-Id` when it is 1 to 64 letters, digits, "
        "`-`, `_`, `.` or `:`, else a fresh one. Named in the request's audit entries."
    ),
    required=True,
)
_METHODS = ("get", "put", "post", "delete", "patch")


def finish(spec: OpenAPI) -> OpenAPI:
    """What Litestar leaves out: request models that refuse unknown fields say so
    (``additionalProperties: false``); every answer names its ``X-Request-Id``. Idempotent."""
    strict = _strict_structs()
    schemas = spec.components.schemas if spec.components else None
    for name, schema in (schemas or {}).items():
        if name in strict and schema.type == OpenAPIType.OBJECT:
            schema.additional_properties = False
    for path in (spec.paths or {}).values():
        for method in _METHODS:
            operation: Operation | None = getattr(path, method, None)
            for response in (operation.responses or {}).values() if operation else ():
                if isinstance(response, OpenAPIResponse):
                    response.headers = {**(response.headers or {}), "X-Request-Id": REQUEST_ID}
    return spec


def query(
    description: str,
    *,
    integer: tuple[int, int] | None = None,
    pattern: str | None = None,
    length: tuple[int, int] | None = None,
    empty_ok: bool = True,
) -> Any:
    """An optional query parameter as the route really reads it: an integer in a range, or a
    bounded string; an empty value counts as left out where ``empty_ok``. Only the description
    changes: the route checks the value itself and answers ``BadRequest`` (or the route's own
    code) when it does not fit."""
    extra: dict[str, Any]
    if integer is not None:
        number = Schema(type=OpenAPIType.INTEGER, minimum=integer[0], maximum=integer[1])
        if empty_ok:
            extra = {"one_of": [number, EMPTY]}
        else:
            extra = {"one_of": None, "type": number.type}
            extra.update(minimum=number.minimum, maximum=number.maximum)
    else:
        if pattern is not None and empty_ok:
            pattern = f"^({pattern.removeprefix('^').removesuffix('$')})?$"
        extra = {"one_of": None, "type": OpenAPIType.STRING, "pattern": pattern}
        if length is not None:
            extra.update(min_length=length[0], max_length=length[1])
    return Parameter(description=description, required=False, schema_extra=extra)


def whole_number(text: str, high: int = MAX_ID) -> int | None:
    """``text`` as a whole number from 0 to ``high`` written in ASCII digits, else None
    (``str.isdigit`` also takes ``"²"``, which ``int`` refuses)."""
    if not text or len(text) > 20 or not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= high else None


def openapi_config() -> OpenAPIConfig:
    """The description's frame: title, version, the credentials' security schemes."""
    return OpenAPIConfig(
        title="bankhub — Finsify Hub API v2",
        version=__version__,
        path="/docs",
        components=Components(
            security_schemes={
                "client-id": SecurityScheme(
                    type="apiKey", name="client-id", security_scheme_in="header"
                ),
                "service-secret": SecurityScheme(
                    type="apiKey", name="service-secret", security_scheme_in="header"
                ),
                "app-secret": SecurityScheme(
                    type="apiKey", name="app-secret", security_scheme_in="header"
                ),
                "login-secret": SecurityScheme(
                    type="apiKey", name="login-secret", security_scheme_in="header"
                ),
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="An access token from POST /oauth/token",
                ),
            }
        ),
        security=[
            {"client-id": [], "service-secret": []},
            {"client-id": [], "app-secret": []},
            {"bearer": []},
        ],
    )
