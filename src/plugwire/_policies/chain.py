"""How policies compose: each wraps the next handler, like middleware, in a visible order."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

from .._transports.base import Call

__all__ = ["BindablePolicy", "Handler", "Policy", "compose"]

Handler = Callable[[Call], Awaitable[Any]]
"""Takes a call, returns the encoded response (or raises a `PluginError`)."""


class Policy(Protocol):
    """A handler wrapper: do something around `call_next(call)`.

    Users can supply their own (logging, caching, header injection) next to the built-in
    ones; they run outermost, in the order given. Write it as `async def __call__`; a plain
    `def` that returns an awaitable also fits (built-in policies do so on their fast paths,
    returning `call_next(call)` itself: one coroutine frame fewer per call).
    """

    def __call__(self, call: Call, call_next: Handler) -> Awaitable[Any]: ...


class BindablePolicy(abc.ABC):
    """A built-in policy that binds its next handler itself.

    `compose` asks it for a handler with `call_next` already in place (a closure), instead of
    wrapping it: a layer then costs one plain call per call, with no wrapper in between and
    no attribute lookups for what never changes. Calling the policy directly works too.
    """

    __slots__ = ()

    @abc.abstractmethod
    def bind(self, call_next: Handler) -> Handler:
        """This policy in front of `call_next`, as one handler."""

    def __call__(self, call: Call, call_next: Handler) -> Awaitable[Any]:
        return self.bind(call_next)(call)


def compose(policies: Sequence[Policy], terminal: Handler) -> Handler:
    """Wrap `terminal` so that `policies[0]` runs first and `policies[-1]` last.

    Each layer of the result has `.policy` and `.call_next`, so the order can be read back.
    """
    handler = terminal
    for policy in reversed(policies):
        handler = (
            bound(policy.bind(handler), policy, handler)
            if isinstance(policy, BindablePolicy)
            else _Bound(policy, handler)
        )
    return handler


def bound(handler: Any, policy: Policy, call_next: Handler) -> Handler:
    """`handler` (a function) labelled with the policy and the next handler it stands for."""
    handler.policy = policy
    handler.call_next = call_next
    return cast(Handler, handler)


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
