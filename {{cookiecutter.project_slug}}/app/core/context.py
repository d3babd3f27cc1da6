"""What is known about the request being served, for logs, events and records of who did what."""

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestContext:
    request_id: str
    client_ip: str | None = None
    user_agent: str | None = None
    # Set once the caller is authenticated.
    actor_id: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def current_request() -> RequestContext | None:
    return _current.get()


def set_current_request(context: RequestContext | None) -> None:
    _current.set(context)


def set_actor(actor_id: str) -> None:
    context = _current.get()
    if context is not None:
        context.actor_id = actor_id
