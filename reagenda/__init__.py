"""Application glue for Reagenda: settings, the clock, the runtime context, the embedded Redis and the CLI.

The domain lives in the top-level packages (``connectors``, ``store``, ``workflows``, ``channels``, ``web``);
this package only wires them together. Importing anything here has no side effects: nothing connects to Redis or a
database until a command or a test asks for it.
"""
