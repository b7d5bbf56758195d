"""Find connectors: the built-ins plus anything installed under the ``bankhub.connectors`` group."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from bankhub.connectors.base import Connector, ConnectorContext, ConnectorInfo

ConnectorFactory = Callable[[ConnectorContext], Connector]

ENTRY_POINT_GROUP = "bankhub.connectors"


class UnknownConnector(LookupError):
    pass


class ConnectorRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, ConnectorFactory] = {}

    def register(self, connector_id: str, factory: ConnectorFactory) -> None:
        self._factories[connector_id] = factory

    def ids(self) -> list[str]:
        return sorted(self._factories)

    def factory(self, connector_id: str) -> ConnectorFactory:
        try:
            return self._factories[connector_id]
        except KeyError:
            raise UnknownConnector(connector_id) from None

    def info(self, connector_id: str) -> ConnectorInfo:
        """The connector's declaration, read without building it."""
        info = getattr(self.factory(connector_id), "info", None)
        if not isinstance(info, ConnectorInfo):
            raise UnknownConnector(f"{connector_id} declares no ConnectorInfo")
        return info

    def create(self, connector_id: str, context: ConnectorContext) -> Connector:
        return self.factory(connector_id)(context)

    def load_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            self.register(ep.name, ep.load())


def default_registry() -> ConnectorRegistry:
    from bankhub.connectors.fints import FinTSConnector
    from bankhub.connectors.gocardless import GoCardlessConnector
    from bankhub.connectors.ofxdirect import OfxDirectConnector
    from bankhub.connectors.sandbox import SandboxConnector
    from bankhub.connectors.simplefin import SimplefinConnector
    from bankhub.connectors.statement import StatementConnector
    from bankhub.connectors.ukob import UkobConnector
    from bankhub.connectors.xs2a import Xs2aConnector

    registry = ConnectorRegistry()
    for connector in (
        SandboxConnector,
        Xs2aConnector,
        UkobConnector,
        FinTSConnector,
        SimplefinConnector,
        OfxDirectConnector,
        StatementConnector,
        GoCardlessConnector,
    ):
        registry.register(connector.info.id, connector)
    registry.load_entry_points()
    return registry
