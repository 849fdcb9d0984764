"""How values read for people, the same in the terminal, on the dashboard and in reports: scores, yes/no,
times (always with their zone), rank moves, a round's qualifying rule."""
from __future__ import annotations

from datetime import datetime

SCORE_DIGITS = 6  # significant digits of a score: enough to tell apart the metrics of every task shipped


def score_text(value) -> str:
    """A score (or any metric value) as people read it everywhere: SCORE_DIGITS significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, float):
        text = f"{value:.{SCORE_DIGITS}g}"
        return text + ".0" if text.lstrip("-").isdigit() else text  # a float reads as one: 1.0, not 1
    return str(value)


def interval_text(pair) -> str:
    """A score's 95% interval as people read it: '0.912–0.951' ('' for none), each end in the score format."""
    if not pair:
        return ""
    low, high = pair
    return f"{score_text(float(low))}–{score_text(float(high))}"


def yes_no(value) -> str:
    return "" if value is None else ("yes" if value else "no")


def time_text(value, seconds: bool = False) -> str:
    """A stored (naive UTC) time, or its ISO text, as 'YYYY-MM-DD HH:MM UTC'."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "").replace("T", " "))
        except ValueError:
            return value
    return value.isoformat(sep=" ", timespec="seconds" if seconds else "minutes") + " UTC"


def arrow(delta) -> str:
    """A rank move from the public to the private board: ▲2 (up two places), ▼1, = (held)."""
    if delta is None:
        return ""
    return f"▲{delta}" if delta > 0 else (f"▼{-delta}" if delta < 0 else "=")


def rule_text(rule: dict | None) -> str:
    """A round's qualifying rule in words ({'top': 2} → 'top 2 per task')."""
    if not rule:
        return "no rule (every team goes on)"
    if "top" in rule:
        return f"top {rule['top']} per task (private board)"
    if "threshold" in rule:
        return f"private score at least as good as {rule['threshold']:g}"
    return ", ".join(f"{k} {v}" for k, v in rule.items())


def shakeup_text(shakeup: dict, closed: bool) -> str:
    """A round's expected shake-up in words (harness.scoring.board_ties.expected_shakeup)."""
    holds = ", ".join(f"{team} {p:.0%}" for team, p in shakeup["hold"].items())
    if shakeup.get("p_value") is None:  # a whole-sample metric: resampled within each half
        return (f"Expected shake-up, resampling each half: {shakeup['expected_moved']:g} of {shakeup['teams']} teams "
                f"change place; each team's rank holds with: {holds}. {'Observed' if closed else 'On the halves now'}"
                f": {shakeup['moved']} moved.")
    text = (f"Expected shake-up from noise alone: {shakeup['expected_moved']:g} of {shakeup['teams']} teams change "
            f"place; each team's rank holds with: {holds}.")
    verdict = "more than noise explains" if shakeup["p_value"] < 0.05 else "within what noise explains"
    return text + (f" {'Observed' if closed else 'On the halves now'}: {shakeup['moved']} moved "
                   f"(p = {shakeup['p_value']:.2g}, {verdict}).")


LADDER_NOTE = ("Ladder public board: a team's public score moves only when a submission beats it by more than the "
               "noise (a paired test over the public half); other submits show no public score until the round closes")
