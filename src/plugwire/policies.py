"""The policies around every call: user middleware (`Policy`), the `Call` it receives, and
the circuit breaker's parts."""

from __future__ import annotations

from ._call import Call as Call
from ._policies import BreakerListener as BreakerListener
from ._policies import BreakerState as BreakerState
from ._policies import BreakerStateChange as BreakerStateChange
from ._policies import CircuitBreaker as CircuitBreaker
from ._policies import ErrorClassifier as ErrorClassifier
from ._policies import Policy as Policy
from ._policies import default_error_classifier as default_error_classifier

__all__ = [
    "BreakerListener",
    "BreakerState",
    "BreakerStateChange",
    "Call",
    "CircuitBreaker",
    "ErrorClassifier",
    "Policy",
    "default_error_classifier",
]
