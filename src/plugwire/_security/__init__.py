"""Security: the hash-pinned whitelist, verified launch, the policy engine and the audit log."""

from __future__ import annotations

from .audit import AuditEvent, AuditFollower, AuditLog, AuditRow, ChainReport, default_audit_path, query_log, verify_log
from .decisions import Decision
from .hashing import ALGORITHMS, digest_fd, digest_file
from .launch import ExecCache, FileFacts, inspect_file
from .policy import LaunchHook, SecurityEngine
from .watch import WhitelistWatcher, watchfiles_available
from .whitelist import Whitelist, WhitelistEntry, load_whitelist, whitelist_from_data

__all__ = [
    "ALGORITHMS",
    "AuditEvent",
    "AuditFollower",
    "AuditLog",
    "AuditRow",
    "ChainReport",
    "Decision",
    "ExecCache",
    "FileFacts",
    "LaunchHook",
    "SecurityEngine",
    "Whitelist",
    "WhitelistEntry",
    "WhitelistWatcher",
    "default_audit_path",
    "digest_fd",
    "digest_file",
    "inspect_file",
    "load_whitelist",
    "query_log",
    "verify_log",
    "watchfiles_available",
    "whitelist_from_data",
]
