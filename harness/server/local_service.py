"""The state root's service: the library loaded once, answering the CLI's operations over a Unix socket
(harness.api.local_wire), so that a local command does not pay for SQLAlchemy, the models and a fresh store on
every call. `python -m harness.server.local_service --root R --socket NAME` (the store: HARNESS_DB, in its
environment); harness.client.service starts it on demand, as `run` starts the scheduler.

One process a (state root, store, code, scheduler environment): a file lock beside the socket keeps a second one
out, taken before the library loads. The scheduler runs on a thread of this process when one is needed (the local
executor), under its usual lock, so a warm service starts it at no cost. Each connection is one request, served
on its own thread (at most MAX_CALLERS at once) by a `LocalApi` for the caller's settings on the shared store.

The gate, in order: the caller is a process of this service's OS account in this service's user and mount
namespaces (so never a sandboxed run, whose nobody maps to our uid); its request line is at most MAX_REQUEST
bytes and arrives within REQUEST_SECONDS; the operation is declared, the arguments are exactly declared ones of
their declared types and bounds, and the settings are a Settings of the right shapes, naming this root and store.
The service leaves after `service_idle_exit` seconds without a request or a scheduler, or when its state root or
socket goes (after its scheduler has finished). Nothing here decides anything the in-process library would not:
it is the same LocalApi.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import socket
import threading
import time
import traceback

from harness.api import OPERATIONS, Kind
from harness.api import local_wire as wire
from harness.core.errors import PermissionDenied, UserError, storage_error
from harness.core.settings import Settings, forget_store_url, load_settings

log = logging.getLogger("harness.service")
POLL = 1.0  # seconds between looks at idleness, the state root and the socket
REQUEST_SECONDS = 10.0  # a caller sends its whole request line within this, or is hung up on
MAX_CALLERS = 256  # requests served at once; more are told to try again


class Service:
    def __init__(self, settings: Settings, name: str):
        from harness.store import open_store  # the library: loaded here, after main() took the lock
        self.settings, self.name = settings, name
        self.store = open_store(settings.db_url)
        self.uid = os.getuid()
        self.busy, self.schedulers, self.last = 0, 0, time.monotonic()
        self.guard = threading.Lock()
        self.callers = threading.BoundedSemaphore(MAX_CALLERS)

    # -- the scheduler, on a thread of this process ---------------------------------------------------------
    def host_scheduler(self, lock) -> None:
        """Serve this root's runs on a thread (harness.scheduler.lease.host_schedulers): a warm service starts a
        scheduler at no cost, where a new `python -m harness.scheduler` loads the library again."""
        with self.guard:
            self.schedulers += 1
        threading.Thread(target=self._scheduler, args=(lock,), name="scheduler", daemon=True).start()

    def _scheduler(self, lock) -> None:
        from harness.scheduler.daemon import serve
        try:
            serve(load_settings(root=self.settings.root, db=self.settings.db_url, user="scheduler"), lock)
        except Exception:  # noqa: BLE001 - the next command starts another; the service stays
            log.error("scheduler failed: %s", traceback.format_exc())
        finally:
            lock.release()  # (a no-op when serve handed it back)
            with self.guard:
                self.schedulers -= 1
                self.last = time.monotonic()

    # -- one connection -------------------------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> None:
        try:
            self._handle(conn)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the caller left (Ctrl-C on `logs -f`), or never asked
        except Exception:  # noqa: BLE001 - one bad request must not stop the service for the next
            log.error("request failed: %s", traceback.format_exc())
        finally:
            conn.close()
            self.callers.release()
            with self.guard:
                self.busy -= 1
                self.last = time.monotonic()

    def _handle(self, conn: socket.socket) -> None:
        pid, uid = wire.peer(conn)
        if uid != self.uid or not wire.same_namespaces(pid):
            wire.send_line(conn, wire.error_reply(PermissionDenied("this service answers its own account's "
                                                                   "commands only (not a sandboxed run)")))
            return
        try:
            line = wire.read_request(conn, wire.MAX_REQUEST, REQUEST_SECONDS)
        except UserError as exc:
            wire.send_line(conn, wire.error_reply(exc))
            return
        conn.settimeout(None)  # the answer may take long (a waiting submit, `logs -f`)
        notes: list[str] = []
        try:
            op, api, values = self._parse(line)
            if op.notes:
                values["note"] = notes.append
            if op.progress:
                values["progress"] = _progress_to(conn)
            got = getattr(api, op.name)(**values)
        except Exception as exc:  # noqa: BLE001 - answered as the in-process CLI would word it
            wire.send_line(conn, wire.error_reply(self._worded(exc)))
            return
        if op.kind is not Kind.STREAM:
            conn.sendall(wire.encode({"result": got, "notes": notes}))
            return
        conn.sendall(wire.encode({"stream": True}))
        try:
            for chunk in got:
                conn.sendall(chunk)
        finally:
            close = getattr(got, "close", None)
            if close is not None:
                close()

    def _parse(self, line: bytes):
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):
            raise UserError("request: not one JSON line") from None
        if not isinstance(request, dict) or not isinstance(request.get("op"), str) \
                or not isinstance(request.get("args"), dict):
            raise UserError("request: expected {\"op\": NAME, \"args\": {...}, \"settings\": {...}}")
        op = OPERATIONS[request["op"]]  # an unknown name: UserError with a "did you mean"
        settings = Settings.from_wire(request.get("settings"), like=self.settings)
        if settings.root != self.settings.root or settings.db_url != self.settings.db_url:
            raise UserError(f"request: this service serves {self.settings.root} ({self.settings.db_url}) only")
        args, declared = request["args"], {a.name: a for a in op.args}
        unknown = sorted(set(args) - set(declared))
        if unknown:
            raise UserError(f"{op.name}: unknown arguments {unknown}")
        for name, value in args.items():
            declared[name].check(value, op.name)
        values = op.bind((), args)
        values.pop("note", None)
        values.pop("progress", None)
        from harness.scheduler.lease import recover_if_orphaned
        from harness.service.local import LocalApi
        from harness.state import Harness
        recover_if_orphaned(settings, self.store)  # as every in-process command does on opening the store
        return op, LocalApi(Harness(settings, store=self.store)), values

    def _worded(self, exc: Exception) -> UserError:
        if isinstance(exc, UserError):
            return exc
        worded = storage_error(exc, self.settings.db_url)
        if worded is not None:
            return worded
        log.error("operation failed: %s", traceback.format_exc())
        return UserError(f"the service failed on this request ({type(exc).__name__}); its log: "
                         f"{self.settings.state_dir / 'service.log'}")

    # -- the process ----------------------------------------------------------------------------------------
    def serve(self, listener: socket.socket, path: str, inode: int) -> None:
        listener.settimeout(POLL)
        while not self._should_leave(path, inode):
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:  # out of descriptors, say: wait, and serve the ones already in
                log.warning("accept failed: %s", exc)
                time.sleep(POLL)
                continue
            if not self.callers.acquire(blocking=False):
                try:
                    wire.send_line(conn, wire.error_reply(UserError("the state root's service is busy; try again")))
                except OSError:
                    pass
                conn.close()
                continue
            with self.guard:
                self.busy += 1
            try:
                threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
            except RuntimeError:  # no thread to be had
                self.handle(conn)
        listener.close()  # no new caller; wait for the scheduler's runs and the callers already in
        while True:
            with self.guard:
                if self.busy == 0 and self.schedulers == 0:
                    return
            time.sleep(POLL)

    def _should_leave(self, path: str, inode: int) -> bool:
        try:
            if os.stat(path).st_ino != inode:
                log.info("socket replaced: leaving once the scheduler is done")
                return True
        except FileNotFoundError:
            log.info("socket or state root removed: leaving once the scheduler is done")
            return True
        with self.guard:
            idle = self.busy == 0 and self.schedulers == 0 and \
                time.monotonic() - self.last >= self.settings.service_idle_exit
        if idle:
            log.info("idle for %.0f s: leaving", self.settings.service_idle_exit)
        return idle


def _progress_to(conn: socket.socket):
    """A progress reporter (harness.core.progress) that sends each call to the caller as a line before the
    answer; a caller that has gone does not stop the operation."""
    def report(done: int, total: int | None = None, note: str = "") -> None:
        try:
            conn.sendall(wire.encode({"progress": [int(done), None if total is None else int(total), str(note)]}))
        except OSError:
            pass
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="harness-service")
    parser.add_argument("--root", required=True)
    parser.add_argument("--db", default=None, help="the store (default: HARNESS_DB, as its starter gives it)")
    parser.add_argument("--socket", required=True, help="the socket's file name in ROOT/.harness")
    args = parser.parse_args(argv)
    if "/" in args.socket or not args.socket.endswith(".sock"):
        parser.error("--socket: a file name ending in .sock")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = load_settings(root=args.root, db=args.db, user="service")
    forget_store_url()  # (its evaluators and tools inherit its environment)
    settings.ensure_dirs()
    folder = os.open(settings.state_dir, os.O_RDONLY | os.O_DIRECTORY)
    lock_fd = os.open(f"/proc/self/fd/{folder}/{args.socket}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another service answers this socket (its client starts one again if that one was leaving)
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)  # who serves it (harness.client.service.stop_services)
    path = f"/proc/self/fd/{folder}/{args.socket}"
    service = Service(settings, args.socket)  # the library and the store, loaded before the first caller waits
    try:
        os.unlink(path)  # a dead service's socket (we hold the lock: no live one answers it)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket: its owner only (before any other thread exists: umask is per process)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(64)
    inode = os.stat(path).st_ino
    log.info("serving %s on %s", settings.root, args.socket)
    from harness.scheduler.lease import ensure_running, host_schedulers
    host_schedulers(service.host_scheduler)
    ensure_running(settings)  # recovers the root's runs; the next command likely queues one (idle, it leaves)
    try:
        service.serve(listener, path, inode)
    finally:
        listener.close()
        try:
            if os.stat(path).st_ino == inode:  # ours still (not a newer service's)
                os.unlink(path)
        except FileNotFoundError:
            pass
        service.store.close()


if __name__ == "__main__":
    main()
