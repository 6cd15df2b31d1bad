"""Characters no writer passes on as they are (issue 22, guarantee 2, the writers' half).

Text from outside opref (a runtime's message, a case name, a hand-edited results.json) can hold
a terminal's escape sequences (native runtimes print ANSI-coloured logs), characters XML 1.0
forbids, lone surrogates that no UTF-8 file can hold, and bidirectional overrides that make a
line read differently from what it says. :func:`visible` writes each of them as a visible
``\\x1b`` / ``\\udcff`` / ``\\u202e`` escape; every writer (terminal, Markdown, HTML, JUnit)
applies it, then escapes for its own format.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL and the C1 controls; lone surrogates; the two
# non-characters XML 1.0 forbids; line and paragraph separators; bidirectional controls.
_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every character a writer must not pass on written as an escape."""
    return _HIDDEN.sub(_escape, text)
