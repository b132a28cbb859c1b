"""Text a job (or a record another tool wrote) controls, made safe to print on a terminal.

A job's error message, progress message, output, arguments and name reach the operator's
terminal through `show`, `logs`, `status`, `stats`, the worker's log lines...; raw, an escape
sequence in them could retitle the window (OSC 0), clear the screen, move the cursor to
overwrite what was printed before, or (bidi overrides) make a line read differently from what
it holds. `printable` shows each such character as a Python-style escape (`\\x1b`, `\\u202e`)
instead. This module imports nothing heavy: the worker's log lines use it too.
"""

from __future__ import annotations

import re

# C0 controls but tab, newline and carriage return (handled below), DEL and the C1 controls
# (0x9b is a one-byte CSI), the Unicode bidi controls (Bidi_Control: ALM, LRM, RLM, the
# embeddings, overrides and isolates), and lone surrogates (what surrogateescape decodes bytes
# that are not UTF-8 to; no terminal encoding can print them).
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_IN_A_LINE = re.compile(f"[\n\r{_CONTROLS}]")
_IN_LINES = re.compile(f"\r(?!\n)|[{_CONTROLS}]")  # a carriage return alone overwrites the line


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """`text` with every control character escaped: one line, or with `lines` several, whose
    line breaks (\\n, \\r\\n) are kept. Tabs are kept (they move the cursor right, to a stop)."""
    return (_IN_LINES if lines else _IN_A_LINE).sub(_escape, text)
