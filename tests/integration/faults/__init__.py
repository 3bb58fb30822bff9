"""Fault injection: crash storms, killed pools and hosts, mutated frames, fuzzed files (docs/faults.md)."""
