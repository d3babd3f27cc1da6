"""Structured logs: one JSON object per line, with the request id when there is one,
and the trace and span ids inside a span.

The standard library's loggers (uvicorn, FastStream, ...) go through the same
processors, so every line has the same shape.
"""

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


# One log line stays small whatever failed: a traceback keeps its start and its end (where
# the error is), any other value its start. A forged input cannot fill the logs.
MAX_EXCEPTION_CHARS = 4096
MAX_VALUE_CHARS = 2048
MAX_TRACEBACK_LINE = 512
_EXCEPTION_HEAD = 1024


def _cut(text: str, *, head: int, tail: int) -> str:
    if len(text) <= head + tail:
        return text
    end = text[len(text) - tail :] if tail else ""
    return f"{text[:head]}\n... [{len(text) - head - tail} characters cut] ...\n{end}"


def bound_sizes(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: every text value of a line, the traceback included, cut to
    a bounded size."""
    for key, value in event_dict.items():
        if value is None or isinstance(value, bool | int | float):
            continue
        if not isinstance(value, str):
            # A structure is rendered whole; one too big to keep is kept as cut text.
            text = str(value)
            if len(text) > MAX_VALUE_CHARS:
                event_dict[key] = _cut(text, head=MAX_VALUE_CHARS, tail=0)
            continue
        if key == "exception":
            # Line by line first: the last line names the error, however long its message.
            lines = [_cut(line, head=MAX_TRACEBACK_LINE, tail=0) for line in value.splitlines()]
            tail = MAX_EXCEPTION_CHARS - _EXCEPTION_HEAD
            event_dict[key] = _cut("\n".join(lines), head=_EXCEPTION_HEAD, tail=tail)
        else:
            event_dict[key] = _cut(value, head=MAX_VALUE_CHARS, tail=0)
    return event_dict


def add_trace_ids(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the ids of the current trace and span (OpenTelemetry's),
    in hex as in a `traceparent` header, on every line written inside a span."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def configure_logging(
    *, level: str, json: bool, stream: TextIO = sys.stdout, redact: Any = None
) -> None:
    """`redact`, a structlog processor, sees each line, exception text included, before
    it is cut to its bounded size and rendered."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached, so a later configure_logging (tests, a worker) takes effect everywhere.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                *([redact] if redact else []),
                # After the masking: the ids are no personal data, though a run of digits
                # in one may look like some.
                add_trace_ids,
                bound_sizes,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # uvicorn's own access log would duplicate the one the middleware writes.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
