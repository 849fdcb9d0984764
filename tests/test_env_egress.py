"""A confined environment build reaches the package index and nothing else (runtime.egress): not the machine's
loopback services (the harness's API, its database, a Ray cluster), not its networks, not a cloud's metadata
address. The gate between the build and the index reads one bounded request head per connection; whatever a
build sends it, the gate keeps serving and never opens a connection to a host it was not given."""
import http.server
import select
import socket
import socketserver
import sys
import tarfile
import textwrap
import threading
import time

import pytest
from helpers import participant
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from test_docker_runtime import docker_client  # noqa: F401 (a fixture)

from harness.core.errors import UserError
from harness.core.settings import load_settings
from harness.runtime import egress, env_builds, environments, image_builds, images, package_indexes, sandbox


class _Server:
    """An HTTP server on the host's loopback that counts what reaches it (an index, or a service to protect)."""

    def __init__(self, body: bytes = b"index", host: str = "127.0.0.1"):
        self.hits = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        connections = self.connections = []

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True

            def verify_request(self, request, address):
                connections.append(address)  # (every connection, whether or not a request follows)
                return True

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers():
    index, service = _Server(b"the index"), _Server(b"the harness's API")
    yield index, service
    index.close()
    service.close()


def _ask(gate: egress.Gate, head: bytes, timeout: float = 10.0) -> bytes:
    """HEAD sent to GATE's socket as a build's relay would; what comes back until the gate closes."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(timeout)
        conn.connect(str(gate.folder / "s"))
        conn.sendall(head)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        return data


def _get(port: int) -> bytes:
    return (f"GET http://127.0.0.1:{port}/simple/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close"
            f"\r\n\r\n").encode()


needs_bwrap = pytest.mark.skipif(not sandbox.works(), reason="needs bubblewrap (CI installs it)")


@needs_bwrap
def test_a_confined_build_reaches_its_index_and_nothing_else(tmp_path, servers, monkeypatch):
    index, service = servers
    monkeypatch.setenv("UV_INDEX_URL", f"http://127.0.0.1:{index.port}/simple")  # (replaces PyPI)
    monkeypatch.setenv("UV_PUBLISH_TOKEN", "pypi-secret")  # (the operator's: never a build's)
    probe = textwrap.dedent(f"""
        import os, socket, urllib.request
        out = []
        for address in (("127.0.0.1", {service.port}), ("169.254.169.254", 80), ("10.0.0.1", 5432)):
            try:
                socket.create_connection(address, timeout=3).sendall(b"GET / HTTP/1.0\\r\\n\\r\\n"); out.append("open")
            except OSError as e:
                out.append(type(e).__name__)
        for url in ("http://127.0.0.1:{index.port}/simple/", "http://127.0.0.1:{service.port}/",
                    "http://169.254.169.254/latest/meta-data/", "https://pypi.org/simple/six/"):
            try:
                out.append(urllib.request.urlopen(url, timeout=30).read().decode())
            except Exception as e:
                out.append(getattr(e, "code", type(e).__name__))
        try:
            open("{egress.INSIDE}/planted", "w").write("x" * 1000); out.append("wrote")
        except OSError as e:
            out.append(type(e).__name__)
        out.append(sorted(k for k in os.environ if "TOKEN" in k or k.startswith("UV_")))
        open("/tmp/report", "w").write(repr(out))
        raise SystemExit(1)
        """)
    env = tmp_path / "envs" / "k"
    with pytest.raises(UserError) as failed:
        env_builds.bounded_step([sys.executable, "-c", probe], "building", "requirements.txt",
                                env_builds.Bounds(bytes=1 << 30, seconds=120, confined=True), [env], env)
    report = eval((env_builds.tmp_of(env) / "report").read_text())
    assert report[:3] == ["ConnectionRefusedError", "OSError", "OSError"], report  # (its own loopback; no route)
    assert report[3:7] == ["the index", 403, 403, "URLError"], report  # the index only (https: a refused tunnel)
    assert report[7] != "wrote" and report[8] == ["UV_CACHE_DIR", "UV_INDEX_URL", "UV_LINK_MODE"], report
    assert service.connections == [] and index.hits == ["/simple/"]
    said = str(failed.value)
    assert "\n" not in said and f"it tried to reach 127.0.0.1:{service.port}, 169.254.169.254:80, pypi.org:443" in said


SETUP_PY = '''
import socket
from setuptools import setup
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"GET /leak HTTP/1.0\\r\\n\\r\\n")
    seen = "reached the service"
except OSError as e:
    seen = type(e).__name__
open("probe_pkg.py", "w").write(f"SEEN = {{seen!r}}\\n")
setup(name="probe-pkg", version="1.0", py_modules=["probe_pkg"])
'''


@needs_bwrap
def test_a_source_build_runs_confined_and_gets_its_build_tools_through_the_gate(tmp_path, servers, monkeypatch):
    """A real uv source build: a package whose setup.py tries the machine's loopback service while its build
    backend (setuptools) comes from PyPI through the gate, and the package from a local folder uv was given."""
    _, service = servers
    sdists = tmp_path / "sdists"
    (sdists / "probe_pkg-1.0").mkdir(parents=True)
    (sdists / "probe_pkg-1.0" / "setup.py").write_text(SETUP_PY.format(port=service.port))
    (sdists / "probe_pkg-1.0" / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: probe-pkg\nVersion: 1.0\n")
    with tarfile.open(sdists / "probe_pkg-1.0.tar.gz", "w:gz") as tar:
        tar.add(sdists / "probe_pkg-1.0", "probe_pkg-1.0")
    monkeypatch.setenv("UV_FIND_LINKS", str(sdists))  # (a local folder: bound read-only into the build)
    use = environments.Use(bounds=env_builds.Bounds(bytes=2 << 30, seconds=600, owner="alice", confined=True))
    env, _, _ = environments.ensure_files(tmp_path / "envs", {"requirements.txt": "probe-pkg==1.0\n"}, True, use=use)
    built = list(env.glob("lib/python*/site-packages/probe_pkg.py"))
    assert len(built) == 1 and built[0].read_text() == "SEEN = 'ConnectionRefusedError'\n"
    assert service.connections == []


def test_the_gate_passes_only_its_hosts_whatever_a_build_sends(servers):
    index, service = servers
    with egress.Gate(frozenset({("127.0.0.1", index.port)}), {}) as gate:
        assert _ask(gate, _get(index.port)).endswith(b"the index")
        assert _ask(gate, _get(service.port)).startswith(b"HTTP/1.1 403 ")
        assert _ask(gate, f"CONNECT 127.0.0.1:{service.port} HTTP/1.1\r\n\r\n".encode()).startswith(b"HTTP/1.1 403")
        assert _ask(gate, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")  # (not a proxy's form)
        assert _ask(gate, b"GET http://x/" + b"a" * (egress.HEAD_BYTES + 10)).startswith(b"HTTP/1.1 431 ")
        tunnel = _ask(gate, f"CONNECT 127.0.0.1:{index.port} HTTP/1.1\r\n\r\n".encode() + _get(index.port))
        assert tunnel.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.0 200")
        assert gate.refused == [f"127.0.0.1:{service.port}"]
    assert service.connections == [] and not gate.folder.exists()


FIELDS = st.sampled_from(["CONNECT", "GET", "POST", "connect", "GET http://", "HTTP/1.1", "HTTP/1.0", " ", ":",
                          "\r\n", "\r\n\r\n", "127.0.0.1", "localhost", "[::1]", "0x7f.1", "pypi.org", "@", "#",
                          "%00", "\x00", "\xff", "99999", "0", "/", "http://127.0.0.1:{s}/", "127.0.0.1:{s}",
                          "127.0.0.1:{i}", "Host: 127.0.0.1:{s}", "\n", "\r", "X-A: a", " folded", "\t",
                          "GET http://127.0.0.1:{s}/ HTTP/1.1", "HEAD http://127.0.0.1:{i}/ HTTP/1.1"])


@hyp_settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.one_of(st.binary(max_size=400), st.lists(FIELDS, max_size=12).map("".join)))
def test_fuzz_whatever_a_build_sends_the_gate_keeps_serving_and_reaches_only_the_index(servers, head):
    index, service = servers
    if isinstance(head, str):
        head = head.format(s=service.port, i=index.port).encode("utf-8", "surrogateescape")
    with egress.Gate(frozenset({("127.0.0.1", index.port)}), {}) as gate:
        with socket.socket(socket.AF_UNIX) as hostile:
            hostile.settimeout(10)
            hostile.connect(str(gate.folder / "s"))
            hostile.sendall(head)  # (left open, maybe mid-head: it must not stop the next one)
            assert _ask(gate, _get(index.port)).endswith(b"the index")
    assert service.connections == []


def test_idle_connections_wait_their_turn_and_closing_cuts_every_tunnel(servers, monkeypatch):
    index, _ = servers
    monkeypatch.setattr(egress, "HEAD_SECONDS", 0.5)
    with egress.Gate(frozenset({("127.0.0.1", index.port)}), {}) as gate:
        idle = []
        for _ in range(egress.MAX_CONNECTIONS + 8):  # (a build that holds every slot with silence)
            conn = socket.socket(socket.AF_UNIX)
            conn.connect(str(gate.folder / "s"))
            idle.append(conn)
        started = time.monotonic()
        assert _ask(gate, _get(index.port), timeout=30).endswith(b"the index")
        assert time.monotonic() - started < 20
        tunnel = socket.socket(socket.AF_UNIX)
        tunnel.settimeout(10)
        tunnel.connect(str(gate.folder / "s"))
        tunnel.sendall(f"CONNECT 127.0.0.1:{index.port} HTTP/1.1\r\n\r\n".encode())
        assert tunnel.recv(100).startswith(b"HTTP/1.1 200")
    assert tunnel.recv(100) == b""  # (the build ended: its tunnels with it)
    for conn in (*idle, tunnel):
        conn.close()


def test_the_operators_proxy_carries_the_tunnel(servers):
    """Where the harness itself goes out through a proxy, the gate's tunnels do too (CONNECT to that proxy)."""
    index, _ = servers
    asked = []
    proxy = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = proxy.accept()
        asked.append(conn.recv(4096))
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        conn.sendall(conn.recv(4096)[::-1])  # (an "index" behind the proxy: echoes reversed)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    environ = {"HTTPS_PROXY": f"http://127.0.0.1:{proxy.getsockname()[1]}", "NO_PROXY": "localhost"}
    with egress.Gate(frozenset({("pypi.org", 443)}), environ) as gate:
        answer = _ask(gate, b"CONNECT pypi.org:443 HTTP/1.1\r\n\r\nhello")
    proxy.close()
    assert asked and asked[0].startswith(b"CONNECT pypi.org:443 HTTP/1.1\r\n")
    assert answer == b"HTTP/1.1 200 Connection established\r\n\r\nolleh"


def test_the_index_hosts_are_what_uv_was_given(tmp_path, monkeypatch):
    monkeypatch.setattr(package_indexes, "UV_CONFIGS", (tmp_path / "uv.toml",))
    assert package_indexes.index_hosts({}) == {("pypi.org", 443), ("files.pythonhosted.org", 443)}
    assert package_indexes.index_hosts({"UV_EXTRA_INDEX_URL": "https://download.pytorch.org/whl/cpu"}) == {
        ("pypi.org", 443), ("files.pythonhosted.org", 443), ("download.pytorch.org", 443)}
    assert package_indexes.index_hosts({"UV_INDEX_URL": "http://Mirror.local:8080/simple"}) == {("mirror.local", 8080)}
    assert package_indexes.index_hosts({"UV_DEFAULT_INDEX": "https://m/simple"}, ["cdn.m:8443", "files.m"]) == {
        ("m", 443), ("cdn.m", 8443), ("files.m", 443)}
    assert ("x.org", 443) in package_indexes.index_hosts({"UV_INDEX": "inner=https://x.org/simple"})
    (tmp_path / "uv.toml").write_text('[[index]]\nurl = "https://corp.example/simple"\ndefault = true\n')
    assert package_indexes.index_hosts({}) == {("corp.example", 443)}
    given = {"UV_EXTRA_INDEX_URL": "https://x/s", "UV_FIND_LINKS": "/opt/w https://f/l"}
    assert package_indexes.pip_indexes(given) == {
        "PIP_INDEX_URL": "https://corp.example/simple", "PIP_EXTRA_INDEX_URL": "https://x/s",
        "PIP_FIND_LINKS": "https://f/l"}  # (a docker build's pip: the same indexes; local folders are not there)
    (tmp_path / "uv.toml").write_text('index-url = [not toml')
    assert ("pypi.org", 443) in package_indexes.index_hosts({})  # (an unreadable uv.toml adds nothing)


@pytest.mark.parametrize("value", ['["bad host!"]', '["pypi.org:99999"]', '"pypi.org"', "[3]"])
def test_a_bad_index_host_setting_is_one_line_naming_it(tmp_path, value):
    (tmp_path / "harness.toml").write_text(f"[limits]\nenv_index_hosts = {value}\n")
    with pytest.raises(UserError, match=r"harness.toml: (limits.|\[limits\] )env_index_hosts: expected ") as bad:
        load_settings(tmp_path)
    assert "\n" not in str(bad.value)
    (tmp_path / "harness.toml").write_text('[limits]\nenv_index_hosts = ["cdn.example:8443", "files.example"]\n')
    assert env_builds.Bounds.of(load_settings(tmp_path), "alice").reach == ("cdn.example:8443", "files.example")


DOCKER_PROBE = """python3 - <<'PROBE' # {binary}
import os, socket, urllib.request
out = []
for address in (("172.17.0.1", %(service)d), ("169.254.169.254", 80), ("127.0.0.1", %(service)d)):
    try:
        socket.create_connection(address, timeout=3); out.append("open")
    except OSError as e:
        out.append(type(e).__name__)
for url in ("http://127.0.0.1:%(index)d/simple/", "http://172.17.0.1:%(service)d/", "https://pypi.org/simple/"):
    try:
        out.append(urllib.request.urlopen(url, timeout=30).read().decode())
    except Exception as e:
        out.append(getattr(e, "code", type(e).__name__))
out.append(os.environ.get("PIP_INDEX_URL"))
open("/probe.txt", "w").write(repr(out))
PROBE
"""


def _read_file(docker_client, image: str, path: str) -> bytes:  # noqa: F811
    """A file of IMAGE, read from a container that never runs (no log to race with its end)."""
    import io
    container = docker_client.containers.create(image, ["true"], network_mode="none")
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return tar.extractfile(tar.getmembers()[0]).read()
    finally:
        container.remove(force=True)


def test_a_derived_images_install_reaches_its_index_and_nothing_else(tmp_path, docker_client,  # noqa: F811
                                                                     monkeypatch):
    """The docker runtime's install: no network but the gate, not even Docker's bridge to this machine; the image
    it makes keeps its base's entrypoint, command and environment (none of the install's proxies)."""
    index = _Server(b"the index")
    service = _Server(b"the harness's API", host="0.0.0.0")  # (reachable from Docker's bridge, were there one)
    try:
        monkeypatch.setenv("UV_INDEX_URL", f"http://127.0.0.1:{index.port}/simple")
        monkeypatch.setattr(images, "INSTALL_SCRIPT", DOCKER_PROBE % {"service": service.port, "index": index.port})
        code = participant(tmp_path / "code", "print('hi')\n")
        (code / "requirements.txt").write_text(f"numpy!=0.{time.time_ns()}\n")  # (a hash never built before)
        tag = images.session_image(docker_client, code, None, "nsml-harness/session:latest",
                                   bounds=env_builds.Bounds(bytes=1 << 30, seconds=120))
        report = _read_file(docker_client, tag, "/probe.txt")
        base, built = (docker_client.images.get(n).attrs["Config"] for n in ("nsml-harness/session:latest", tag))
        docker_client.images.remove(tag, force=True)
    finally:
        index.close()
        service.close()
    report = eval(report.decode())
    assert report[:3] == ["OSError", "OSError", "ConnectionRefusedError"], report  # (no route; its own loopback)
    assert report[3:] == ["the index", 403, "URLError", f"http://127.0.0.1:{index.port}/simple"], report
    assert service.connections == [] and index.hits == ["/simple/"]
    assert built["Entrypoint"] == base["Entrypoint"] and (built["Cmd"] or None) == base["Cmd"]
    assert built["Env"] == base["Env"] and built["Labels"]["nsml-harness.base"].startswith("sha256:")
    assert built.get("Volumes") == base.get("Volumes") and built["Labels"][image_builds.BYTES_LABEL].isdigit()
    assert not [t for i in docker_client.images.list(name=images.ENV_REPO) for t in i.tags if "-building" in t]


@pytest.mark.parametrize("script", [
    "head -c 30000000 /dev/urandom > /big.bin && sleep 120 # {binary}\n",  # (caught while it runs)
    "mkdir /many && cd /many && seq 1 2000 | xargs touch && sleep 120 # {binary}\n",  # (empty files are not free)
    "mkdir /many && cd /many && seq 1 2000 | xargs touch # {binary}\n"])  # (and its last seconds are measured)
def test_a_derived_images_install_past_its_bytes_is_stopped(tmp_path, docker_client, script):  # noqa: F811
    code = participant(tmp_path / "code", "print('hi')\n")
    (code / "requirements.txt").write_text(f"numpy!=0.{time.time_ns()}\n")
    before = {i.id for i in docker_client.images.list(all=True)}
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(images, "INSTALL_SCRIPT", script)
        with pytest.raises(images.ImageError, match=r"stopped: it wrote \d+ bytes \(each file or folder at least "
                                                    r"16384\), over limits.env_bytes = 10000000"):
            images.session_image(docker_client, code, None, "nsml-harness/session:latest",
                                 bounds=env_builds.Bounds(bytes=10_000_000, seconds=100))
    assert time.monotonic() - started < 60  # (measured while it ran, not at its end)
    assert {i.id for i in docker_client.images.list(all=True)} == before  # (nothing kept)
    assert not docker_client.containers.list(all=True, filters={"ancestor": "nsml-harness/session:latest",
                                                                "status": "running"})


def test_a_derived_images_apt_packages_come_through_the_gate(tmp_path, docker_client):  # noqa: F811
    """nsml_package.txt: apt reaches the image's own sources through the gate (plain http, one request a
    connection) and nothing else; the package is in the image."""
    code = participant(tmp_path / "code", "print('hi')\n")
    (code / "nsml_package.txt").write_text(f"tree\n# {time.time_ns()}\n")  # (a hash never built before)
    tag = images.session_image(docker_client, code, None, "nsml-harness/session:latest",
                               bounds=env_builds.Bounds(bytes=1 << 30, seconds=300))
    try:
        binary = _read_file(docker_client, tag, "/usr/bin/tree")
    finally:
        docker_client.images.remove(tag, force=True)
    assert binary.startswith(b"\x7fELF")


def test_apt_sources_of_the_base_image_are_its_install_hosts(docker_client):  # noqa: F811
    container = docker_client.containers.create("nsml-harness/session:latest", ["true"], network_mode="none")
    try:
        hosts = image_builds.apt_hosts(container)
    finally:
        container.remove(force=True)
    assert hosts and all(port in (80, 443) for _, port in hosts)


def test_a_plain_request_goes_alone_and_rebuilt_whatever_follows_it(servers):
    """Behind the operator's proxy too: one request per connection, its line made of the checked host, port and
    path; a second request pipelined after it, or sent later on the same connection, goes nowhere."""
    index, _ = servers
    seen = []
    proxy = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = proxy.accept()
        conn.settimeout(5)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
                if data.endswith(b"\r\n\r\n"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        seen.append(data)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    environ = {"http_proxy": f"http://op%40corp:pa%3Ass@127.0.0.1:{proxy.getsockname()[1]}"}
    smuggled = b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"
    with egress.Gate(frozenset({("pypi.org", 443)}), environ) as gate:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(10)
            conn.connect(str(gate.folder / "s"))
            conn.sendall(b"GET http://PyPI.org:443?@evil/x HTTP/1.1\r\nHost: evil\r\nConnection: keep-alive\r\n"
                         b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\r\n" + smuggled)
            time.sleep(0.3)
            try:
                conn.sendall(smuggled)
            except OSError:
                pass
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
    proxy.close()
    assert answer.endswith(b"ok")
    login = "Basic b3BAY29ycDpwYTpzcw=="  # (op@corp:pa:ss, from the operator's proxy URL)
    assert seen == [f"GET http://pypi.org:443/?@evil/x HTTP/1.1\r\nHost: pypi.org:443\r\nProxy-Authorization: "
                    f"{login}\r\nConnection: close\r\n\r\n".encode()]


@pytest.mark.parametrize("head", [
    b"GET http://pypi.org:443/ HTTP/1.1\r\nX-A: a\n\nGET http://169.254.169.254/ HTTP/1.1\nHost: x\r\n\r\n",
    b"GET http://pypi.org:443/ HTTP/1.1\r\nX-A: a\r\n folded: b\r\n\r\n",
    b"GET http://pypi.org:443/ HTTP/1.1\r\nX-A: a\rGET http://169.254.169.254/ HTTP/1.1\r\n\r\n",
    b"CONNECT pypi.org:443 HTTP/1.1\r\nX-\x00: a\r\n\r\n"])
def test_a_head_with_anything_but_plain_header_lines_is_refused(head):
    with pytest.raises(egress.Refused) as refused:
        egress.parse_head(head)
    assert refused.value.code == 400


def test_a_head_that_comes_a_byte_at_a_time_is_cut_at_its_deadline(servers, monkeypatch):
    monkeypatch.setattr(egress, "HEAD_SECONDS", 1.0)
    with egress.Gate(frozenset(), {}) as gate:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(10)
            conn.connect(str(gate.folder / "s"))
            started, answer = time.monotonic(), b""
            for byte in b"CONNECT pypi.org:443 HTTP/1.1":
                if select.select([conn], [], [], 0.2)[0]:  # (the gate answered: stop, or its close resets ours)
                    break
                conn.sendall(bytes([byte]))
            while chunk := conn.recv(100):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ") and time.monotonic() - started < 8


def test_an_ipv6_index_is_matched_in_one_form():
    assert package_indexes.index_hosts({"UV_INDEX_URL": "http://[FD00::5]:8080/simple"}) == {("[fd00::5]", 8080)}
    assert egress.parse_head(b"CONNECT [fd00::5]:8080 HTTP/1.1\r\n\r\n") == ("[fd00::5]", 8080, True)


def test_a_base_images_volume_is_no_unmeasured_disk_for_the_install(tmp_path, docker_client):  # noqa: F811
    """A VOLUME of the base image would be a Docker volume, outside the measured layer: the install gets a small
    tmpfs there (memory, within the build's), and no volume is left behind."""
    import io
    base = "nsml-harness/test-volume:1"
    dockerfile = b"FROM nsml-harness/session:latest\nVOLUME /data\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=base, rm=True)
    volumes = {v.id for v in docker_client.volumes.list()}
    code = participant(tmp_path / "code", "print('hi')\n")
    (code / "requirements.txt").write_text(f"#nsml: {base}\nnumpy!=0.{time.time_ns()}\n")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(images, "INSTALL_SCRIPT", "head -c 100000000 /dev/zero > /data/big # {binary}\n")
            with pytest.raises(images.ImageError, match=r"failed \(exit code 1\): .*No space left on device"):
                images.session_image(docker_client, code, None, "nsml-harness/session:latest", allowed=(base,),
                                     bounds=env_builds.Bounds(bytes=1 << 30, seconds=100))
    finally:
        docker_client.images.remove(base, force=True)
    assert {v.id for v in docker_client.volumes.list()} == volumes


BUILDER = r'''
import sys
from pathlib import Path
from harness.runtime import env_builds, images
from harness.runtime.docker_runtime import client
images.INSTALL_SCRIPT = "sleep 600 # {binary}\n"
images.session_image(client(), Path(sys.argv[1]), None, "nsml-harness/session:latest",
                     bounds=env_builds.Bounds(bytes=1 << 30, seconds=900))
'''


def test_a_docker_build_ends_with_the_harness_that_watched_it_and_its_leftovers_are_swept(tmp_path,
                                                                                         docker_client):  # noqa: F811
    """The harness dies mid-install (SIGKILL: no `finally` runs): the relay's watch of the gate ends, so the
    install ends at once instead of going on with no time, byte or network bound; the collection then sweeps
    the container and an install's tag that nobody will finish."""
    import subprocess
    code = participant(tmp_path / "code", "print('hi')\n")
    (code / "requirements.txt").write_text(f"numpy!=0.{time.time_ns()}\n")
    building = {"label": image_builds.BUILDING}
    before = {c.id for c in docker_client.containers.list(all=True, filters=building)}
    builder = subprocess.Popen([sys.executable, "-c", BUILDER, str(code)])
    try:
        deadline = time.time() + 120
        while not (mine := [c for c in docker_client.containers.list(filters=building) if c.id not in before]):
            assert time.time() < deadline and builder.poll() is None
            time.sleep(0.2)
        time.sleep(1)
    finally:
        builder.kill()
        builder.wait()
    container = mine[0]
    deadline = time.time() + 20
    while container.status == "running" and time.time() < deadline:
        time.sleep(0.2)
        container.reload()
    assert container.status == "exited", container.status  # ended with its harness, not left installing
    assert int(container.labels[image_builds.UNTIL]) > time.time() + 900  # (a live build's is never swept)
    leftover = image_builds.building_tag(f"{images.ENV_REPO}:{'0' * 16}")  # (a commit whose builder died before
    #                                                                           its end)
    container.commit(*leftover.split(":"))
    assert image_builds.sweep(docker_client, images.ENV_REPO) == []  # (neither is past its time yet)
    swept = image_builds.sweep(docker_client, images.ENV_REPO, now=time.time() + 86400 * 2)
    assert container.labels[image_builds.BUILDING] in swept and leftover in swept
    assert not docker_client.containers.list(all=True, filters={"id": container.id})
    assert not docker_client.images.list(name=leftover)


def test_the_gate_holds_one_watch_and_ends_it_when_it_closes():
    """The relay's watch is the first connection; a build that connects again is refused, so it cannot run the
    harness out of descriptors that way."""
    with egress.Gate(frozenset(), {}) as gate:
        first = socket.socket(socket.AF_UNIX)
        first.connect(str(gate.folder / "w"))
        first.settimeout(0.5)
        with pytest.raises(socket.timeout):
            first.recv(1)  # (held)
        deadline = time.monotonic() + 5
        while True:
            second = socket.socket(socket.AF_UNIX)
            try:
                second.connect(str(gate.folder / "w"))
            except OSError:
                break
            finally:
                second.close()
            assert time.monotonic() < deadline
            time.sleep(0.05)
    first.settimeout(5)
    assert first.recv(1) == b""  # the gate closed: the relay ends its build
    first.close()
