"""Wake-ups: the scheduler's doorbell, end markers and the folder watch that waiters sleep on."""
import os
import threading
import time

from harness.core import doorbell


def test_ring_without_a_scheduler_is_harmless(tmp_path):
    assert doorbell.ring(tmp_path) is False  # no FIFO yet
    os.mkfifo(tmp_path / doorbell.DOORBELL)
    assert doorbell.ring(tmp_path) is False  # a FIFO nobody reads: never blocks


def test_the_doorbell_wakes_a_waiting_scheduler(tmp_path):
    bell = doorbell.Doorbell(tmp_path)
    try:
        assert doorbell.wait_readable([bell.fd], 0.05) == []
        threading.Timer(0.1, doorbell.ring, args=(tmp_path,)).start()
        start = time.monotonic()
        assert doorbell.wait_readable([bell.fd], 5) == [bell.fd]
        assert time.monotonic() - start < 2
        bell.drain()
        assert doorbell.wait_readable([bell.fd], 0.05) == []  # drained: no spin
    finally:
        bell.close()


def test_a_planted_non_fifo_doorbell_is_replaced(tmp_path):
    (tmp_path / doorbell.DOORBELL).write_text("not a fifo")
    bell = doorbell.Doorbell(tmp_path)
    try:
        assert doorbell.ring(tmp_path) is True
    finally:
        bell.close()


def test_the_watch_wakes_on_the_end_marker_only_when_asked_for_it(tmp_path):
    with doorbell.FileWatch(tmp_path, names={doorbell.ENDED}) as watch:
        assert watch.fd is not None  # inotify on Linux
        (tmp_path / "log.txt").write_text("growing")
        assert watch.wait(0.2) is False  # another file: no wake for an end-waiter
        threading.Timer(0.1, doorbell.mark_ended, args=(tmp_path,)).start()
        start = time.monotonic()
        assert watch.wait(5) is True
        assert time.monotonic() - start < 2
    with doorbell.FileWatch(tmp_path) as watch:  # logs -f: any change
        threading.Timer(0.1, lambda: (tmp_path / "log.txt").write_text("more")).start()
        assert watch.wait(5) is True


def test_a_new_run_folder_drops_an_old_marker(tmp_path):
    run_dir = tmp_path / "runs" / "7"
    run_dir.mkdir(parents=True)
    doorbell.mark_ended(run_dir)
    doorbell.prepare_run_dir(run_dir)
    assert run_dir.is_dir() and not (run_dir / doorbell.ENDED).exists()


def test_a_planted_end_marker_never_blocks_the_scheduler(tmp_path):
    """Unconfined participant code could plant a FIFO or a link where the end marker goes: writing the marker
    neither blocks on the FIFO nor follows the link."""
    fifo_run, link_run = tmp_path / "1", tmp_path / "2"
    fifo_run.mkdir()
    link_run.mkdir()
    os.mkfifo(fifo_run / doorbell.ENDED)
    (link_run / doorbell.ENDED).symlink_to(tmp_path / "victim")
    start = time.monotonic()
    doorbell.mark_ended(fifo_run)
    doorbell.mark_ended(link_run)
    assert time.monotonic() - start < 1
    assert not (tmp_path / "victim").exists()
