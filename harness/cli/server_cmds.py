"""serve (the HTTP API of a state root) and user add / ls / disable / token reset (accounts of a server)."""
from __future__ import annotations

import click

from . import action_command, main, pass_harness, table_command
from .output import answer, json_flag


@main.command("serve")
@click.option("--root", "serve_root", type=click.Path(file_okay=False), default=None,
              help="State root to serve (default: the global --root, env HARNESS_HOME, or the current folder).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (loopback unless you say otherwise; put TLS in front: docs/operator/shared.md).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info")
@click.option("--forwarded-allow-ips", default="", metavar="IPS",
              help="Proxies (comma-separated addresses) whose X-Forwarded-For names the client; they must overwrite "
                   "it. Default: none, a client is its connection's address.")
@click.option("--server-timing", is_flag=True,
              help="Add Server-Timing (the time spent serving it) to every answer, for benchmarks. It lets any "
                   "caller time the server's work, so it is off by default.")
@pass_harness
def serve_cmd(lazy, serve_root, host, port, log_level, forwarded_allow_ips, server_timing):
    """Serve this state root over HTTP (/api/v1, OpenAPI at /api/v1/openapi.json) with its scheduler."""
    from harness.core.settings import load_settings
    from harness.server.app import body_cap, create_app
    from harness.server.connections import serve

    root, db, user = lazy._args
    settings = load_settings(root=serve_root or root, db=db, user=user)
    app = create_app(settings, server_timing)
    click.echo(f"Serving {settings.root} on http://{host}:{port} (API /api/v1)", err=True)
    serve(app, host, port, log_level, body_cap(settings), forwarded_allow_ips)


@main.group("user")
def user_group():
    """[organizer] Accounts of a shared server: who may log in, with which token."""


@user_group.command("add")
@click.argument("name")
@click.option("--organizer", is_flag=True, help="May run organizer commands and act on everyone's work.")
@click.option("--team", default=None, help="Join team CONTEST/TEAM (TEAM alone: of the only contest).")
@json_flag
@pass_harness
def user_add(lazy, name, organizer, team, as_json):
    """Add an account; its token is shown once (give it to NAME for 'nsml login')."""
    token = lazy.api().add_user(name, organizer, team)
    answer({"user": name, "token": token}, as_json, lambda got: click.echo(
        f"User {name} is added" + (" (organizer)" if organizer else "") + (f", in team {team}" if team else "")
        + f"\nToken (shown once): {token}"))


table_command(user_group, "ls", lambda api: api.list_users(),
              [("user", "User"), ("organizer", "Organizer"), ("disabled", "Disabled"), ("token_set", "Token set"),
               ("created_by", "Added by")], "no accounts", "Accounts of this server, and whether each may log in.")


action_command(user_group, "disable", "name", lambda api, name: api.disable_user(name), "User {} is disabled",
               "Stop NAME's token at once (sessions and submissions stay; 'user token reset' enables again).")


@user_group.group("token")
def token_group():
    """Tokens."""


@token_group.command("reset")
@click.argument("name")
@json_flag
@pass_harness
def token_reset(lazy, name, as_json):
    """A new token for NAME (the old one stops working); shown once."""
    token = lazy.api().reset_token(name)
    answer({"user": name, "token": token}, as_json,
           lambda got: click.echo(f"Token of {name} is reset\nToken (shown once): {token}"))
