"""The explicit registry of calendar providers: one canonical key per provider (after redash's destinations).

Each provider module calls ``register(cls)`` at its bottom. ``get(key)`` returns the class for a stored
``CalendarConnection.provider``; ``enabled()`` lists the providers whose optional dependencies are importable, so a
missing library disables one provider instead of breaking the app.

To add a provider: write ``connectors/<name>.py`` implementing ``connectors.base.CalendarConnector`` with a
``key`` class attribute and a ``from_credentials(credentials, *, settings, **options)`` classmethod, call
``register(YourConnector)`` at the bottom, and add the module name to ``MODULES``. ``build(key, credentials,
settings=...)`` is how the sync engine and the web app get a ready connector.
"""
from __future__ import annotations

import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)

# Provider modules, imported lazily on first use (importing the registry never imports a provider library).
MODULES: tuple[str, ...] = ("connectors.caldav", "connectors.google", "connectors.outlook")

_REGISTRY: dict[str, type[Any]] = {}
_UNAVAILABLE: dict[str, str] = {}
_loaded = False


class UnknownProvider(KeyError):
    def __str__(self) -> str:
        key = self.args[0] if self.args else ""
        known = ", ".join(sorted(_REGISTRY)) or "none"
        why = f" ({_UNAVAILABLE[key]})" if key in _UNAVAILABLE else ""
        return f"no calendar provider {key!r}{why}; available providers: {known}"


def register(cls: type[Any]) -> type[Any]:
    """Make a connector class available under its ``key``. Returns the class so it can be used as a decorator."""
    key = getattr(cls, "key", "")
    if not key:
        raise ValueError(f"{cls.__name__} has no 'key' class attribute; every connector needs one")
    existing = _REGISTRY.get(key)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"provider key {key!r} is already registered by {existing.__module__}.{existing.__name__}")
    _REGISTRY[key] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:  # the provider module itself is not written yet
                continue
            _UNAVAILABLE[module.rsplit(".", 1)[-1]] = f"missing dependency {exc.name}"
            log.warning("calendar provider %s disabled: missing dependency %s", module, exc.name)


def get(key: str) -> type[Any]:
    """The connector class for ``key`` ("caldav", "google", "outlook")."""
    _load()
    try:
        return _REGISTRY[key]
    except KeyError:
        raise UnknownProvider(key) from None


def build(key: str, credentials: dict[str, Any], *, settings: Any = None, **options: Any) -> Any:
    """A ready connector for stored (decrypted) credentials.

    Connectors are built by a ``from_credentials(credentials, *, settings, **options)`` classmethod (the
    convention); ``from_settings(settings, credentials, **options)`` and a plain ``cls(credentials)`` are accepted
    too. ``options`` carries test and deployment knobs such as a fake server's endpoint.
    """
    cls = get(key)
    if hasattr(cls, "from_credentials"):
        return cls.from_credentials(credentials, settings=settings, **options)
    if hasattr(cls, "from_settings"):
        return cls.from_settings(settings, credentials, **options)
    return cls(credentials, **options)


def enabled() -> list[str]:
    """Keys of the providers that can be used in this installation, sorted."""
    _load()
    return sorted(_REGISTRY)
