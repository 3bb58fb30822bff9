"""Transports: how the host reaches a plugin (in-process, subprocess, gRPC)."""
