"""Test helpers, one package (`tests.support`): the leak checks and plugin-process helpers
(`procguard`), typed sample plugins, the stand-in transport, gRPC helpers and certificates,
a DNS stub, a loader for example scripts, and the plugin scripts the tests start as
subprocesses by path (`plugins/`)."""
