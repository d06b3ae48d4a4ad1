"""Per-app access to the runtime context (database and Redis), built on first use."""
from __future__ import annotations

import threading

from flask import current_app

from reagenda import runtime

_lock = threading.Lock()


def get_context() -> runtime.Context:
    ext = current_app.extensions
    ctx = ext.get("reagenda.context")
    if ctx is None:
        with _lock:
            ctx = ext.get("reagenda.context")
            if ctx is None:
                ctx = runtime.build(ext["reagenda.settings"], check=False)
                ext["reagenda.context"] = ctx
    return ctx
