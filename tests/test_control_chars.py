"""release/control_chars.py: what counts as a control character, how it is shown, and where it is found."""

from __future__ import annotations

import pytest

from release.control_chars import control_char_paths, escape_controls


@pytest.mark.parametrize(
    "text, shown",
    [
        ("a\nb", "a\\nb"),
        ("a\r\tb", "a\\r\\tb"),
        ("\x1b[2J", "\\x1b[2J"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
        ("line\u2028sep", "line\\u2028sep"),
        ("bidi\u202egnp.exe", "bidi\\u202egnp.exe"),
        ("arabic letter mark\u061c", "arabic letter mark\\u061c"),
        ("next line\x85", "next line\\x85"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("plain é 中文 -_.:/", "plain é 中文 -_.:/"),
    ],
)
def test_escape_controls(text, shown):
    assert escape_controls(text) == shown


def test_control_char_paths_names_keys_and_values_without_their_text():
    found = control_char_paths({"ibkr": {"env": {"A": "x\ny", "B\x1b": "ok", "C": ["ok", "\x00"]}}}, "services")
    assert found == [
        ("services.ibkr.env.A", "U+000A"),
        ("services.ibkr.env.B\\x1b", "U+001B"),
        ("services.ibkr.env.C[1]", "U+0000"),
    ]
    assert control_char_paths({"a": ["fine", {"b": 1}]}, "release") == []


def test_every_control_format_and_separator_character_is_caught():
    """Cc, Cf, Zl and Zp of the running Python's Unicode database: none may pass unescaped."""
    import sys
    import unicodedata

    from release.control_chars import CONTROL

    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp") and not CONTROL.fullmatch(chr(code))
    ]
    assert missed == []
