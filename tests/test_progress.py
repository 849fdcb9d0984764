"""Long operations report progress: plain lines off a terminal (only once they take a while), nothing extra for
quick ones."""
import harness.cli.spinner as spinner


def test_quick_operations_print_nothing_extra(capsys):
    with spinner.shown("rescore tiny", 3) as report:
        for i in range(3):
            report(i + 1, note=f"submission {i}")
    assert capsys.readouterr().err == ""


def test_slow_operations_print_plain_lines_then_done(capsys, monkeypatch):
    monkeypatch.setattr(spinner, "PLAIN_AFTER", 0.0)
    monkeypatch.setattr(spinner, "PLAIN_EVERY", 3600.0)
    with spinner.shown("simulate", 10) as report:
        report(1, note="round1 00:00")
        report(5, 20, note="round1 04:00")  # a total learned on the way
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("simulate: 1/10 (round1 00:00)")
    assert lines[-1].startswith("simulate: 5/20 (round1 04:00)") and lines[-1].endswith(", done")
    assert len(lines) == 2
