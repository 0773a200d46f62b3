"""A CSV file that is not CSV text is a data problem (exit 3) with a one-line reason.

pandas meets an empty file, a binary file or UTF-16 text with a traceback (`EmptyDataError`,
`UnicodeDecodeError`, `ParserError`) which used to end a stage as "failed" (exit 8) or `mlops
validate` as an unexpected error (exit 1). `sniff` looks at the first bytes before pandas does,
and `reading` turns what pandas raises while parsing into a `DataValidationError` naming the
file.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import Iterator
from pathlib import Path

from mlops.errors import DataValidationError

SAMPLE = 1 << 16
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_HINT = "Save it as a UTF-8 CSV file with a header line (for example `iconv -f {enc} -t UTF-8`)."


def problem(head: bytes, whole: bool) -> tuple[str, str] | None:
    """(reason, hint) when the first bytes of a file (`whole`: all of it) are not CSV text."""
    if not head.strip():
        return "is empty: a CSV file needs a header line and rows", "Check what wrote the file."
    for bom, name in _BOMS:
        if head.startswith(bom):
            return f"is {name} text, not UTF-8", _HINT.format(enc=name)
    if b"\x00" in head:
        at = head.index(b"\x00")
        utf16 = head[1::2].count(0) > len(head) // 4 or head[0::2].count(0) > len(head) // 4
        if utf16:
            return "looks like UTF-16 text (no byte order mark), not UTF-8", _HINT.format(
                enc="UTF-16"
            )
        return f"is binary, not CSV text (a NUL byte at offset {at})", "Give a CSV text file."
    sample = head.removeprefix(codecs.BOM_UTF8)
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if whole or exc.start < len(sample) - 4:  # not a character cut by the sample's end
            return (
                f"is not UTF-8 text (byte 0x{sample[exc.start]:02x} at offset {exc.start})",
                _HINT.format(enc="LATIN1"),
            )
    return None


def sniff(path: Path | str) -> None:
    """Raise `DataValidationError` when the CSV file at `path` is empty, binary or not UTF-8."""
    with open(path, "rb") as fh:
        head = fh.read(SAMPLE + 1)
    found = problem(head[:SAMPLE], whole=len(head) <= SAMPLE)
    if found:
        raise DataValidationError(f"{path} {found[0]}", found[1])


@contextlib.contextmanager
def reading(path: Path | str) -> Iterator[None]:
    """What pandas raises while parsing `path` (bad encoding further in, unbalanced quotes,
    rows of the wrong width) as a one-line `DataValidationError`."""
    import pandas as pd

    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start} of a block)",
            _HINT.format(enc="LATIN1"),
        ) from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataValidationError(
            f"{path} cannot be read as CSV: {first}", "Fix the file, then run again."
        ) from None
