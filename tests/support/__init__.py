"""Test support code: a throwaway PostgreSQL server, headless Chromium and a live bankhub server.

Load the fixtures from the top-level conftest with::

    pytest_plugins = [
        "tests.support.pg_plugin",
        "tests.support.browser_plugin",
        "tests.support.server_plugin",
    ]
"""
