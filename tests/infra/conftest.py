"""Make the support plugins available even when the top-level conftest does not list them yet.

``import_plugin`` is a no-op for a plugin that is already registered (e.g. through
``pytest_plugins`` in tests/conftest.py), so this never registers a fixture twice.
"""

from __future__ import annotations

import pytest

SUPPORT_PLUGINS = (
    "tests.support.pg_plugin",
    "tests.support.browser_plugin",
    "tests.support.server_plugin",
)


def pytest_configure(config: pytest.Config) -> None:
    for name in SUPPORT_PLUGINS:
        config.pluginmanager.import_plugin(name)
