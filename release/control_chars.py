"""Control characters: refused in config values, escaped in every text report.

A newline inside a value would forge report lines (a fake `Plan: can proceed` inside a BLOCKED plan), and
ESC or NUL would reach the operator's terminal. Config is refused outright (the operator can fix it);
live state and server messages cannot be refused, so the text renderers escape them instead.
"""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls (Unicode category Cc, incl. NUL, ESC, CR, LF, DEL), line/paragraph separators, and the
# bidirectional overrides that reorder what a terminal shows.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape_controls(text: str) -> str:
    """`text` with every control character written as a visible escape (`\\n`, `\\x1b`, `\\u202e`)."""
    return CONTROL.sub(_escape, text)


def control_char_paths(value: Any, root: str) -> list[tuple[str, str]]:
    """(path, code point) of every key or string value holding a control character, walked without
    recursion (the nesting bound has already been checked, but the walk does not rely on it)."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            match = CONTROL.search(item)
            if match:
                found.append((path, f"U+{ord(match.group(0)):04X}"))
        elif isinstance(item, dict):
            for key, child in item.items():
                key_text = str(key)
                match = CONTROL.search(key_text)
                if match:
                    found.append((f"{path}.{escape_controls(key_text)}", f"U+{ord(match.group(0)):04X}"))
                    continue
                stack.append((f"{path}.{key_text}", child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return sorted(found)
