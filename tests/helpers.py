"""What the tests share besides fixtures: the CLI runner, the tiny task, participant folders, sessions."""
import getpass
import json
import textwrap
from pathlib import Path

from click.testing import CliRunner

from harness.cli import main

REPO = Path(__file__).resolve().parent.parent
ORGANIZER = getpass.getuser()  # with no 'organizers' in harness.toml, the OS account is the organizer


class Cli:
    url = None  # a RemoteCli's server

    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args, code=0, user=None):
        argv = (["--user", user] if user else []) + [str(a) for a in args]
        result = self.runner.invoke(main, argv, catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, f"{argv} -> {result.exit_code}\n{result.output}"
        return result

    def json(self, *args, **kw):
        return json.loads(self(*args, "-j", **kw).stdout)


TINY_LOADER = '''
import os
from nsml import DATASET_PATH

def feed_infer(output_file, infer_func):
    preds = infer_func(os.path.join(DATASET_PATH, "test", "test_data"))
    with open(output_file, "w") as fh:
        fh.write("\\n".join(str(p) for p in preds) + "\\n")
'''


TINY_EVAL = '''
import argparse, math, sys
p = argparse.ArgumentParser()
p.add_argument("--prediction"); p.add_argument("--test_label_path")
a = p.parse_args()
labels = open(a.test_label_path).read().split()
preds = open(a.prediction).read().split()
if len(preds) != len(labels):
    print(f"invalid prediction: expected {len(labels)} values, got {len(preds)}", file=sys.stderr); sys.exit(2)
if preds and preds[0] == "nan":
    print(float("nan")); sys.exit(0)
if preds and preds[0] == "crash":
    raise RuntimeError("evaluator bug")
print(sum(p == l for p, l in zip(preds, labels)) / len(labels))
'''


def make_tiny_task(folder: Path, name="tiny", direction="higher", quota=1) -> Path:
    """A task pack in NSML layout: label = 1 when the number is > 50."""
    (folder / "train" / "train_data").mkdir(parents=True)
    (folder / "test").mkdir()
    (folder / "test_submit").mkdir()
    train = list(range(0, 100, 3))
    test = list(range(1, 100, 7))
    (folder / "train" / "train_data" / "numbers").write_text("\n".join(map(str, train)))
    (folder / "train" / "train_label").write_text("\n".join(str(int(x > 50)) for x in train))
    (folder / "test" / "test_data").write_text("\n".join(map(str, test)))
    (folder / "test" / "test_label").write_text("\n".join(str(int(x > 50)) for x in test))
    (folder / "test_submit" / "test_data").write_text("10\n90\n")
    (folder / "test_submit" / "test_label").write_text("0\n1\n")
    (folder / "data_loader.py").write_text(TINY_LOADER)
    (folder / "evaluation.py").write_text(TINY_EVAL)
    (folder / "task.toml").write_text(textwrap.dedent(f"""
        name = "{name}"
        metric = "accuracy"
        direction = "{direction}"
        [submit]
        quota = {quota}
        period_seconds = 3600
    """))
    return folder


# An NSML participant folder as real submissions write it (not one of ours): reserved flags, positional bind,
# save(epoch), report, paused.


NSML_MAIN = '''
import argparse, json, os, sys
import nsml
from nsml import DATASET_PATH

def bind_model(state, cfg):
    def save(dir_name, *args, **kwargs):
        os.makedirs(dir_name, exist_ok=True)
        with open(os.path.join(dir_name, "model.json"), "w") as f:
            json.dump(state, f)
    def load(dir_name, *args, **kwargs):
        with open(os.path.join(dir_name, "model.json")) as f:
            state.update(json.load(f))
        print("loaded", dir_name, state)
    def infer(path, **kwargs):
        if cfg.peek:
            leak = os.path.exists(os.path.join(DATASET_PATH, "test", "test_label"))
            print("label visible:", leak)
        return [int(int(x) > state["threshold"]) for x in open(path).read().split()]
    nsml.bind(save, load, infer)

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="train")
    p.add_argument("--pause", type=int, default=0)
    p.add_argument("--iteration", default="0")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threshold", type=int, default=50)
    p.add_argument("--sleep", type=float, default=0)
    p.add_argument("--peek", type=int, default=0)
    cfg = p.parse_args()
    state = {"threshold": cfg.threshold, "epochs_done": 0}
    bind_model(state, cfg)
    if cfg.pause:
        nsml.paused(scope=locals())
    if cfg.mode == "train":
        print("train files:", sorted(os.listdir(DATASET_PATH)), "gpus:", nsml.GPU_NUM,
              "cuda:", os.environ.get("CUDA_VISIBLE_DEVICES"))
        import time
        for epoch in range(cfg.epochs):
            state["epochs_done"] += 1
            time.sleep(cfg.sleep)
            nsml.report(summary=True, scope=locals(), step=epoch, epoch=epoch, train__loss=1.0 / (epoch + 1))
            nsml.save(epoch)
        print("done training", state)
'''


def participant(folder: Path, main_py: str) -> Path:
    """A participant folder holding one entry file, main.py."""
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(main_py)
    return folder


def run_session(cli, folder, *extra, task="tiny", wait=True, code=0):
    out = cli("run", "-d", task, "-e", "main.py", *extra, folder).stdout
    assert out.startswith("Session ") and out.strip().endswith(" is started"), out
    name = out.split()[1]
    if wait:
        cli("logs", "-f", name, code=code)
    return name


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A real `harness serve` of STATE_ROOT on a free loopback port, in its own process."""

    def __init__(self, state_root: Path, port: int | None = None, extra: tuple[str, ...] = ()):
        import os
        import subprocess
        import sys
        import time

        import httpx
        self.state_root = state_root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HARNESS_HOME": str(state_root)}
        env.pop("HARNESS_SERVER", None)
        self.log = open(state_root.parent / f"serve-{self.port}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--port", str(self.port),
                                      "--log-level", "warning", *extra], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("harness serve did not start: "
                                   + (state_root.parent / f"serve-{self.port}.log").read_text()[-2000:])
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        self.log.close()


def csrf_of(html: str) -> str:
    """The CSRF token of a dashboard page's forms (each form's hidden `csrf` input)."""
    import re
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no csrf field in the page"
    return found.group(1)


def web_login(web, token: str, next: str = "/tasks"):
    """Log an httpx.Client in to the dashboard as a browser does: the login form (it sets the pre-login cookie
    its CSRF token is tied to), then the post; the client then holds the login cookie."""
    r = web.post("/login", data={"token": token, "next": next, "csrf": csrf_of(web.get("/login").text)})
    assert not r.is_error, f"login: {r.status_code} {r.text[-300:]}"
    return r


class RemoteCli(Cli):
    """The same CLI, logged in to a server: `user=NAME` becomes NAME's token (accounts made on first use by the
    organizer, locally on the server's state root), the default user is HARNESS_USER's."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self.local = Cli()
        self.tokens: dict[str, str] = {}

    def token(self, name: str) -> str:
        """NAME's token, its account made on first use as the server host's organizer would (`user add`)."""
        if name not in self.tokens:
            from dataclasses import replace

            from harness.core.settings import load_settings
            from harness.service import accounts
            from harness.state import Harness
            settings = load_settings(user=ORGANIZER)
            h = Harness(replace(settings, organizers=[*settings.organizers, ORGANIZER]))
            try:
                self.tokens[name] = accounts.add_user(h, name, organizer=name == ORGANIZER)
            finally:
                h.store.close()
        return self.tokens[name]

    def __call__(self, *args, code=0, user=None):
        import os
        name = user or os.environ.get("HARNESS_USER") or ORGANIZER
        argv = [str(a) for a in args]
        result = self.runner.invoke(main, argv, catch_exceptions=False,
                                    env={"HARNESS_SERVER": self.url, "HARNESS_TOKEN": self.token(name)})
        if code is not None:
            assert result.exit_code == code, f"remote {argv} as {name} -> {result.exit_code}\n{result.output}"
        return result


def one_round_contest(name: str, teams: dict[str, list[str]], task: str) -> str:
    """A contest.toml of one round of TASK open from 2026 to 2030, with TEAMS."""
    lines = [f'name = "{name}"', "[teams]", *(f"{t} = {members!r}".replace("'", '"') for t, members in teams.items()),
             "[[rounds]]", 'name = "r1"', f'tasks = ["{task}"]', "start = 2026-01-01T00:00:00",
             "end = 2030-01-01T00:00:00", "split_seed = 0"]
    return "\n".join(lines) + "\n"


def end_scheduler(root: Path) -> None:
    """End the scheduler serving state root ROOT, if one is up (the holder of its lock; never this process, whose
    thread may hold it), and wait for it; psutil.TimeoutExpired when it outlives 10 s."""
    import os

    import psutil

    from harness.scheduler.lease import FileLock
    lock = FileLock(root / ".harness" / "scheduler.lock")
    pid = None if lock.is_free() else lock.holder()
    if not pid or pid == os.getpid():
        return
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(10)
    except psutil.NoSuchProcess:
        pass
