"""One place that reads the environment, once, into a frozen ``Settings`` object.

Every variable has a typed parser; a missing or malformed value raises ``SettingsError`` whose message is one line
naming the variable and showing what a valid value looks like, so an operator can fix it without reading code.
Embedded defaults (SQLite under ``./var/``, embedded Redis, outbox email, a generated secret kept in ``./var/``)
make a fresh checkout runnable with nothing configured.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

EMAIL_BACKENDS = ("outbox", "sendgrid", "smtp")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    database_url: str
    redis_url: str | None  # None: use the embedded Redis started by ``reagenda run``
    secret_key: str
    base_url: str
    port: int
    email_backend: str
    email_from: str
    queue_name: str = "reagenda"
    dispatch_interval_s: float = 0.5
    dispatch_batch: int = 500
    steps_per_job: int = 100
    reconcile_after_s: int = 300
    log_level: str = "INFO"
    sendgrid_api_key: str | None = None
    sendgrid_host: str | None = None
    smtp_url: str | None = None
    google_client_id: str | None = None
    google_client_secret: str | None = None
    microsoft_client_id: str | None = None
    microsoft_client_secret: str | None = None
    microsoft_tenant: str = "common"
    extra: Mapping[str, str] = field(default_factory=dict)
    # Issue 5 (channels and replies): where client replies arrive and how inbound webhooks are authenticated.
    inbound_domain: str | None = None  # replies go to reply+<token>@INBOUND_DOMAIN (SendGrid Inbound Parse MX)
    inbound_secret: str | None = None  # the secret path segment of /inbound/<secret>/... webhooks
    inbound_max_bytes: int = 25 * 1024 * 1024
    sendgrid_webhook_public_key: str | None = None  # base64 ECDSA key from SendGrid's Event Webhook settings
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None  # an SMS-capable number, +34600000000
    twilio_whatsapp_from: str | None = None  # whatsapp:+34600000000
    twilio_host: str | None = None  # tests only: a local fake of the Twilio API
    imap_url: str | None = None  # imaps://user:app-password@imap.example.com/INBOX

    @property
    def embedded_redis_socket(self) -> Path:
        return self.var_dir / "redis.sock"

    @property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"


def _parse_int(name: str, raw: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number; expected for example {name}=8000") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise SettingsError(f"{name}={value} is out of range; expected a number between {minimum}{upper}")
    return value


def _parse_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number; expected for example {name}=0.5") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be greater than zero")
    return value


def _parse_database_url(name: str, raw: str) -> str:
    scheme = urlsplit(raw).scheme
    if scheme.startswith("postgres"):
        # Heroku-style postgres:// and plain postgresql:// both mean psycopg 3 here.
        rest = raw.split("://", 1)[1]
        return "postgresql+psycopg://" + rest
    if scheme.startswith("sqlite") and "://" in raw:
        return raw
    raise SettingsError(
        f"{name} has an unsupported scheme {scheme or '(none)'!r}; expected "
        "postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db"
    )


def _parse_redis_url(name: str, raw: str) -> str:
    scheme = urlsplit(raw).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(
            f"{name} has an unsupported scheme {scheme or '(none)'!r}; expected redis://host:6379/0, "
            "rediss://host:6380/0 or unix:///path/to/redis.sock"
        )
    return raw


def _parse_base_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name}={raw!r} is not an absolute URL; expected for example https://reagenda.example.com")
    return raw.rstrip("/")


def _parse_imap_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise SettingsError(f"{name} is not an IMAP URL; expected imaps://user:app-password@imap.example.com/INBOX "
                            "(imap:// for STARTTLS on port 143)")
    return raw


def _parse_choice(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise SettingsError(f"{name}={raw!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _secret_key(var_dir: Path, env: Mapping[str, str]) -> str:
    """Return SECRET_KEY, or a random one generated once and kept in ``var/secret_key`` (mode 0600)."""
    raw = env.get("SECRET_KEY")
    if raw is not None:
        if len(raw) < 16:
            raise SettingsError("SECRET_KEY is too short; expected at least 16 random characters, e.g. from "
                                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
        return raw
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read the environment (``os.environ`` unless given) into ``Settings``; raise ``SettingsError`` on bad input."""
    env = dict(os.environ if env is None else env)

    def get(name: str, parse: Callable[[str, str], T], default: T) -> T:
        raw = env.get(name)
        if raw is None or raw == "":
            return default
        return parse(name, raw)

    var_dir = Path(env.get("REAGENDA_VAR_DIR") or "var").resolve()
    port = get("PORT", lambda n, r: _parse_int(n, r, minimum=1, maximum=65535), 8000)
    database_url = get("DATABASE_URL", _parse_database_url, f"sqlite:///{var_dir / 'reagenda.db'}")
    email_backend = get("EMAIL_BACKEND", _parse_choice(EMAIL_BACKENDS), "outbox")
    settings = Settings(
        var_dir=var_dir,
        database_url=database_url,
        redis_url=get("REDIS_URL", _parse_redis_url, None),
        secret_key=_secret_key(var_dir, env),
        base_url=get("BASE_URL", _parse_base_url, f"http://localhost:{port}"),
        port=port,
        email_backend=email_backend,
        email_from=env.get("EMAIL_FROM") or "Reagenda <citas@localhost>",
        queue_name=env.get("REAGENDA_QUEUE") or "reagenda",
        dispatch_interval_s=get("DISPATCH_INTERVAL", _parse_float, 0.5),
        dispatch_batch=get("DISPATCH_BATCH", lambda n, r: _parse_int(n, r, minimum=1), 500),
        steps_per_job=get("STEPS_PER_JOB", lambda n, r: _parse_int(n, r, minimum=1), 100),
        reconcile_after_s=get("RECONCILE_AFTER", lambda n, r: _parse_int(n, r, minimum=10), 300),
        log_level=get("LOG_LEVEL", _parse_choice(("debug", "info", "warning", "error")), "info").upper(),
        sendgrid_api_key=env.get("SENDGRID_API_KEY") or None,
        sendgrid_host=get("SENDGRID_HOST", _parse_base_url, None),
        smtp_url=env.get("SMTP_URL") or None,
        google_client_id=env.get("GOOGLE_CLIENT_ID") or None,
        google_client_secret=env.get("GOOGLE_CLIENT_SECRET") or None,
        microsoft_client_id=env.get("MICROSOFT_CLIENT_ID") or None,
        microsoft_client_secret=env.get("MICROSOFT_CLIENT_SECRET") or None,
        microsoft_tenant=env.get("MICROSOFT_TENANT") or "common",
        inbound_domain=(env.get("INBOUND_DOMAIN") or "").strip().lower() or None,
        inbound_secret=env.get("INBOUND_SECRET") or None,
        inbound_max_bytes=get("INBOUND_MAX_BYTES", lambda n, r: _parse_int(n, r, minimum=1024), 25 * 1024 * 1024),
        sendgrid_webhook_public_key=env.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or None,
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
        twilio_from=env.get("TWILIO_FROM") or None,
        twilio_whatsapp_from=env.get("TWILIO_WHATSAPP_FROM") or None,
        twilio_host=get("TWILIO_HOST", _parse_base_url, None),
        imap_url=get("IMAP_URL", _parse_imap_url, None),
    )
    if settings.email_backend == "sendgrid" and not settings.sendgrid_api_key:
        raise SettingsError("SENDGRID_API_KEY is required when EMAIL_BACKEND=sendgrid; expected an API key starting SG.")
    if settings.inbound_secret is not None and len(settings.inbound_secret) < 16:
        raise SettingsError("INBOUND_SECRET is too short; expected at least 16 random URL-safe characters, e.g. from "
                            "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`")
    if settings.email_backend == "smtp" and not settings.smtp_url:
        raise SettingsError("SMTP_URL is required when EMAIL_BACKEND=smtp; expected "
                            "smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465")
    return settings


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
