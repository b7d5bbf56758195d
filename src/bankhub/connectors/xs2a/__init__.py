"""Berlin Group NextGenPSD2 (XS2A) account information and payment initiation; banks are
catalogue data."""

from bankhub.connectors.xs2a.connector import Xs2aConnector
from bankhub.connectors.xs2a.params import InstitutionConfigError, ScaApproach, Xs2aParams

__all__ = ["InstitutionConfigError", "ScaApproach", "Xs2aConnector", "Xs2aParams"]
