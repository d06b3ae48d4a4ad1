"""Outgoing channels: one module per channel behind the small ``Channel`` interface in ``channels.base``.

The registry maps a canonical key (``outbox``, ``sendgrid``, ``smtp``, ...) to a class; each channel module calls
``register`` at its bottom. To add one: subclass ``Channel``, implement ``send``, ``register`` it, and import the
module in ``channels.registry._load``. ``channels.render`` turns a message kind into subject and bodies in the
client's language and time zone, at send time.
"""
