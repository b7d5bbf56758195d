"""Test support code: throwaway PostgreSQL and Redis servers, headless Chromium, a live bankhub
server, raw HTTP peers (``raw_http``: a recording receiver, a gate that holds requests) and a
scripted bank connector (``banks``).

Load the fixtures from the top-level conftest with::

    pytest_plugins = [
        "tests.support.pg_plugin",
        "tests.support.redis_plugin",
        "tests.support.browser_plugin",
        "tests.support.server_plugin",
        "tests.support.peer_plugin",
    ]
"""
