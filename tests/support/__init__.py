"""Test support code: throwaway PostgreSQL and Redis servers, headless Chromium and a live
bankhub server.

Load the fixtures from the top-level conftest with::

    pytest_plugins = [
        "tests.support.pg_plugin",
        "tests.support.redis_plugin",
        "tests.support.browser_plugin",
        "tests.support.server_plugin",
    ]
"""
