"""The contest report's HTML is real Markdown rendering (markdown-it-py), with raw HTML escaped."""
from harness.sim.report import markdown_to_html


def test_report_html_renders_markdown_and_escapes_html():
    page = markdown_to_html("# Round 1\n\n**Team a** won <script>alert(1)</script>\n\n- one\n- two\n\n"
                            "| team | score |\n|---|---|\n| a | 0.9 |\n\n![shake-up](shakeup.png)\n", "Report")
    assert "<h1>Round 1</h1>" in page and "<strong>Team a</strong>" in page
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in page
    assert "<td>a</td>" in page and '<img src="shakeup.png" alt="shake-up" />' in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "**" not in page
