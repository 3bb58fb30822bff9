"""The plugin side of plugwire: what a plugin process imports (layers 0-2 only)."""
