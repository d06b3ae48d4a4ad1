"""The workflow engine: what should happen to each appointment and client, and when, and making it happen.

- ``policy``: the owner's numbers (reminder offsets, windows, waits), snapshotted onto each appointment.
- ``planner``: pure functions from (appointment, policy, now) to the steps it should have. Tests live here.
- ``steps``: writes a plan into the ``steps`` table (the durable timers), cancelling what became obsolete.
- ``dispatcher``: claims due steps and enqueues RQ jobs with deterministic ids; the reconciler recovers lost ones.
- ``executor`` and ``kinds``: what a worker does with one step: reload, re-decide, render, send, record.

To add a step kind: plan it in ``planner``, give it a handler in ``kinds``, and a template in ``channels/templates``.
"""
