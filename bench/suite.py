"""The benchmark suite: every performance goal of the harness, each measured beside its bare equivalent in the
same run (samples alternate), as medians. Writes bench/results/latest.json and bench/results/latest.md, and
with --readme puts the table into docs/benchmarks.md (the docs site's Benchmarks page) between its bench markers.

    python bench/suite.py [--repeat 5] [--only ps,session,...] [--readme]

Rows: ps, session, docker, submit, board, evaluator, schedule, schedule_ray, remote, web (docker is skipped, and says
so, without an engine; schedule_ray without ray). Not timed tests: nothing here fails a build; the table says which rows miss their goal.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures  # noqa: E402
from common import ENTRY, REPO, SDK, cli, prepare_without_quota, run_and_follow, timed  # noqa: E402

RESULTS = REPO / "bench" / "results"
IMAGE = "nsml-harness/session:latest"
PY = sys.executable


def harness_cmd() -> list[str]:
    """The command a user types: the installed console script when there is one."""
    script = Path(PY).with_name("nsml")
    return [str(script)] if script.exists() else [PY, "-m", "harness"]


def run_env(root: Path, user: str = "bench") -> dict:
    return dict(os.environ, HARNESS_HOME=str(root), HARNESS_USER=user)


def timed_cmd(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, str]:
    """Wall seconds and standard output of one command."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, proc.stdout


def peak_rss_mib(cmd: list[str], env: dict | None = None) -> float:
    """Peak resident memory of one command, sampled every 2 ms (rusage would count this process: a forked
    child inherits its parent's high-water mark)."""
    import psutil

    proc = psutil.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.002)
    return peak / 2 ** 20


def stop_services(state_dir: Path) -> None:
    from harness.client.service import stop_services as stop
    stop(state_dir)


def wait_scheduler_idle(root: Path) -> None:
    """Wait until the root's scheduler has left by itself (idle): its lock is free, its host (a service) stays."""
    from harness.scheduler.lease import FileLock
    lock = FileLock(root / ".harness" / "scheduler.lock")
    deadline = time.monotonic() + 60
    while not lock.is_free():
        if time.monotonic() > deadline:
            raise SystemExit("the scheduler did not go idle")
        time.sleep(0.05)


def stop_scheduler(root: Path) -> None:
    """End the root's idle scheduler (for the cold samples) and wait until its lock is free."""
    from harness.scheduler.lease import FileLock
    lock = FileLock(root / ".harness" / "scheduler.lock")
    for _ in range(200):
        if lock.is_free():
            return
        pid = lock.holder()
        try:
            if pid:
                os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        time.sleep(0.05)
    raise SystemExit("the scheduler did not stop")


def med(xs):
    return statistics.median(xs)


def row(key, measure, goal_text, value, goal, unit, bare=None, harness=None, extra=None, samples=None):
    return {"key": key, "measure": measure, "goal": goal_text, "value": round(value, 3), "goal_value": goal,
            "unit": unit, "met": value <= goal, "bare_s": None if bare is None else round(bare, 3),
            "harness_s": None if harness is None else round(harness, 3), "extra": extra or {},
            "samples": {k: [round(x, 3) for x in v] for k, v in (samples or {}).items()}}


# -- rows ---------------------------------------------------------------------------------------------------
def bench_ps(tmp: Path, repeat: int) -> dict:
    root = tmp / "ps"
    root.mkdir()
    prepare_without_quota(root)
    code = fixtures.entry_folder(tmp / "ps-code", ENTRY)
    for _ in range(3):
        run_and_follow(root, code, "--runtime", "process", "-a", "--work 0")
    stop_scheduler(root)
    env, bare, ps = run_env(root), [], []
    for _ in range(repeat * 2):
        bare.append(timed_cmd([PY, "-c", "pass"])[0])
        ps.append(timed_cmd(harness_cmd() + ["ps", "-a"], env)[0])
    return row("ps", "`nsml ps -a` whole process (small state root) / bare `python -c pass`", "≤ 2.5",
               med(ps) / med(bare), 2.5, "×", bare=med(bare), harness=med(ps), samples={"bare": bare, "harness": ps})


IMPORT_TIME = ("import time; t = time.perf_counter(); import harness.cli.session_cmds; "
               "print(time.perf_counter() - t)")  # what `run` imports before it does anything


def bench_session(tmp: Path, repeat: int, work: float = 2.0) -> dict:
    root = tmp / "session"
    root.mkdir()
    prepare_without_quota(root)
    code = fixtures.entry_folder(tmp / "session-code", ENTRY)
    env = dict(os.environ, PYTHONPATH=str(SDK))
    bare, warm, run_cli, imports = [], [], [], []
    cold = timed(lambda: run_and_follow(root, code, "--runtime", "process", "-a", f"--work {work}"))
    for _ in range(repeat):
        bare.append(timed_cmd([PY, "main.py", "--work", str(work)], env, cwd=code)[0])
        warm.append(timed(lambda: run_and_follow(root, code, "--runtime", "process", "-a", f"--work {work}")))
        run_cli.append(timed(lambda: cli(root, "run", "-d", "garbage-docs", "-a", "--work 0", str(code))))
        imports.append(float(timed_cmd([PY, "-c", IMPORT_TIME])[1]))
    b, h = med(bare), med(warm)
    return row("session", f"{work:g}-s CPU session, process runtime: `run` + `logs -f` / bare `python main.py`",
               "≤ 1.15", h / b, 1.15, "×", bare=b, harness=h,
               extra={"overhead_s": round(h - b, 3), "cold_scheduler_s": round(cold, 3),
                      "run_command_s": round(med(run_cli), 3), "of_which_imports_s": round(med(imports), 3)},
               samples={"bare": bare, "harness": warm, "run_command": run_cli, "imports": imports})


def bench_docker(tmp: Path, repeat: int, work: float = 2.0) -> dict:
    from harness.runtime.docker_runtime import engine_answers
    if not engine_answers():
        return {"key": "docker", "measure": "docker runtime", "skipped": "no Docker engine answered"}
    root = tmp / "docker"
    root.mkdir()
    prepare_without_quota(root)
    code = fixtures.entry_folder(tmp / "docker-code", ENTRY)
    os.chmod(code, 0o755)
    bare_cmd = ["docker", "run", "--rm", "--network", "none", "-v", f"{code}:/app:ro", "-v",
                f"{SDK}:/opt/nsml-sdk:ro", "-w", "/app", "-e", "PYTHONPATH=/opt/nsml-sdk", IMAGE,
                "python3", "main.py", "--work", str(work)]
    run_and_follow(root, code, "--runtime", "docker", "-a", "--work 0")  # the scheduler up, the image found
    bare, harness = [], []
    for _ in range(repeat):
        bare.append(timed_cmd(bare_cmd)[0])
        harness.append(timed(lambda: run_and_follow(root, code, "--runtime", "docker", "-a", f"--work {work}")))
    b, h = med(bare), med(harness)
    return row("docker", f"{work:g}-s CPU session, docker: / bare `docker run --rm --network none`", "≤ 1.10",
               h / b, 1.10, "×", bare=b, harness=h, extra={"overhead_s": round(h - b, 3)},
               samples={"bare": bare, "harness": harness})


def bench_submit(tmp: Path, repeat: int) -> dict:
    root = tmp / "submit"
    root.mkdir()
    (root / "harness.toml").write_text("[scheduler]\nidle_exit_seconds = 1\n")  # the service-warm samples wait it out
    prepare_without_quota(root)
    code = fixtures.entry_folder(tmp / "submit-code", ENTRY)
    name = run_and_follow(root, code, "--runtime", "process", "-a", f"--work 0 --checkpoints {4 * repeat}")
    env = run_env(root)
    cold, service_only, warm, bare, floor = [], [], [], [], []
    checkpoints = iter(range(6 * repeat))
    submit = lambda: timed_cmd(harness_cmd() + ["submit", name, str(next(checkpoints))], env)[0]  # noqa: E731
    for _ in range(repeat):  # a new checkpoint each time: never the stored reply of an earlier submit
        bare.append(timed_cmd([PY, "-c", "pass"])[0])
        # what a cold submit cannot avoid: one process loading the store's library (SQLAlchemy and the models)
        floor.append(timed_cmd([PY, "-c", "import harness.store.models, harness.store.engine"])[0])
        stop_scheduler(root)
        stop_services(root / ".harness")
        cold.append(submit())  # nothing of the harness running: the service and the scheduler start
        wait_scheduler_idle(root)
        service_only.append(submit())  # the service warm, its scheduler thread idled out and started again
        warm.append(submit())
    board = json.loads(cli(root, "board", "garbage-docs", "-j"))
    assert board and board[0]["submits"] == 3 * repeat, board  # every submit was a new, scored one
    return row("submit", "`submit` of a no-op infer, a new checkpoint each time, no harness process running / bare "
               "`python -c pass`", "≤ 15", med(cold) / med(bare), 15.0, "×", bare=med(bare), harness=med(cold),
               extra={"service_warm_scheduler_cold_s": round(med(service_only), 3),
                      "store_library_import_x": round(med(floor) / med(bare), 2),
                      "both_warm_s": round(med(warm), 3), "python_start_s": round(med(bare), 3)},
               samples={"cold": cold, "service_warm": service_only, "warm": warm, "bare": bare})


def bench_board(tmp: Path, repeat: int) -> dict:
    root = tmp / "board"
    root.mkdir()
    fixtures.big_board(root, n_subs=100_000, n_users=1000)
    env, bare, table, as_json = run_env(root), [], [], []
    for _ in range(repeat):
        bare.append(timed_cmd([PY, "-c", "pass"])[0])
        table.append(timed_cmd(harness_cmd() + ["board", "big"], env)[0])
        as_json.append(timed_cmd(harness_cmd() + ["board", "big", "-j"], env)[0])
    rss = [peak_rss_mib(harness_cmd() + ["board", "big", "-j"], env)]
    worst = max(med(table), med(as_json))
    return row("board", "`board` / `board -j` with 100,000 submissions from 1,000 users / bare `python -c pass`",
               "≤ 5", worst / med(bare), 5.0, "×", bare=med(bare), harness=worst,
               extra={"board_s": round(med(table), 3), "board_json_s": round(med(as_json), 3),
                      "peak_rss_mib": round(max(rss), 1)},
               samples={"bare": bare, "board": table, "board_json": as_json})


def bench_evaluator(tmp: Path, repeat: int, n: int = 1_000_000) -> dict:
    labels, pred = fixtures.accuracy_files(tmp / "eval", n)
    evaluator = REPO / "tasks" / "garbage-docs" / "evaluation.py"
    bare_code = ("import numpy as np, sys; p = np.array(open(sys.argv[1]).read().split(), dtype=np.int8); "
                 "t = np.array(open(sys.argv[2]).read().split()[1:], dtype=np.int8); print((p == t).mean())")
    bare, ours = [], []
    for _ in range(repeat):
        bare.append(timed_cmd([PY, "-c", bare_code, str(pred), str(labels)])[0])
        ours.append(timed_cmd([PY, str(evaluator), "--prediction", str(pred), "--test_label_path", str(labels)])[0])
    b, h = med(bare), med(ours)
    return row("evaluator", f"garbage-docs `evaluation.py` on {n:,} rows / bare numpy accuracy", "≤ 1.2", h / b,
               1.2, "×", bare=b, harness=h, samples={"bare": bare, "harness": ours})


def bench_schedule(tmp: Path, repeat: int, n: int = 200, gpus: int = 8) -> dict:
    root = tmp / "schedule"
    root.mkdir()
    (root / "harness.toml").write_text(f"gpus = {gpus}\n[scheduler]\nmax_concurrent_runs = {gpus}\n"
                                       f"[limits]\nqueued_per_user = {n}\n")
    prepare_without_quota(root)
    code = fixtures.entry_folder(tmp / "schedule-code", fixtures.SLEEP_ONE)
    span, oversubscribed, _ = fixtures.makespan(root, code, n)
    ideal = n / gpus * 1.0
    return row("schedule", f"{n} queued 1-s sessions on {gpus} declared GPUs: makespan / ideal {ideal:g} s",
               "≤ 1.10", span / ideal, 1.10, "×", harness=span,
               extra={"makespan_s": round(span, 3), "ideal_s": ideal, "oversubscribed": oversubscribed})


def bench_schedule_ray(tmp: Path, repeat: int, n: int = int(os.environ.get("BENCH_RAY_N", "200")), workers: int = 2, gpus_each: int = 4) -> dict:
    """The schedule row on the Ray executor: a real local cluster on 127.0.0.1 (a head without GPUs and WORKERS
    workers with GPUS_EACH declared GPUs), the harness's scheduler as its driver."""
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        return {"key": "schedule_ray", "measure": "the schedule row on a Ray cluster",
                "skipped": "ray is not installed (pip install 'nsml-harness[cluster]')"}
    gpus = workers * gpus_each
    # loopback only; Ray would otherwise rewrite the scheduler's 127.0.0.1 address to the host's outward one
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0, "include_dashboard": False,
                                                           "node_ip_address": "127.0.0.1"})
    try:
        for _ in range(workers):
            cluster.add_node(num_cpus=gpus_each, num_gpus=gpus_each, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        root = tmp / "schedule-ray"
        root.mkdir()
        (root / "harness.toml").write_text(f"[scheduler]\nmax_concurrent_runs = {gpus}\n"
                                           f"[limits]\nqueued_per_user = {n}\n"
                                           f"[cluster]\nexecutor = \"ray\"\naddress = \"{cluster.address}\"\n")
        prepare_without_quota(root)
        code = fixtures.entry_folder(tmp / "schedule-ray-code", fixtures.SLEEP_ONE)
        span, oversubscribed, per_node = fixtures.makespan(root, code, n)
        stop_scheduler(root)
        bare = bare_ray_makespan(cluster.address, code / "main.py", n)
    finally:
        cluster.shutdown()
    ideal = n / gpus * 1.0
    return row("schedule_ray", f"{n} queued 1-s sessions on {gpus} declared GPUs across {workers} Ray workers: "
               f"makespan / ideal {ideal:g} s", "≤ 1.10", span / ideal, 1.10, "×", bare=bare, harness=span,
               extra={"makespan_s": round(span, 3), "ideal_s": ideal, "oversubscribed": oversubscribed,
                      "runs_per_node": "/".join(str(v) for v in sorted(per_node.values())),
                      "bare_ray_ratio": round(bare / ideal, 3)})


BARE_RAY = """
import subprocess, sys, time
import ray
address, entry, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ray.init(address=address, log_to_driver=False, logging_level="WARNING")
@ray.remote(num_gpus=1, num_cpus=1, max_calls=0, max_retries=0)
def one(entry):
    subprocess.run([sys.executable, entry], check=True, capture_output=True)
start = time.perf_counter()
ray.get([one.remote(entry) for _ in range(n)])
print(time.perf_counter() - start)
"""


def bare_ray_makespan(address: str, entry: Path, n: int) -> float:
    """The bare equivalent on the same cluster: a fresh driver hands Ray N tasks at once, each running the same
    entry as a plain process on the GPU Ray gave it (no harness: no admission, sandbox, snapshot or store)."""
    return float(timed_cmd([PY, "-c", BARE_RAY, address, str(entry), str(n)])[1].split()[-1])


def bench_remote(tmp: Path, repeat: int) -> dict:
    import remote
    return remote.bench_remote(tmp, repeat, harness_cmd, timed_cmd, row, med)


def bench_web(tmp: Path, repeat: int) -> dict:
    import web
    return web.bench_web(tmp, repeat, harness_cmd, timed_cmd, row, med)


ROWS = {"ps": bench_ps, "session": bench_session, "docker": bench_docker, "submit": bench_submit,
        "board": bench_board, "evaluator": bench_evaluator, "schedule": bench_schedule,
        "schedule_ray": bench_schedule_ray, "remote": bench_remote,
        "web": bench_web}


# -- output -------------------------------------------------------------------------------------------------
def markdown(rows: list[dict], command: str, machine: str) -> str:
    out = [f"Measured by `{command}` on {machine}; medians, the bare equivalent timed in the same run.", "",
           "| measure | goal | measured | bare equivalent | met |", "|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['measure']} | | skipped: {r['skipped']} | | |")
            continue
        value = f"{r['value']:.2f}{' s' if r['unit'] == 's' else '×'}"
        if r["unit"] == "×":
            value += f" ({r['harness_s']:.2f} s)"
        notes = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["extra"].items())
        bare = f"{r['bare_s']:.3f} s" if r["bare_s"] is not None else ""
        out.append(f"| {r['measure']} | {r['goal']} | {value}{f'; {notes}' if notes else ''} | {bare} | "
                   f"{'yes' if r['met'] else '**no**'} |")
    return "\n".join(out) + "\n"


def into_readme(table: str) -> None:
    readme = REPO / "docs" / "benchmarks.md"  # the Performance section moved there from README.md
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"docs/benchmarks.md: no {start} ... {end} markers to put the table between")
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n" + table + end + rest.split(end, 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default=",".join(ROWS), help="comma-separated rows: " + ", ".join(ROWS))
    parser.add_argument("--readme", action="store_true", help="put the table into docs/benchmarks.md")
    args = parser.parse_args()
    chosen = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in ROWS]
    if unknown:
        raise SystemExit(f"--only: unknown row(s) {', '.join(unknown)} (known: {', '.join(ROWS)})")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    command = f"python bench/suite.py --repeat {args.repeat}" + (f" --only {args.only}" if args.only != ",".join(ROWS)
                                                                 else "")
    # The harness's bytecode, as an installed package has it (pip compiles at install; an editable checkout under
    # PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module on every command, ~40 ms a command here).
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "harness")], check=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        for key in chosen:
            print(f"[bench] {key} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            rows.append(ROWS[key](Path(tmp), args.repeat))
            print(f"[bench] {key}: {rows[-1].get('value', rows[-1].get('skipped'))} "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        for sub in Path(tmp).iterdir():
            if (sub / ".harness").is_dir():
                stop_scheduler(sub)
                stop_services(sub / ".harness")
    table = markdown(rows, command, machine)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "latest" if chosen == list(ROWS) else "only-" + "-".join(chosen)  # a partial run keeps latest whole
    (RESULTS / f"{stem}.json").write_text(json.dumps({"command": command, "machine": machine,
                                                     "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2)
                                         + "\n")
    (RESULTS / f"{stem}.md").write_text(table)
    if args.readme and stem == "latest":
        into_readme(table)
    print(table)


if __name__ == "__main__":
    main()
