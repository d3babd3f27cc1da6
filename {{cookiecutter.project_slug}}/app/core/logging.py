"""Structured logs: one JSON object per line, with the request id when there is one,
and the trace and span ids inside a span.

The app's own lines (structlog's loggers) are rendered by structlog and written straight
to the stream; the standard library's loggers (uvicorn, FastStream, ...) go through a
logging handler that ends in the same processors, so every line has the same shape.
"""

import functools
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace


class _NamedWriter(structlog.WriteLogger):
    """structlog's writer of one line a call, with the name the logger was asked for
    (`structlog.get_logger(__name__)`), which `add_logger_name` reads."""

    def __init__(self, stream: TextIO, name: str = "") -> None:
        super().__init__(stream)
        self.name = name


# One log line stays small whatever failed: a traceback keeps its start and its end (where
# the error is), any other value its start. A forged input cannot fill the logs.
MAX_EXCEPTION_CHARS = 4096
MAX_VALUE_CHARS = 2048
MAX_TRACEBACK_LINE = 512
_EXCEPTION_HEAD = 1024
# `redact` reads each value cut to this much more than the line keeps: its cost is
# bounded whatever came in (it reads a 64 kB path in no time), and what it masks where the
# value is cut is seen whole (the longest, an address, has at most 254 characters).
REDACT_MARGIN = 256
_CUT = re.compile(r"\n\.\.\. \[(\d+) characters cut( before masking)?\] \.\.\.\n")


def _cut(text: str, *, head: int, tail: int, before_masking: bool = False) -> str:
    first_cut = (
        [note for note in _CUT.finditer(text) if note[2]] if "before masking" in text else []
    )
    if first_cut:
        # Cut before `redact`: what lay within REDACT_MARGIN of that cut may be part of a
        # datum it split, which masking did not see whole; masking moved it (a label is
        # shorter than what it stands for), so it is dropped by where it is now.
        head = min(head, max(first_cut[0].start() - REDACT_MARGIN, 0))
        if tail:
            tail = min(tail, max(len(text) - first_cut[-1].end() - REDACT_MARGIN, 0))
    elif len(text) <= head + tail:
        return text
    end = text[len(text) - tail :] if tail else ""
    removed = text[head : len(text) - tail]
    # What an earlier cut took out is counted too, not its note.
    count = len(removed) + sum(int(note[1]) - len(note[0]) for note in _CUT.finditer(removed))
    label = "characters cut before masking" if before_masking else "characters cut"
    return f"{text[:head]}\n... [{count} {label}] ...\n{end}"


def bounding(margin: int = 0) -> Any:
    """A structlog processor: every text value of a line, the traceback included, cut to
    a bounded size, plus `margin` (then before `redact`, and line by line only after)."""
    size = MAX_VALUE_CHARS + margin
    first = margin > 0

    def bound_sizes(
        _: Any, __: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            if (
                value.__class__ is str
                and len(value) <= size
                and key != "exception"
                and (first or "before masking" not in value)
            ):
                continue  # the usual value, first
            if value is None or isinstance(value, bool | int | float):
                continue
            if not isinstance(value, str):
                # A structure is rendered whole; one too big to keep is kept as cut text.
                text = str(value)
                if len(text) > size:
                    event_dict[key] = _cut(text, head=size, tail=0, before_masking=first)
                continue
            if key == "exception":
                head = _EXCEPTION_HEAD + margin
                tail = MAX_EXCEPTION_CHARS - _EXCEPTION_HEAD + margin
                lines = value.splitlines()
                if not first:
                    # Line by line too: the last line names the error, however long its
                    # message.
                    lines = [_cut(line, head=MAX_TRACEBACK_LINE, tail=0) for line in lines]
                text = "\n".join(lines)
                event_dict[key] = _cut(text, head=head, tail=tail, before_masking=first)
            else:
                event_dict[key] = _cut(value, head=size, tail=0, before_masking=first)
        return event_dict

    return bound_sizes


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
    it is stamped, cut to its bounded size and rendered.

    The app's lines skip the standard library's logging machinery (a record, a handler,
    a formatter): it cost about 30 µs of the 80 an access log line took through it."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    # Every line, once it is a dict: its traceback as text, its personal data masked (in
    # values cut near their bounded size first), then the stamps no personal data is in
    # (the time; the trace ids, though a run of digits in one may look like some), its
    # values bounded, and rendered.
    finish: list[Any] = [
        structlog.processors.format_exc_info,
        *([bounding(REDACT_MARGIN), redact] if redact else []),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        bounding(),
        renderer,
    ]
    named = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
    ]
    structlog.configure(
        processors=[*named, structlog.processors.StackInfoRenderer(), *finish],
        logger_factory=functools.partial(_NamedWriter, stream),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Not cached, so a later configure_logging (tests, a worker) takes effect everywhere.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=named,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finish],
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
