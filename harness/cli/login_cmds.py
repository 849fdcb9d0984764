"""login, logout, whoami: the CLI against a shared server (`harness serve`) instead of a local state root."""
from __future__ import annotations

import sys

import click

from harness.core.errors import Unauthorized, UserError

from . import main, pass_harness
from .output import emit_json, json_flag


@main.command("login")
@click.argument("url")
@click.option("--token-stdin", is_flag=True, help="Read the token from standard input (for scripts).")
def login_cmd(url, token_stdin):
    """Log in to the server at URL: every command then runs there, as your account."""
    from harness.client import RemoteApi
    from harness.core.settings import read_logins, write_logins

    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"URL: {url!r} is not an http(s) URL")
    piped = token_stdin or not sys.stdin.isatty()  # a piped token is read as it is: no prompt, no getpass warning
    token = sys.stdin.readline().strip() if piped else click.prompt("Token", hide_input=True).strip()
    if not token:
        raise UserError("token: none given (type it at the prompt, or pipe it with --token-stdin)")
    api = RemoteApi(url, token)
    try:
        who = api.whoami()
    except Unauthorized:
        raise UserError(f"token: {url} does not accept it (a token is shown once, by `user add` or `user token "
                        f"reset`: ask the server's organizer)") from None
    finally:
        api.close()
    data = read_logins()
    data["servers"][url] = token
    data["current"] = url
    path = write_logins(data)
    click.echo(f"Logged in to {url} as {who['user']}" + (" (organizer)" if who["organizer"] else "")
               + f"; token saved in {path}")


@main.command("logout")
@click.option("--all", "all_", is_flag=True, help="Forget every saved server.")
def logout_cmd(all_):
    """Forget the current server's token; commands run locally again."""
    from harness.core.settings import read_logins, write_logins

    data = read_logins()
    url = data.get("current")
    if all_:
        data = {"current": None, "servers": {}}
    elif url:
        data["servers"].pop(url, None)
        data["current"] = None
    write_logins(data)
    click.echo(f"Logged out of {url}" if url or all_ else "not logged in")


@main.command("whoami")
@json_flag
@pass_harness
def whoami_cmd(lazy, as_json):
    """Who you are: your account on the server you are logged in to, or the local user."""
    settings = None if lazy.login() else lazy.settings()
    if settings is not None and not settings.root_found:  # who you are needs no store: none is made here
        who = settings.identity()
    else:
        who = lazy.api().whoami()
    if as_json:
        emit_json(who)
        return
    where = f"on {who['server']}" if who.get("server") else f"(local, {lazy.settings().root}" + \
        ("" if lazy.settings().root_found else ": no state root here yet") + ")"
    click.echo(f"{who['user']} {where}" + (" — organizer" if who["organizer"] else ""))
