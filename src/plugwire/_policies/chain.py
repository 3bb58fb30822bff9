"""How user policies compose: each wraps the next handler, like middleware, in a visible order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .._call import Call

__all__ = ["Handler", "Policy", "compose"]

Handler = Callable[[Call], Awaitable[Any]]
"""Takes a call, returns the encoded response (or raises a `PluginError`)."""


class Policy(Protocol):
    """A handler wrapper: do something around `call_next(call)`.

    Users supply their own (logging, caching, header injection); they run outside the
    built-in pipeline (`CallPipeline`), outermost first, in the order given. Write it as
    `async def __call__`; a plain `def` that returns an awaitable also fits.
    """

    def __call__(self, call: Call, call_next: Handler) -> Awaitable[Any]: ...


def compose(policies: Sequence[Policy], terminal: Handler) -> Handler:
    """Wrap `terminal` so that `policies[0]` runs first and `policies[-1]` last.

    Each layer of the result has `.policy` and `.call_next`, so the order can be read back.
    """
    handler = terminal
    for policy in reversed(policies):
        handler = _Bound(policy, handler)
    return handler


class _Bound:
    """`policy` with its next handler bound.

    Calling it returns the policy's own coroutine, not a wrapper's: a layer of the pipeline
    costs one plain call, not an extra coroutine frame.
    """

    __slots__ = ("call_next", "policy")

    def __init__(self, policy: Policy, call_next: Handler) -> None:
        self.policy = policy
        self.call_next = call_next

    def __call__(self, call: Call) -> Awaitable[Any]:
        return self.policy(call, self.call_next)

    def __repr__(self) -> str:
        return f"<{type(self.policy).__name__} -> {self.call_next!r}>"
