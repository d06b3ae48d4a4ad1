"""Calendar connectors: one module per provider implementing ``connectors.base.CalendarConnector``.

Connectors return data, new cursors and refreshed credentials; they never write the database (the sync engine
does). To add a provider: implement the Protocol in ``connectors/<name>.py``, call ``register(cls)`` at the bottom,
and add it to ``connectors.registry._load``. Server quirks are data (``connectors.quirks``), not subclasses.
"""
