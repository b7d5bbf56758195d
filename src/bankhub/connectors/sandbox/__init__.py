"""The sandbox connector: simulated banks in several countries, one scenario per username.

``bank`` holds the operator's outage switch; ``pages`` serves the simulated bank's own consent
page used by the redirect scenario.
"""

from bankhub.connectors.sandbox.connector import SandboxConnector

__all__ = ["SandboxConnector"]
