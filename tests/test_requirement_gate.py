"""The requirement-line gate fuzzed (requirements.txt, setup.py's install_requires, nsml_package.txt): a line
becomes a registry package name with version specifiers (extras and markers allowed) or a one-line refusal —
never a URL, a path, a pip option or anything with a line break that could reach a build."""
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from harness.runtime.images import APT_NAME, ImageError, apt_packages, requirement_line

NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
PIECES = st.sampled_from(["numpy", "torch", ">=1.0", "==2.13.0", "[extra]", "; python_version<'3.9'", " @ ",
                          "https://evil.example/x.whl", "git+https://x", "file:///etc", "../pkg", "-e .",
                          "--index-url http://x", "pkg.tar.gz", "\n", "\r", "#", " ", "\\", "a/b", "c:d", "\x00",
                          "-r other.txt", "===", "~=", "*", ",", "(", ")"])
LINES = st.one_of(st.lists(PIECES, max_size=6).map("".join), st.text(max_size=60))


@settings(max_examples=1500, deadline=None)
@given(LINES)
@example("numpy===https://evil.example/x.whl")  # (arbitrary equality: any string as its version; found by the fuzz)
def test_a_requirement_line_is_a_plain_requirement_or_a_one_line_refusal(line):
    try:
        got = requirement_line(line, "requirements.txt:1")
    except ImageError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("requirements.txt:1: ")
        return
    if got is None:
        return
    assert "\n" not in got and "\r" not in got and not got.startswith("-")
    req = Requirement(got)
    assert req.url is None and NAME.match(req.name), got
    assert not any(s in got for s in ("://", "file:", "git+")), got


@settings(max_examples=500, deadline=None)
@given(st.lists(LINES, max_size=4).map("\n".join))
def test_apt_lines_are_package_names_or_a_one_line_refusal(text):
    try:
        out = apt_packages(text, "nsml_package.txt")
    except ImageError as exc:
        assert "\n" not in str(exc)
        return
    assert all(APT_NAME.match(name) for name in out.split())


def test_a_setup_py_nested_past_the_parser_is_one_line(tmp_path):
    """`x = 1+1+...` and `x = ----1` made the parser raise RecursionError and MemoryError: an HTTP 500 (the
    review's attack); they are the same one-line refusal as any setup.py that does not parse."""
    import pytest

    from harness.runtime.images import install_requires
    setup = tmp_path / "setup.py"
    for text in ("x = " + "+".join(["1"] * 120_000) + "\n", "x = " + "-" * 200_000 + "1\n"):
        setup.write_text(text)
        with pytest.raises(ImageError, match=r"^setup.py: cannot parse: nested too deeply to read$"):
            install_requires(setup)
