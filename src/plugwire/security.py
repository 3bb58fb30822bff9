"""Security: TLS, credentials, the executable whitelist, the launch hook and the audit log.

`SecurityPolicy` and `AuthMethod` (README mapping table) are also at the top level.
"""

from __future__ import annotations

from ._auth import CredentialProvider as CredentialProvider
from ._auth import CredentialVerifier as CredentialVerifier
from ._models import AuthMethod as AuthMethod
from ._models import SecurityPolicy as SecurityPolicy
from ._security import AuditEvent as AuditEvent
from ._security import AuditLog as AuditLog
from ._security import AuditRow as AuditRow
from ._security import ChainReport as ChainReport
from ._security import LaunchHook as LaunchHook
from ._security import SecurityEngine as SecurityEngine
from ._security import Whitelist as Whitelist
from ._security import WhitelistEntry as WhitelistEntry
from ._security import load_whitelist as load_whitelist
from ._tls import ServerTLSConfig as ServerTLSConfig
from ._tls import TLSConfig as TLSConfig

__all__ = [
    "AuditEvent",
    "AuditLog",
    "AuditRow",
    "AuthMethod",
    "ChainReport",
    "CredentialProvider",
    "CredentialVerifier",
    "LaunchHook",
    "SecurityEngine",
    "SecurityPolicy",
    "ServerTLSConfig",
    "TLSConfig",
    "Whitelist",
    "WhitelistEntry",
    "load_whitelist",
]
