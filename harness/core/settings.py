"""Every setting the harness reads, from one place.

Order of precedence: explicit arguments (CLI flags) > environment variables > ``harness.toml`` in the state
root > defaults.  No other module reads ``os.environ`` for configuration."""
from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from . import setting_values
from .errors import UserError
from .names import check_name
from .setting_values import SETTINGS_FILE
from .setting_values import choice as _choice
from .setting_values import gpu_models as _gpu_models
from .setting_values import integer as _int
from .setting_values import plugins as _plugins
from .setting_values import seconds as _seconds
from .state_root import DEFAULT_DB_FILE, STATE_DIR, find_root, is_state_root, mark_state_folder

ENV_HOME = "HARNESS_HOME"
ENV_DB = "HARNESS_DB"
ENV_USER = "HARNESS_USER"
ENV_GPUS = "HARNESS_GPUS"
ENV_RUNTIME = "HARNESS_RUNTIME"
ENV_HF_CACHE = "HARNESS_HF_CACHE"
ENV_SERVICE = "HARNESS_SERVICE"
ENV_ERA_DIR = "HARNESS_ERA_DIR"  # where era environments are built (shared by every state root of the machine)
SERVICE_MODES = ("socket", "inprocess")  # how local commands reach the library: the state root's service, or here
SANDBOXES = ("auto", "bwrap", "none")
EXECUTORS = ("local", "ray")  # where runs are placed: this machine, or a Ray cluster (harness.runtime.ray_executor)


def _in_state(name: str, doc: str | None = None) -> property:
    """A path NAME in the state root's .harness folder, as a read-only property of Settings."""
    return property(lambda self: self.state_dir / name, doc=doc or f"ROOT/{STATE_DIR}/{name}")


@dataclass
class Settings:
    root: Path
    db_url: str
    user: str
    declared_gpus: int | None = None  # None: ask the driver (nvidia-ml-py)
    declared_gpu_models: list[str] = field(default_factory=list)  # by device index, when declared by model
    max_concurrent_runs: int = 8
    scheduler_tick: float = 0.5  # limits, heartbeats and events are looked at this often; ends and new work wake it
    scheduler_idle_exit: float = 10.0  # an idle scheduler stays this long (the next command finds it warm)
    private_hold: float | None = None  # up past a round submit's report, at least (None: grade.private_half_seconds)
    private_at_close: bool = False  # a round's private halves are scored once it has ended (lease.private_due_now)
    default_session_time_limit: float = 6 * 3600
    default_submit_time_limit: float = 3600
    scorer_time_limit: float = 300
    kill_grace: float = 3.0
    max_log_bytes: int = 256 * 1024 * 1024
    extra_task_paths: list[Path] = field(default_factory=list)
    runtime: str = "process"  # process | docker | auto
    runtime_choices: list[str] = field(default_factory=list)  # what a participant's --runtime may name besides it
    remote: bool = False  # the caller reached the service over HTTP (`harness serve`: service.accounts.for_identity)
    organizers: list[str] = field(default_factory=list)  # see harness.service.permissions (absent: the OS account)
    docker_image: str = "nsml-harness/session:latest"  # the default session image (built from ./Dockerfile)
    docker_images: list[str] = field(default_factory=list)  # [docker] images: what `#nsml:` may name (runtime.images)
    docker_user: str = "65534:65534"  # participant code never runs as root in a container
    docker_pids_limit: int = 512
    pids_limit: int = 512  # limits.pids: processes and threads of one run (process runtime; docker's default)
    docker_file_bytes: int = 4 << 30  # largest file a container may write (RLIMIT_FSIZE)
    hf_cache: Path | None = None  # a local Hugging Face cache, mounted read-only with offline mode set
    lease_seconds: float = 60.0  # a running run's heartbeat older than this: its scheduler is hung or gone
    max_queued_per_user: int = 50  # queued runs (sessions and submits) one user may have waiting
    max_running_per_user: int | None = None  # runs one user may have running at once (None: no cap; fair_share)
    checkpoint_bytes: int = 20 << 30  # disk one session's checkpoints may use (measured, see disk_limits)
    scratch_bytes: int = 20 << 30  # disk a run may write besides checkpoints: code copy, /tmp, output, events
    user_storage_bytes: int | None = 200 << 30  # disk all of one user's sessions may hold together (0: no limit)
    code_bytes: int = 1 << 30  # largest code snapshot `run` takes
    env_bytes: int | None = 10 << 30  # disk one environment built for a session's requirements may take (0: none)
    env_build_seconds: float = 1200.0  # longest such a build may take (runtime.env_store)
    env_index_hosts: list[str] = field(default_factory=list)  # "host:port" a build may reach besides its index
    prediction_bytes: int = 1 << 30  # largest prediction file the harness copies out of a submit run
    process_sandbox: str = "auto"  # auto | bwrap | none: how the process runtime confines participant code
    evaluator_isolation: str | None = None  # bwrap | docker: a 2019 fixed-path evaluator's (None: bwrap, or docker)
    scorer_memory_bytes: int = 4 << 30  # address space of evaluation.py
    run_memory_bytes: int | None = None  # a run's memory when its task does not say (None: runs.create.run_memory)
    runtime_plugins: dict[str, str] = field(default_factory=dict)  # [runtimes] NAME = "module:Class"
    executor: str = "local"  # [cluster] executor: "local" (this machine) or "ray" (a Ray cluster places runs)
    cluster_address: str = "auto"  # [cluster] address: "auto" (the cluster `ray start` made here) or "HOST:6379"
    service: str = "socket"  # HARNESS_SERVICE: "socket" (the state root's service, harness.server.local_service)
    #                          or "inprocess" (this process loads the library: tests, debugging)
    service_idle_exit: float = 300.0  # an idle local service stays this long ([scheduler] service_idle_exit_seconds)
    root_found: bool = True  # False: no --root or HARNESS_HOME, and no state root here or above (the CLI's gate)

    def to_wire(self) -> dict:
        """These settings as JSON (what the CLI sends its state root's service with each request)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(root=str(self.root), hf_cache=None if self.hf_cache is None else str(self.hf_cache),
                    extra_task_paths=[str(p) for p in self.extra_task_paths])
        return data

    @classmethod
    def from_wire(cls, data, like: "Settings") -> "Settings":
        """The settings `to_wire` wrote, each field of the type LIKE's has (the receiver's own settings), the user
        a valid name; anything else is a UserError (harness.server.local_service's gate)."""
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or set(data) != set(names):
            raise UserError("settings: expected exactly the fields of Settings")
        ref = like.to_wire()
        for name in names:
            if not _same_shape(data[name], ref[name], name in _OPTIONAL, _OPTIONAL.get(name)):
                raise UserError(f"settings: {name}: not of its type")
        check_name(data["user"], "settings: user")  # (as load_settings checks it; organizers are matched, not made)
        settings = cls(**data)
        settings.root = Path(data["root"])
        settings.hf_cache = None if data["hf_cache"] is None else Path(data["hf_cache"])
        settings.extra_task_paths = [Path(p) for p in data["extra_task_paths"]]
        return settings

    @property
    def instance(self) -> str:
        """Labels this harness's containers (one state root = one instance)."""
        import hashlib
        return hashlib.sha256(str(self.root).encode()).hexdigest()[:12]

    @property
    def is_organizer(self) -> bool:
        """The one spelling of the rule (service.permissions checks rights with it; light for the quick reads)."""
        return self.user in self.organizers

    def identity(self) -> dict:
        """Who this caller is, as `whoami` answers for a local state root (the server answers for its accounts)."""
        return {"user": self.user, "organizer": self.is_organizer, "server": None}

    @property
    def must_confine(self) -> bool:
        """The runs this caller asks for run confined or not at all: a participant's over HTTP (runs.create
        records it on each run; the process runtime refuses to start one it cannot confine)."""
        return self.remote and not self.is_organizer

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    # Places in the state folder, each spelled here once.
    sessions_dir = _in_state("sessions")
    runs_dir = _in_state("runs")
    datasets_dir = _in_state("datasets")
    envs_dir = _in_state("envs", "Environments built for sessions' and evaluators' requirements (runtime.env_store)")
    cluster_file = _in_state("cluster.json", "The cluster's inventory as its scheduler last saw it (runtime.gpus)")
    lock_path = _in_state("scheduler.lock")
    scheduler_log = _in_state("scheduler.log")

    def ensure_dirs(self) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # this account's only: every user's sessions,
        st = self.state_dir.stat()  # runs and the service's socket (set so too where an older harness made it)
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            self.state_dir.chmod(0o700)
        for d in (self.sessions_dir, self.runs_dir, self.datasets_dir):
            d.mkdir(parents=True, exist_ok=True)
        mark_state_folder(self.state_dir)


def read_toml(path: Path) -> dict:
    """A TOML file as a dict; a syntax error is a one-line UserError naming the file (a missing file raises
    FileNotFoundError for the caller to word)."""
    import tomllib  # (only where a file is read: a command in a root without one skips ~5 ms)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None


def _read_file(root: Path) -> dict:
    path = root / SETTINGS_FILE
    if not path.exists():
        return {}
    data = read_toml(path)
    from . import schema
    schema.check(data, schema.SETTINGS, str(path))  # unknown keys and wrong types: one line naming the key
    setting_values.private_if_secret(path, data.get("db"), ENV_DB)
    return data


_WIRE_KINDS = {"int": int, "float": (int, float), "str": str, "Path": str}  # a field's type as JSON
_OPTIONAL = {f.name: _WIRE_KINDS[f.type.split(" | ")[0]] for f in fields(Settings)
             if f.type.endswith(" | None")}  # fields that may be None, read from Settings' own annotations


def _same_shape(value, ref, optional: bool, kind: type | None) -> bool:
    """Whether decoded JSON VALUE has the shape of REF (the same field of a real Settings, as JSON)."""
    if value is None:
        return optional
    if ref is None:
        return isinstance(value, kind) and not isinstance(value, bool)
    if isinstance(ref, bool) or isinstance(value, bool):
        return type(value) is type(ref)
    if isinstance(ref, float):
        return isinstance(value, (int, float))
    if isinstance(ref, list):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if isinstance(ref, dict):
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    return type(value) is type(ref)


def _service_mode(value: str | None) -> str:
    if value in (None, ""):
        return "socket"
    if value not in SERVICE_MODES:
        raise UserError(f"{ENV_SERVICE}: expected one of {', '.join(SERVICE_MODES)}, got {value!r}")
    return value






def load_settings(root: str | os.PathLike | None = None, db: str | None = None,
                  user: str | None = None) -> Settings:
    env = os.environ
    given_root = root or env.get(ENV_HOME)
    root_path = Path(given_root).expanduser().resolve() if given_root else find_root(Path.cwd().resolve())
    cfg = _read_file(root_path)
    db_url = _absolute_sqlite(db or env.get(ENV_DB) or cfg.get("db") or f"sqlite:///{root_path / DEFAULT_DB_FILE}")
    given = user if user is not None else env.get(ENV_USER)
    name = check_name(str(given if given is not None else cfg.get("user") or getpass.getuser()), "--user")
    gpus = env.get(ENV_GPUS)
    gpu_models: list[str] = []
    if gpus is not None:
        declared = _int(gpus, ENV_GPUS)
    elif isinstance(cfg.get("gpus"), list):
        gpu_models = _gpu_models(cfg["gpus"])
        declared = len(gpu_models)
    elif "gpus" in cfg:
        declared = _int(cfg["gpus"], f"{SETTINGS_FILE}: gpus")
    else:
        declared = None
    sched, limits, docker, process = (cfg.get(table, {}) for table in ("scheduler", "limits", "docker", "process"))
    sandbox = _choice(str(process.get("sandbox", "auto")), SANDBOXES, "process.sandbox")
    runtime = env.get(ENV_RUNTIME) or cfg.get("runtime") or "process"
    cluster = cfg.get("cluster", {})
    executor = _choice(cluster.get("executor", "local"), EXECUTORS, "cluster.executor")
    address = str(cluster.get("address", "auto"))
    if address.startswith("ray://"):  # Ray Client: the scheduler must be a driver on the cluster itself
        raise UserError(f"{SETTINGS_FILE}: cluster.address: Ray Client addresses (ray://) are not supported: the "
                        "scheduler joins the cluster as a driver; give the head's GCS address HOST:6379, or \"auto\" "
                        "on a machine that is a node of the cluster")
    hf_cache = env.get(ENV_HF_CACHE) or docker.get("hf_cache")
    return Settings(
        root=root_path,
        root_found=bool(given_root or db or env.get(ENV_DB)) or is_state_root(root_path),
        db_url=db_url,
        user=name,
        declared_gpus=declared,
        declared_gpu_models=gpu_models,
        max_concurrent_runs=_int(sched.get("max_concurrent_runs", 8), "scheduler.max_concurrent_runs") or 1,
        default_session_time_limit=float(limits.get("session_seconds", 6 * 3600)),
        default_submit_time_limit=float(limits.get("submit_seconds", 3600)),
        scorer_time_limit=float(limits.get("scorer_seconds", 300)),
        max_log_bytes=_int(limits.get("log_bytes", 256 * 1024 * 1024), "limits.log_bytes"),
        extra_task_paths=[root_path / Path(p).expanduser() for p in cfg.get("task_paths", [])],  # relative: to root
        runtime=str(runtime),
        organizers=[str(u) for u in cfg.get("organizers", [getpass.getuser()])],
        runtime_choices=[str(r) for r in cfg.get("runtime_choices", [])],
        docker_image=str(docker.get("image", "nsml-harness/session:latest")),
        docker_images=[str(p) for p in docker.get("images", [])],
        docker_user=str(docker.get("user", "65534:65534")),
        docker_pids_limit=_int(docker.get("pids_limit", limits.get("pids", 512)), "docker.pids_limit"),
        pids_limit=_int(limits.get("pids", 512), "limits.pids"),
        docker_file_bytes=_int(docker.get("file_bytes", 4 << 30), "docker.file_bytes"),
        hf_cache=Path(hf_cache).expanduser().resolve() if hf_cache else None,
        lease_seconds=float(sched.get("lease_seconds", 60)),
        scheduler_tick=_seconds(sched.get("tick_seconds", 0.5), "scheduler.tick_seconds"),
        scheduler_idle_exit=_seconds(sched.get("idle_exit_seconds", 10), "scheduler.idle_exit_seconds"),
        private_hold=_seconds(sched["private_hold_seconds"], "scheduler.private_hold_seconds")
        if "private_hold_seconds" in sched else None, private_at_close=sched.get("private_halves_at_close", False),
        max_queued_per_user=_int(limits.get("queued_per_user", 50), "limits.queued_per_user"),
        max_running_per_user=_int(limits.get("running_per_user", 0), "limits.running_per_user") or None,
        checkpoint_bytes=_int(limits.get("checkpoint_bytes", 20 << 30), "limits.checkpoint_bytes"),
        scratch_bytes=_int(limits.get("scratch_bytes", 20 << 30), "limits.scratch_bytes"),
        user_storage_bytes=_int(limits.get("user_storage_bytes", 200 << 30), "limits.user_storage_bytes") or None,
        code_bytes=_int(limits.get("code_bytes", 1 << 30), "limits.code_bytes"),
        env_bytes=_int(limits.get("env_bytes", 10 << 30), "limits.env_bytes") or None,
        env_build_seconds=_seconds(limits.get("env_build_seconds", 1200), "limits.env_build_seconds"),
        env_index_hosts=setting_values.hosts(limits.get("env_index_hosts", []), "limits.env_index_hosts"),
        prediction_bytes=_int(limits.get("prediction_bytes", 1 << 30), "limits.prediction_bytes"),
        process_sandbox=sandbox,
        evaluator_isolation=_choice(cfg.get("evaluator_isolation"), ("bwrap", "docker"), "evaluator_isolation"),
        scorer_memory_bytes=_int(limits.get("scorer_memory_bytes", 4 << 30), "limits.scorer_memory_bytes"),
        run_memory_bytes=_int(limits.get("run_memory_bytes", 0), "limits.run_memory_bytes") or None,
        runtime_plugins=_plugins(cfg.get("runtimes", {})),
        executor=executor,
        cluster_address=address,
        service=_service_mode(env.get(ENV_SERVICE)),
        service_idle_exit=_seconds(sched.get("service_idle_exit_seconds", 300),
                                   "scheduler.service_idle_exit_seconds"),
    )


def _absolute_sqlite(url: str) -> str:
    """A relative SQLite path made absolute where it was given (the service and scheduler run in the state folder)."""
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else "/"
    return url if path.startswith(("/", ":")) or not path else "sqlite:///" + str(Path(path).resolve())


def era_dir() -> Path:
    """Where era environments are built and kept (harness.runtime.eras): $HARNESS_ERA_DIR, else the user's cache."""
    given = os.environ.get(ENV_ERA_DIR)
    return Path(given).expanduser().resolve() if given else Path.home() / ".cache" / "nsml-harness" / "eras"


def terminal_columns() -> int:
    """The width tables are drawn to: $COLUMNS, else the terminal's, else (a pipe, a file) 100."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size(1).columns or 100
    except OSError:
        return 100


def python_module(module: str) -> list[str]:
    """The command that starts one of the harness's own processes (`python -m MODULE`) without the caller's
    working folder on its import path (-P): a `difflib.py` where the user ran a command must not be imported by
    the service or the scheduler. Start it with cwd= the state folder too."""
    return [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-m", module]


def inherited_environment(db_url: str | None = None) -> dict[str, str]:
    """The environment processes started by the harness inherit (the runtimes filter it further). DB_URL: the store
    of one of the harness's own processes: here, never on its command line, which /proc shows to every account."""
    return {**os.environ, **({ENV_DB: db_url} if db_url else {})}


def forget_store_url() -> None:
    """Once read: out of this process's environment, which its evaluators and tools inherit."""
    os.environ.pop(ENV_DB, None)


ENV_SERVER, ENV_TOKEN, ENV_CONFIG = "HARNESS_SERVER", "HARNESS_TOKEN", "HARNESS_CONFIG_DIR"
CREDENTIALS_FILE = "credentials.json"


@dataclass
class Login:
    """Where the CLI sends commands while logged in (`nsml login URL`), and with which token."""

    url: str
    token: str


def config_dir() -> Path:
    """The user's config folder for the CLI's logins (HARNESS_CONFIG_DIR, else $XDG_CONFIG_HOME/nsml-harness)."""
    env = os.environ
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser() / "nsml-harness"


def read_logins() -> dict:
    """{"current": URL or None, "servers": {URL: token}}; a damaged file is a one-line error naming it."""
    import json
    path = config_dir() / CREDENTIALS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"current": None, "servers": {}}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the saved logins ({exc}); remove it and log in again") from None
    if not isinstance(data, dict) or not isinstance(data.get("servers"), dict):
        raise UserError(f"{path}: not a logins file; remove it and log in again")
    return data


def write_logins(data: dict) -> Path:
    """Written atomically with mode 0600 (it holds tokens) in a 0700 folder."""
    import json

    from .safefs import write_whole
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / CREDENTIALS_FILE
    write_whole(path, json.dumps(data, indent=1), 0o600)
    return path


def current_login() -> Login | None:
    """The server the CLI talks to: HARNESS_SERVER + HARNESS_TOKEN, else the saved current login; None: local."""
    env = os.environ
    if env.get(ENV_SERVER):
        return Login(env[ENV_SERVER].rstrip("/"), env.get(ENV_TOKEN, ""))
    if env.get(ENV_TOKEN):  # alone it names no server: neither sent to whichever is saved, nor silently ignored
        raise UserError(f"{ENV_TOKEN} is set without {ENV_SERVER}: set both (the token goes only to the server "
                        f"named with it), or unset it")
    data = read_logins()
    url = data.get("current")
    if url and url in data["servers"]:
        return Login(url, data["servers"][url])
    return None
