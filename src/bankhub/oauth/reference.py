"""The OAuth endpoints described for the dashboard's API reference, in OpenAPI's own shape.

They are left out of ``/openapi.json`` on purpose: they speak OAuth's wire format (form bodies in,
``{"error", "error_description"}`` out), not the seed's envelope, and every OAuth2 client library
already knows them from RFC 6749, 7009, 7662 and 8414 and the metadata document; the partner SDK
and the schema fuzzing are built on the envelope's description. The reference page still shows
them beside the API, from these operations merged with the routes' own method, path and summary
(``bankhub.oauth.routes``); ``tests/dashboard/test_read_pages.py`` fails when a route and its
description part, and posts the token example to the real endpoint.
"""

from __future__ import annotations

from typing import Any

_FORM = "application/x-www-form-urlencoded"
#: the token type of every token bankhub issues
_BEARER = "Bearer"


def _placeholder(name: str) -> str:
    """``<name>``: what an example shows where the caller puts their own value (never a real
    credential)."""
    return f"<{name}>"


_JSON = "application/json"

_CLIENT_FIELDS: dict[str, Any] = {
    "client_id": {
        "type": "string",
        "description": "The app's client-id (client_secret_post); or send both in an "
        "`Authorization: Basic` header (client_secret_basic), never both ways at once.",
    },
    "client_secret": {
        "type": "string",
        "description": "One of the app's live `service` keys (its service-secret or a key "
        "made in Apps).",
    },
}

_OAUTH_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "string",
            "enum": [
                "invalid_request",
                "invalid_client",
                "invalid_grant",
                "invalid_scope",
                "unsupported_grant_type",
            ],
        },
        "error_description": {"type": "string"},
    },
}


def _refused(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            _JSON: {
                "schema": _OAUTH_ERROR,
                "example": {
                    "error": "invalid_client",
                    "error_description": "The client is not known or its secret is wrong",
                },
            }
        },
    }


def _token_form(description: str, example: str) -> dict[str, Any]:
    """The form of ``/oauth/revoke`` and ``/oauth/introspect``: a token and the client's
    credentials."""
    return {
        "content": {
            _FORM: {
                "schema": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {
                        "token": {"type": "string", "description": description},
                        **_CLIENT_FIELDS,
                    },
                },
                "example": {
                    "token": _placeholder(example),
                    "client_id": _placeholder("client-id"),
                    "client_secret": _placeholder("service-secret"),
                },
            }
        }
    }


_TOKEN_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "access_token": {"type": "string", "description": "An ES256 JWT, sent as Bearer."},
        "token_type": {"type": "string", "enum": [_BEARER]},
        "expires_in": {"type": "integer", "maximum": 3600},
        "refresh_token": {"type": "string", "description": "Opaque; rotated on each use."},
        "scope": {"type": "string", "enum": ["read", "write", "master"]},
    },
}

#: (method, path) → the operation, without what the route itself says (summary, tags)
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/oauth/token"): {
        "description": "Trade a live `service` key for a short-lived access token "
        "(`client_credentials`), or a refresh token for new tokens (`refresh_token`, rotated: "
        "using one twice ends the whole grant). Answers are `Cache-Control: no-store`.",
        "security": [],
        "requestBody": {
            "content": {
                _FORM: {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {
                                "type": "string",
                                "enum": ["client_credentials", "refresh_token"],
                            },
                            **_CLIENT_FIELDS,
                            "scope": {
                                "type": "string",
                                "enum": ["read", "write", "master"],
                                "description": "At most the key's own scope (the default).",
                            },
                            "refresh_token": {
                                "type": "string",
                                "description": "With `grant_type=refresh_token`.",
                            },
                        },
                    },
                    "example": {
                        "grant_type": "client_credentials",
                        "client_id": _placeholder("client-id"),
                        "client_secret": _placeholder("service-secret"),
                        "scope": "read",
                    },
                }
            }
        },
        "responses": {
            "200": {
                "description": "The tokens",
                "content": {
                    _JSON: {
                        "schema": _TOKEN_ANSWER,
                        "example": {
                            "access_token": _placeholder("access-token"),
                            "token_type": _BEARER,
                            "expires_in": 3600,
                            "refresh_token": _placeholder("refresh-token"),
                            "scope": "read",
                        },
                    }
                },
            },
            "400": _refused(
                "A malformed request, an unknown grant or a refresh token that "
                "does not work (any more)"
            ),
            "401": _refused("The client is not known or its secret is wrong"),
        },
    },
    ("post", "/oauth/revoke"): {
        "description": "End a refresh token's grant (and every access token from it) or one "
        "access token (RFC 7009). Always `200` for an authenticated client, whatever the token.",
        "security": [],
        "requestBody": _token_form("A refresh or access token of this app.", "refresh-token"),
        "responses": {
            "200": {"description": "Revoked, or nothing to revoke (empty body)"},
            "401": _refused("The client is not known or its secret is wrong"),
        },
    },
    ("post", "/oauth/introspect"): {
        "description": "Whether a token is active, and its claims (RFC 7662). Another app's "
        'token, or anything not active, is `{"active": false}`.',
        "security": [],
        "requestBody": _token_form("The token to look at.", "access-token"),
        "responses": {
            "200": {
                "description": "The token's state",
                "content": {
                    _JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["active"],
                            "properties": {
                                "active": {"type": "boolean"},
                                "scope": {"type": "string"},
                                "client_id": {"type": "string"},
                                "exp": {"type": "integer"},
                            },
                        },
                        "example": {
                            "active": True,
                            "token_type": _BEARER,
                            "scope": "read",
                            "client_id": _placeholder("client-id"),
                            "exp": 1767225600,
                        },
                    }
                },
            },
            "401": _refused("The client is not known or its secret is wrong"),
        },
    },
    ("get", "/.well-known/jwks.json"): {
        "description": "The public keys (ES256, by `kid`) that verify access tokens; cached for "
        "5 minutes. Keys rotate: fetch again on an unknown `kid`.",
        "security": [],
        "responses": {
            "200": {
                "description": "A JWK set",
                "content": {
                    _JSON: {
                        "example": {
                            "keys": [
                                {
                                    "kty": "EC",
                                    "crv": "P-256",
                                    "x": "<x>",
                                    "y": "<y>",
                                    "kid": "<kid>",
                                    "use": "sig",
                                    "alg": "ES256",
                                }
                            ]
                        }
                    }
                },
            }
        },
    },
    ("get", "/.well-known/oauth-authorization-server"): {
        "description": "Authorization server metadata (RFC 8414): the issuer, the endpoints "
        "above, the grants and client authentication methods bankhub supports.",
        "security": [],
        "responses": {
            "200": {
                "description": "The metadata document",
                "content": {
                    _JSON: {
                        "example": {
                            "issuer": "<issuer>",
                            "token_endpoint": _placeholder("base-url") + "/oauth/token",
                            "grant_types_supported": ["client_credentials", "refresh_token"],
                        }
                    }
                },
            }
        },
    },
}
