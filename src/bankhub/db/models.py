"""Imports every model so that ``Base.metadata`` is complete (for Alembic and tests)."""

from bankhub.accounts.changes import TransactionChange
from bankhub.accounts.models import Account, Transaction
from bankhub.audit.models import AuditEntry
from bankhub.banks.models import Bank
from bankhub.connect.models import ConnectRoute
from bankhub.customers.models import Customer
from bankhub.dashboard.models import Invite, Member, MemberSession, PendingItem, SmtpSettings
from bankhub.db.base import Base
from bankhub.events.models import Event, SystemFlag
from bankhub.jobs.outbox import OutboxMessage
from bankhub.logins.models import ConnectToken, Login
from bankhub.oauth.models import RefreshToken, SigningKey, TokenFamily
from bankhub.partners.models import ApiKey, App, AppTemplate
from bankhub.requestlog.models import ApiRequest
from bankhub.security.models import AuthVersion, DataKey, IdempotencyRecord
from bankhub.sftp.models import DroppedFile
from bankhub.signatures.models import SignatureKey, SignatureKeySource
from bankhub.sync.models import SyncRun
from bankhub.usage.models import UsageCount
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Account",
    "ApiKey",
    "ApiRequest",
    "App",
    "AppTemplate",
    "AuditEntry",
    "AuthVersion",
    "Bank",
    "Base",
    "ConnectRoute",
    "ConnectToken",
    "Customer",
    "DataKey",
    "DroppedFile",
    "Event",
    "IdempotencyRecord",
    "Invite",
    "Login",
    "Member",
    "MemberSession",
    "OutboxMessage",
    "PendingItem",
    "RefreshToken",
    "SignatureKey",
    "SignatureKeySource",
    "SigningKey",
    "SmtpSettings",
    "SyncRun",
    "SystemFlag",
    "TokenFamily",
    "Transaction",
    "TransactionChange",
    "UsageCount",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
