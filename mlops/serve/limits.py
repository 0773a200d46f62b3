"""Bounds on what one request may cost the service: time to send it, values, nesting, memory.

- **Reading**: the body must arrive within `read_timeout` seconds of the headers (408 after), and
  never exceeds the body limit (413, checked while reading). A header deadline, enforced under
  the ASGI app by `mlops.serve.httpdeadline`, closes connections whose headers do not complete.
- **Counting before parsing**: a JSON or CSV body is refused (413) when its separators
  (`,` and line ends, counted at C speed on the bytes) show more values than `max_rows` rows of
  the schema's width (plus `EXTRA_COLUMNS` ignored columns) can hold, so a 16 MB body of tiny
  values is never turned into millions of Python objects; CSV rows are then capped while they
  are read.
- **Nesting**: a parsed JSON body deeper than `MAX_DEPTH` is refused (400), on every endpoint.
- **Off the event loop**: bodies above `INLINE_BYTES` are parsed and checked in a worker thread,
  at most `PARSERS` at a time, so a large body delays neither other requests nor the health
  checks; small ones stay inline (a thread hop costs more than parsing them).
- **Answers**: an error body is always valid JSON: text that cannot be encoded (a lone
  surrogate such as `"\\ud800"` read by the fallback JSON parser) is shown escaped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from mlops.bundle.inputs import RequestError, dumps

MAX_DEPTH = 32  # payloads need 4 levels (dataframe_split), feedback 3
EXTRA_COLUMNS = 16  # columns beyond the schema's a row may carry (ignored, but counted)
FEEDBACK_VALUES_PER_ROW = 64
INLINE_BYTES = 64 * 1024  # bodies up to this size are parsed on the event loop
PARSERS = 2  # large bodies parsed at once (each holds at most one body's worth of objects)
DEFAULT_READ_TIMEOUT = 30.0

T = TypeVar("T")


def max_values(max_rows: int, width: int) -> int:
    """How many JSON values or CSV cells a body of `max_rows` rows of `width` columns may hold."""
    return (max_rows + 1) * (width + EXTRA_COLUMNS) + 64


def check_value_count(body: bytes, limit: int) -> None:
    """413 when the body's separators show more than `limit` values (an upper bound: commas
    inside strings count too, which only errs on the side of refusing)."""
    n = body.count(b",") + body.count(b"\n") + 1
    if n > limit:
        raise RequestError(
            413,
            "too_many_values",
            f"the body holds about {n} values; the limit is {limit} "
            "(max-rows x the schema's columns)",
            hint="Split the batch into smaller requests.",
        )


def check_depth(obj: Any, limit: int = MAX_DEPTH) -> None:
    """400 when a parsed JSON value nests lists/objects more than `limit` deep (iterative)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise RequestError(
                400, "too_deep", f"the body nests lists or objects more than {limit} levels deep"
            )
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))


def parse_json_bounded(body: bytes, limit: int) -> Any:
    """Count, parse and check the depth of a JSON body (see the module's docstring)."""
    from mlops.bundle.inputs import parse_json

    check_value_count(body, limit)
    obj = parse_json(body)
    check_depth(obj)
    return obj


def printable(obj: Any, _depth: int = 0) -> Any:
    """`obj` with every string that UTF-8 cannot encode shown escaped (for error bodies)."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:
            return obj.encode("utf-8", "backslashreplace").decode("utf-8")
    if _depth > MAX_DEPTH:
        return "…"
    if isinstance(obj, dict):
        return {printable(k, _depth + 1): printable(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [printable(v, _depth + 1) for v in obj]
    return obj


def error_body(body: dict[str, Any]) -> bytes:
    """An error response's JSON bytes, whatever text the request put into it."""
    try:
        return dumps(body)
    except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
        try:
            return dumps(printable(body))
        except (TypeError, ValueError):
            return dumps({k: str(v)[:200] for k, v in printable(body).items()})


async def read_body(receive: Any, limit: int, length: int, seconds: float) -> bytes | None:
    """The request body: 413 above `limit` (checked while reading), 408 when it has not all
    arrived within `seconds`; None when the client went away."""
    if length > limit:
        raise too_large(limit)
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body"):
                    break
    except TimeoutError:
        raise RequestError(
            408,
            "request_timeout",
            f"the body did not arrive within {seconds:g} s",
            hint="Send the whole request at once.",
        ) from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large(limit: int) -> RequestError:
    """The 413 of a body above the limit."""
    return RequestError(
        413,
        "body_too_large",
        f"the body is larger than {limit} bytes",
        hint="Split the batch into smaller requests.",
    )


class OffLoop:
    """Runs the parsing of large bodies in worker threads, at most `PARSERS` at once."""

    def __init__(self, parsers: int = PARSERS) -> None:
        self.parsers = parsers
        self._sem: asyncio.Semaphore | None = None  # made on the serving loop, on first use

    async def run(self, size: int, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` inline for a body of `size` <= `INLINE_BYTES`, else in a thread."""
        if size <= INLINE_BYTES:
            return fn(*args)
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.parsers)
        async with self._sem:
            return await asyncio.to_thread(fn, *args)
