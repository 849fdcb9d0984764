"""Fake runtimes that break the scheduler on purpose, for the reliability tests (the httpx MockTransport habit:
faults live in test code, registered through harness.toml's [runtimes], never as strings in the scheduler).

The scheduler loads them by "faults:CLASS", so the tests put this folder on its PYTHONPATH (see
test_reliability._fault). Each fault fires once per run (a marker in the run folder), so the scheduler that
recovers the run carries it on normally.
"""
import os
import time

from harness.runtime.process import ProcessHandle, ProcessRuntime


def _first_time(spec, what: str) -> bool:
    marker = spec.paths.run / f"fault-{what}"
    if marker.exists():
        return False
    marker.write_text("fired")
    return True


class DieBeforeStart(ProcessRuntime):
    """The scheduler dies between marking a run as launching and starting its code."""

    def start(self, spec):
        if _first_time(spec, "die-before-start"):
            os._exit(9)
        return super().start(spec)


class _DieOnClose(ProcessHandle):
    def close(self) -> None:  # called right after the end (for a submit: the scoring phase) is committed
        if _first_time(self.spec, "die-on-close"):
            os._exit(9)
        super().close()


class DieWhileScoring(ProcessRuntime):
    """The scheduler dies after a submit's inference has ended, before its score is stored."""

    handle_class = _DieOnClose


class _Hang(ProcessHandle):
    def poll(self):
        time.sleep(10 ** 6)  # the scheduler's loop stops here: no heartbeat is renewed again


class Hang(ProcessRuntime):
    """The scheduler hangs while watching a run (it stops renewing heartbeats)."""

    handle_class = _Hang
