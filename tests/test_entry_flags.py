"""Reserved flags as the entry declares them (issue: AI Rush 2022 entries declare only --mode and --pause)."""
import textwrap

from helpers import NSML_MAIN, participant, run_session

from harness.runtime.entry_flags import scan


def _entry(tmp_path, source, extra=None):
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "main.py").write_text(textwrap.dedent(source))
    for name, text in (extra or {}).items():
        (folder / name).write_text(textwrap.dedent(text))
    return scan(folder, "main.py")


def test_argparse_entry_gets_only_what_it_declares(tmp_path):
    flags = _entry(tmp_path, """
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument('--mode', type=str, default='train')
        p.add_argument("--pause", type=int, default=0)
        p.add_argument("input", nargs="?")
        cfg = p.parse_args()
    """)
    assert flags.style == "argparse" and flags.declared == {"--mode", "--pause"}
    assert flags.reserved("test", True, "3") == ["--mode", "test", "--pause", "1"]
    assert flags.evidence["--pause"] == "main.py:5"


def test_older_checkpoint_name_and_a_parser_in_an_imported_module(tmp_path):
    flags = _entry(tmp_path, "from config import get_args\nargs = get_args()\n", {"config.py": """
        import argparse
        def get_args():
            p = argparse.ArgumentParser()
            for_mode = p.add_argument("--mode", default="train")
            p.add_argument("--pause", type=int, default=0)
            p.add_argument("--checkpoint", default=None)
            return p.parse_args()
    """})
    assert flags.reserved("test", True, "best") == ["--mode", "test", "--pause", "1", "--checkpoint", "best"]


def test_click_fire_and_unknown_parsers(tmp_path):
    click_flags = _entry(tmp_path, """
        import click
        @click.command()
        @click.option("--mode", default="train")
        @click.option("--iteration", default="0")
        def main(mode, iteration): pass
    """)
    assert click_flags.style == "click" and click_flags.reserved("test", True, "1") == \
        ["--mode", "test", "--iteration", "1"]
    (tmp_path / "code").rename(tmp_path / "c1")
    fire_flags = _entry(tmp_path, """
        import fire
        def main(mode="train", pause=0, epochs=3):
            pass
        if __name__ == "__main__":
            fire.Fire(main)
    """)
    assert fire_flags.style == "fire" and fire_flags.reserved("test", True, "1") == ["--mode", "test", "--pause", "1"]
    (tmp_path / "code").rename(tmp_path / "c2")
    none = _entry(tmp_path, "import sys\nprint(sys.argv)\n")
    assert none.declared is None and none.reserved("test", True, "1") == \
        ["--mode", "test", "--pause", "1", "--iteration", "1"]
    (tmp_path / "code").rename(tmp_path / "c3")
    known = _entry(tmp_path, "import argparse\np = argparse.ArgumentParser()\np.add_argument('--lr')\n"
                             "a, rest = p.parse_known_args()\n")
    assert known.declared is None  # it accepts anything


AIRUSH_2022 = NSML_MAIN.replace('''    p.add_argument("--iteration", default="0")\n''', "")


def test_an_entry_without_iteration_is_trained_forked_and_submitted(cli, tiny_task, tmp_path, runtime):
    assert '"--iteration"' not in AIRUSH_2022
    folder = participant(tmp_path / "airush2022", AIRUSH_2022)
    name = run_session(cli, folder, "-a", "--epochs 2")
    result = cli.json("submit", "-t", name, "1")
    assert result["status"] == "succeeded", result
    scored = cli.json("submit", name, "1")
    assert scored["status"] == "succeeded" and scored["score"] is not None
    history = cli.json("history", "tiny")
    assert history[0]["reserved_flags"] == ["--mode", "test", "--pause", "1"]
    child = cli("fork", name, "-c", "1").stdout.split()[1]
    cli("logs", "-f", child)
    assert "loaded" in cli("logs", child).stdout  # paused() loaded checkpoint 1 from the environment
    assert [r for r in cli.json("ps", "-a") if r["name"] == child][0]["reserved_flags"] == ["--mode", "train",
                                                                                             "--pause", "1"]
    assert cli.json("board", "tiny")[0]["score"] == scored["score"]
