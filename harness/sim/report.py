"""The contest report: final public/private boards per round, qualifiers, failures by reason, team GPU use,
score-over-time curves per team and a shake-up chart per board (PNG), in Markdown and HTML."""
from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from harness.contest.definition import get_contest
from harness.core.display import arrow, rule_text, score_text
from harness.core.enums import Direction, RunStatus
from harness.state import Harness
from harness.store.models import Run, Session, Submission

from . import board_study


def _plots():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def score_curves(path: Path, title: str, series: dict[str, list[tuple]], direction: Direction, metric: str) -> None:
    """Best public score so far, per team, over simulated time."""
    plt = _plots()
    fig, ax = plt.subplots(figsize=(9, 5))
    for team, points in sorted(series.items()):
        points = sorted(points)
        best, xs, ys = None, [], []
        for when, score in points:
            best = score if best is None or direction.better(score, best) else best
            xs.append(when)
            ys.append(best)
        ax.step(xs, ys, where="post", marker="o", markersize=3, linewidth=1.2, label=team)
    ax.set_title(title)
    ax.set_xlabel("simulated time (UTC)")
    ax.set_ylabel(f"best public {metric} so far")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=7, ncol=2, loc="best")
    else:
        ax.text(0.5, 0.5, "no scored submissions", ha="center", va="center", transform=ax.transAxes)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def shakeup_chart(path: Path, title: str, rows: list[dict]) -> None:
    """Slope chart: each team from its place on the public board (left) to its place on the private one (right).
    Teams are placed one per line in board order (so tied ranks do not overlap); labels carry the ranks."""
    plt = _plots()
    ranked = [r for r in rows if r["private_rank"] is not None and r["public_rank"] is not None]
    left = {r["team"]: i for i, r in enumerate(sorted(ranked, key=lambda r: (r["public_rank"], r["team"])))}
    right = {r["team"]: i for i, r in enumerate(sorted(ranked, key=lambda r: (r["private_rank"], r["public_rank"])))}
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.32 * len(ranked) + 1.5)))
    for r in ranked:
        color = "tab:green" if r["shakeup"] > 0 else ("tab:red" if r["shakeup"] < 0 else "tab:gray")
        y0, y1 = left[r["team"]], right[r["team"]]
        ax.plot([0, 1], [y0, y1], color=color, marker="o", linewidth=1.4)
        ax.text(-0.04, y0, f"{r['public_rank']}. {r['team']}", ha="right", va="center", fontsize=8)
        ax.text(1.04, y1, f"{r['private_rank']}. {r['team']} ({r['shakeup']:+d})", ha="left", va="center", fontsize=8)
    ax.set_xlim(-0.7, 1.7)
    ax.set_ylim(max(len(ranked), 1) - 0.5, -0.5)
    ax.set_xticks([0, 1], ["public board", "private board"])
    ax.set_yticks([])
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def peak_team_gpus(db, team_ids: list[int]) -> dict[int, int]:
    """The most GPUs each team's runs held at one moment (from the runs' real start and end times)."""
    peaks = {}
    for team_id in team_ids:
        events = []
        for run in db.scalars(select(Run).where(Run.team_id == team_id, Run.started_at.is_not(None))):
            if run.gpu_ids:
                events += [(run.started_at, 1, len(run.gpu_ids)), (run.ended_at or run.started_at, 0, -len(run.gpu_ids))]
        held = peak = 0
        for _, _, delta in sorted(events):  # ends sort before starts at the same instant
            held += delta
            peak = max(peak, held)
        peaks[team_id] = peak
    return peaks


def _fmt(v) -> str:
    return score_text(v)


def _md_table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    out = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join(out)


BOARD_COLS = [("private_rank", "Private rank"), ("team", "Team"), ("private", "Private"), ("public_rank", "Public rank"),
              ("public", "Public"), ("shakeup_txt", "Shake-up"), ("submits", "Submits"), ("selected", "Selected"),
              ("reason", "Unscored because")]


def _shakeup_lines(rows: list[dict]) -> list[str]:
    """The shake-up in words: how many teams moved, the biggest rise and fall, and whether the winner held."""
    ranked = [r for r in rows if r["private_rank"] is not None and r["shakeup"] is not None]
    if not ranked:
        return ["No team has a private rank: no shake-up to show."]
    moved = [r for r in ranked if r["shakeup"]]
    rise, fall = max(ranked, key=lambda r: r["shakeup"]), min(ranked, key=lambda r: r["shakeup"])
    public_top = min(ranked, key=lambda r: (r["public_rank"], r["team"]))["team"]
    private_top = min((r for r in rows if r["private_rank"] is not None),  # a team the Ladder never showed too
                      key=lambda r: (r["private_rank"], r["team"]))["team"]
    lines = [f"- {len(moved)} of {len(ranked)} ranked teams changed place from the public to the private board"]
    if rise["shakeup"] > 0:
        lines.append(f"- biggest rise: {rise['team']}, {rise['public_rank']} → {rise['private_rank']}")
    if fall["shakeup"] < 0:
        lines.append(f"- biggest fall: {fall['team']}, {fall['public_rank']} → {fall['private_rank']}")
    lines.append(f"- the public leader ({public_top}) " + ("won the private board too" if public_top == private_top
                                                             else f"lost first place to {private_top}"))
    return lines


def write_report(h: Harness, contest_name: str, cfg, log) -> Path:
    out = Path(cfg.out)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    md = [f"# Contest simulation: {contest_name}", "",
          f"`harness contest simulate {cfg.contest_file} --teams {cfg.teams} --seed {cfg.seed} "
          f"--scale {cfg.scale}` — {log.steps} simulated steps; every session and submit ran for real through the "
          f"scheduler (process runtime, {cfg.workers} at once, {cfg.gpus} simulated GPUs).", ""]
    with h.tx() as db:
        c = get_contest(db, contest_name)
        teams = {t.id: t.name for t in c.teams}
        for rnd in c.rounds:
            res = rnd.results or {}
            md += [f"## {rnd.name}: {', '.join(rnd.tasks)}", "",
                   f"{rnd.starts_at:%Y-%m-%d %H:%M} → {rnd.ends_at:%Y-%m-%d %H:%M} UTC; submits: {rnd.submit_quota} per "
                   f"{rnd.submit_period:g} s per team; GPU quota: {rnd.gpu_quota} per team ({rnd.gpu_policy.value}); "
                   f"public board: {rnd.public_fraction:.0%} of the test set (seed {rnd.split_seed}); "
                   f"qualify: {rule_text(rnd.qualify)}.", ""]
            for task_name, rows in (res.get("boards") or {}).items():
                task = h.task(db, task_name)
                rows = sorted(rows, key=lambda r: (r["private_rank"] is None, r["private_rank"] or 0))
                for r in rows:
                    r["shakeup_txt"] = arrow(r.get("shakeup"))
                md += [f"### {task_name} — final board ({task.metric}, {task.direction.value} is better)", "",
                       _md_table(rows, BOARD_COLS), ""]
                series: dict[str, list] = {}
                for sub in db.scalars(select(Submission).where(Submission.round_id == rnd.id,
                                                               Submission.task_id == task.id,
                                                               Submission.status == RunStatus.SUCCEEDED)):
                    series.setdefault(teams[sub.team_id], []).append((sub.created_at, sub.score))
                curve = f"scores_{rnd.name}_{task_name}.png"
                score_curves(plots / curve, f"{rnd.name} · {task_name}: best public score over time", series,
                             task.direction, task.metric)
                shake = f"shakeup_{rnd.name}_{task_name}.png"
                shakeup_chart(plots / shake, f"{rnd.name} · {task_name}: public → private rank", rows)
                md += [f"![score over time](plots/{curve})", "", f"#### Shake-up: {task_name} in {rnd.name}", "",
                       *_shakeup_lines(rows), "", f"![shake-up](plots/{shake})", ""]
                md += board_study.section(db, rnd, task, rows)
            quals = res.get("qualifiers") or {}
            if res.get("next_round") or quals:
                md += [f"**Qualified ({len(quals)})** for {res.get('next_round') or 'no further round'}:", ""]
                md += [f"- {team}: {why}" for team, why in sorted(quals.items())] or ["- none"]
                md += [""]
            subs = db.scalars(select(Submission).where(Submission.round_id == rnd.id)).all()
            runs = db.scalars(select(Run).join(Session, Session.run_id == Run.id).where(
                Run.team_id.in_(list(teams)), Session.task_id.in_([h.task(db, t).id for t in rnd.tasks]))).all()
            failed_subs = Counter(s.reason.value for s in subs if s.status is RunStatus.FAILED and s.reason)
            failed_runs = Counter(r.reason.value for r in runs if r.status is RunStatus.FAILED and r.reason)
            md += ["**Outcomes**", "",
                   _md_table([{"what": "submits", "total": len(subs),
                               "ok": sum(s.status is RunStatus.SUCCEEDED for s in subs),
                               "failed": ", ".join(f"{k}: {v}" for k, v in sorted(failed_subs.items())) or "none"},
                              {"what": "training sessions", "total": len(runs),
                               "ok": sum(r.status is RunStatus.SUCCEEDED for r in runs),
                               "failed": ", ".join(f"{k}: {v}" for k, v in sorted(failed_runs.items())) or "none"}],
                             [("what", ""), ("total", "Total"), ("ok", "Succeeded"), ("failed", "Failed, by reason")]),
                   ""]
        peaks = peak_team_gpus(db, list(teams))
        quota = max((r.gpu_quota or 0) for r in c.rounds)
        honest = log.honest_outcomes
        md += ["## Teams and honest submits", "",
               "- Behaviours: " + ", ".join(f"{t.name} {t.behaviour.value}" for t in log.teams), "",
               f"- Submits of code without a planted fault: {sum(honest.values())}; "
               + (", ".join(f"{k}: {v}" for k, v in sorted(honest.items())) or "none"), ""]
        md += ["## Quotas", "",
               f"- Submits the quota refused (a team's second try within one period): {log.quota_refusals}",
               "- Faults planted in sessions: " + (", ".join(f"{k}: {v}" for k, v in sorted(log.faults.items()))
                                                    or "none"),
               f"- Peak GPUs any team held at once: {max(peaks.values(), default=0)} (quota {quota}); per team: "
               + ", ".join(f"{teams[t]} {p}" for t, p in sorted(peaks.items())), ""]
        if log.refused:
            md += ["Other refusals:", ""] + [f"- {line}" for line in log.refused[:20]] + [""]
    text = "\n".join(md) + "\n"
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "report.html").write_text(markdown_to_html(text, f"Contest simulation: {contest_name}"), encoding="utf-8")
    return out / "report.md"


def markdown_to_html(text: str, title: str) -> str:
    """The report as one HTML page (CommonMark with tables, by markdown-it-py; raw HTML in the text is escaped)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")
