"""What differs between CalDAV servers, as data (after python-caldav's ``compatibility_hints.py``).

The CalDAV connector asks ``quirks_for(url)`` once and branches on these fields; it has no per-server subclasses.
A connection may override any field through its credentials (``{"quirks": {"sync_collection": false}}``), which
is how an operator works around a server we have not met yet, and how the tests force the etag fallback against
Radicale.

To add a server: add a ``ServerQuirks`` to ``KNOWN`` and a host pattern to ``_HOSTS``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ServerQuirks:
    name: str = "generic"
    # RFC 6578 sync-collection REPORT works; otherwise compare etags from one PROPFIND Depth: 1.
    sync_collection: bool = True
    # A full sync takes the DAV:sync-token property and every object from one calendar-query (two requests,
    # about half the server time of a sync-collection listing plus a multiget of everything). Off for servers
    # that cap calendar-query answers; refusals and truncated answers fall back by themselves.
    full_sync_query: bool = True
    # Most hrefs per calendar-multiget REPORT; changes beyond it take more than one request.
    multiget_batch: int = 5000
    # Paths tried under a bare base URL during discovery, after the URL itself and /.well-known/caldav.
    dav_paths: tuple[str, ...] = ()
    # The server answers a sync-collection with a stale token by 403/412 DAV:valid-sync-token (RFC 6578 §3.2).
    # Servers that instead answer 200 with everything are handled too; this only documents the expectation.
    sync_token_error_status: tuple[int, ...] = (403, 412)
    # Seconds to wait for a server before treating it as unavailable.
    timeout_s: float = 30.0
    # What to tell an owner who must create an app password (shown on "needs reconnect").
    app_password_hint: str = "Use an app password if your provider offers them."


KNOWN: dict[str, ServerQuirks] = {
    "generic": ServerQuirks(),
    "radicale": ServerQuirks(name="radicale"),
    "nextcloud": ServerQuirks(
        name="nextcloud", dav_paths=("remote.php/dav/",),
        app_password_hint="Nextcloud: Settings → Security → Devices & sessions → create a new app password."),
    "fastmail": ServerQuirks(
        name="fastmail", dav_paths=("dav/",),
        app_password_hint="Fastmail: Settings → Privacy & Security → Integrations → New app password (CalDAV)."),
    "icloud": ServerQuirks(
        name="icloud", multiget_batch=500,
        app_password_hint="iCloud: appleid.apple.com → Sign-In and Security → App-Specific Passwords."),
    "xandikos": ServerQuirks(name="xandikos"),
}

# Host patterns that identify a server before we have talked to it.
_HOSTS: tuple[tuple[str, str], ...] = (
    (r"(^|\.)icloud\.com$", "icloud"),
    (r"(^|\.)fastmail\.com$", "fastmail"),
    (r"(^|\.)messagingengine\.com$", "fastmail"),
)


def quirks_for(url: str, overrides: dict[str, Any] | None = None, server: str | None = None) -> ServerQuirks:
    """The quirks for a server URL (or an explicitly named server), with a connection's overrides applied.

    Unknown override keys are ignored rather than fatal: a stale setting must not stop a calendar syncing.
    """
    name = server or _guess(url)
    quirks = KNOWN.get(name, KNOWN["generic"])
    if overrides:
        allowed = {f.name for f in fields(ServerQuirks)}
        clean = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if k in allowed}
        quirks = replace(quirks, **clean)
    return quirks


def _guess(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    for pattern, name in _HOSTS:
        if re.search(pattern, host):
            return name
    if "remote.php" in parts.path or "nextcloud" in host or "owncloud" in host:
        return "nextcloud"
    return "generic"
