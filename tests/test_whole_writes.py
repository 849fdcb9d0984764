"""core.safefs.write_whole: the one home of "write a file a reader sees old or new, never half" (the cluster
file, an environment's stamp and charges, a Ray run's cancel request, a loader probe's verdict, the logins)."""
import os
import stat
import threading

import pytest

from harness.core.safefs import write_whole


@pytest.fixture
def folder(tmp_path):
    made = tmp_path / "w"
    made.mkdir()
    return made


def test_the_file_is_replaced_whole_with_the_mode_asked(folder):
    tmp_path = folder
    path = tmp_path / "f.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_whole(path, "new", 0o600)
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]  # no temporary file left


def test_a_link_planted_where_the_file_goes_is_replaced_never_followed(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("organizer's")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "cancel.json").symlink_to(secret)
    for pid in range(os.getpid() - 2, os.getpid() + 3):  # the names a writer of old would have used
        (folder / f".cancel.json.{pid}.tmp").symlink_to(secret)
    write_whole(folder / "cancel.json", "{}")
    assert secret.read_text() == "organizer's"
    assert not (folder / "cancel.json").is_symlink() and (folder / "cancel.json").read_text() == "{}"


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(folder):
    tmp_path = folder
    (tmp_path / "taken").mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(OSError):
        write_whole(tmp_path / "taken", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    with pytest.raises(UnicodeEncodeError):
        write_whole(tmp_path / "f", "\udcff")  # the text cannot be written at all
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_readers_see_the_old_file_or_the_new_one_never_half(tmp_path):
    path = tmp_path / "cluster.json"
    texts = ["a" * 200_000, "b" * 300_000]
    write_whole(path, texts[0])
    seen, done = set(), threading.Event()

    def read():
        while not done.is_set():
            seen.add(path.read_text())
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            write_whole(path, texts[i % 2])
    finally:
        done.set()
        reader.join()
    assert seen <= set(texts) and seen
