"""Control characters: refused in config values, escaped in every text report.

A newline inside a value would forge report lines (a fake `Plan: can proceed` inside a BLOCKED plan), and
ESC or NUL would reach the operator's terminal. Config is refused outright (the operator can fix it);
live state and server messages cannot be refused, so the text renderers escape them instead.
"""

from __future__ import annotations

import re
from typing import Any

# Unicode categories Cc (C0 and C1 controls: NUL, ESC, CR, LF, DEL, NEL), Cf (format characters: the
# bidirectional marks and overrides that reorder what a terminal shows, U+061C included; zero-width
# characters; the BOM) and Zl/Zp (line and paragraph separators), as of Unicode 14 (Python 3.11).
CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    )


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
