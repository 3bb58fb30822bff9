"""Baselines and peers, built inside the suite with no plugwire code on their call path.

Each module exports ready `Side`s (upper-case names) and the factories behind them, which take
options (payload size, calls in flight) for cases that need a variant.
"""
