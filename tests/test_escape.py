"""harness.core.escape: participant text for a spreadsheet cell and for a terminal."""
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from harness.core.escape import FORMULA_START, csv_cell, is_number, terminal

BAD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# text rich in what matters: formula starts, digits, signs, ESC and C1 bytes
TRICKY = st.text(alphabet=st.sampled_from(list("=+-@\t\r\n'0123456789.eE[];?x ") + ["\x1b", "\x9b", "\x07",
                                                                                     "\x9c", "\x00", "\x7f"]))


@pytest.mark.parametrize("cell, expected", [
    ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("-", "'-"), ("-inf", "'-inf"), ("-0.5\n", "'-0.5\n"), ("-١", "'-١"),
    ("-0.5", "-0.5"), ("+3", "+3"), ("-1e-4", "-1e-4"), ("-.5", "-.5"), ("alice", "alice"), ("", ""),
    (" =1", " =1"), ("a=1", "a=1"),
    (-0.5, -0.5), (3, 3), (None, None), (True, True),
])
def test_csv_cell(cell, expected):
    assert csv_cell(cell) == expected


@given(st.one_of(TRICKY, st.text()))
@example("=1+1")
@example("-0.5")
def test_csv_cell_never_leaves_a_formula(text):
    out = csv_cell(text)
    assert out in (text, "'" + text)
    if out.startswith(FORMULA_START):
        assert is_number(out) and out == text  # only a plain number keeps its sign
    if not text.startswith(FORMULA_START):
        assert out == text  # anything else is left alone


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_stay_numbers(x):
    assert csv_cell(x) == x
    assert csv_cell(str(x)) == str(x)  # -0.5, 1e-05, -1e+20 as text too


@pytest.mark.parametrize("text, expected", [
    ("\x1b[31mred\x1b[0m", "red"), ("\x1b]0;pwned title\x07ok", "ok"), ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\",
                                                                       "link"),
    ("a\x1b[2J\x1b[Hb", "ab"), ("\x1bcreset", "reset"), ("\x9b31mc1\x9b0m", "c1"), ("\x9d0;t\x9cok", "ok"),
    ("line\r\nnext\tcol", "line\nnext\tcol"), ("bell\x07\x00\x7f\x85", "bell"), ("\x1b(Bascii", "ascii"),
    ("safe\u202eevil", "safeevil"), ("0.9\u200f1\u061c2\u200e", "0.912"),
    ("unterminated \x1b]0;title", "unterminated 0;title"),
    ("Ünïcödé ✓ 한국어", "Ünïcödé ✓ 한국어"),
])
def test_terminal(text, expected):
    assert terminal(text) == expected


@given(st.one_of(TRICKY, st.text()))
@example("\x1b[31m\x1b]0;x\x07\x9b1m\x85")
def test_terminal_leaves_no_control_character(text):
    out = terminal(text)
    assert not BAD.search(out)
    assert terminal(out) == out  # idempotent
    if not BAD.search(text) and not re.search("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]", text):
        assert out == text  # printable text (with newlines and tabs) passes unchanged


@pytest.mark.parametrize("mark", ["\u202e", "\u2066", "\u200e", "\u200f", "\u061c", "\x1b", "\n"])
def test_a_memo_with_a_bidi_or_control_character_is_refused(mark):
    from harness.core.errors import UserError
    from harness.core.names import check_memo
    assert check_memo("lr=0.1 한국어 ✓") == "lr=0.1 한국어 ✓"
    with pytest.raises(UserError, match="control characters"):
        check_memo(f"score 0.9{mark}1")


@given(st.text())
def test_a_name_in_a_one_line_message_is_printable_and_never_reads_as_another(name):
    """Whatever a file is named, it adds no line and no control to a message; a name spelling `a\\nb` and one
    holding a newline read differently."""
    from harness.core.escape import one_line
    shown = one_line(name)
    assert shown.isprintable() and "\n" not in shown
    assert shown == name or "\\" in shown
    if name.isprintable() and "\\" not in name:
        assert shown == name
    assert one_line("a\nb.py") != one_line("a\\nb.py")
