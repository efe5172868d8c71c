"""Daemon access (issue 7): the unix socket is 0660 root:docker; TCP only with TLS and client
certificates (`--tlsverify`), proven with the docker CLI and docker-py; a client without a valid
certificate is refused; plain TCP only with an explicit `--tls=false`, and a warning."""

from __future__ import annotations

import grp
import os
import socket
import ssl
import stat
import subprocess

import docker
import pytest

from ..helpers import DOCKER, free_port

pytestmark = pytest.mark.root


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=dockyard-test-ca", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth"), ("other", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        if name == "other":   # signed by a CA the daemon does not trust
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca-key.pem", "-out",
                     "other-ca.pem", "-days", "2", "-subj", "/CN=other-ca", cwd=d)
            ca, cakey = "other-ca.pem", "other-ca-key.pem"
        else:
            ca, cakey = "ca.pem", "ca-key.pem"
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", ca, "-CAkey", cakey, "-CAcreateserial", "-out",
                 f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    return d


def test_unix_socket_mode_and_group(daemon):
    st = os.stat(daemon.sock)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0
    try:
        assert st.st_gid == grp.getgrnam("docker").gr_gid
    except KeyError:
        assert st.st_gid == 0   # no docker group on this host: root's


def test_tls_with_client_certificates(fresh_daemon, certs, monkeypatch):
    # requests lets these variables override the session's CA (requests #3829): docker-py's
    # TLSConfig would then check the daemon against the system's CAs
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    port = free_port()
    d = fresh_daemon("-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
                     "--tlscert", str(certs / "server.pem"), "--tlskey", str(certs / "server-key.pem"))
    tls = docker.tls.TLSConfig(client_cert=(str(certs / "client.pem"), str(certs / "client-key.pem")),
                               ca_cert=str(certs / "ca.pem"), verify=True)
    c = docker.DockerClient(base_url=f"https://127.0.0.1:{port}", tls=tls, version="auto")
    try:
        assert c.containers.run("busybox", ["echo", "over tls"], remove=True) == b"over tls\n"
        ctr = c.containers.run("busybox", ["sleep", "30"], detach=True)
        assert ctr.exec_run(["echo", "exec"]).output == b"exec\n"   # hijacked streams over TLS
        ctr.remove(force=True)
    finally:
        c.close()
    if DOCKER:
        base = [DOCKER, "-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem")]
        p = subprocess.run(base + ["--tlscert", str(certs / "client.pem"), "--tlskey", str(certs / "client-key.pem"),
                                   "run", "--rm", "busybox", "echo", "cli"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout == "cli\n", p.stderr
        p = subprocess.run(base + ["--tlscert", str(certs / "other.pem"), "--tlskey", str(certs / "other-key.pem"),
                                   "version"], capture_output=True, text=True, timeout=60)
        assert p.returncode != 0
    # no client certificate at all, and plain HTTP: refused during the handshake
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
                assert not s.recv(100)
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert not raw.recv(100).startswith(b"HTTP/1.1 200")
        except ConnectionResetError:
            pass   # refused: the handshake failed
    assert d.ping()   # the unix socket still answers


def test_plain_tcp_needs_an_explicit_flag(fresh_daemon, tmp_path):
    from ..helpers import BIN
    port = free_port()
    p = subprocess.run([str(BIN / "dockyardd"), "-H", f"tcp://127.0.0.1:{port}", "--data-root", str(tmp_path / "d"),
                        "--exec-root", str(tmp_path / "r"), "--config-file", str(tmp_path / "none.json")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "--tlsverify" in p.stderr and "--tls=false" in p.stderr
    d = fresh_daemon("-H", f"tcp://127.0.0.1:{port}", "--tls=false", image=False)
    c = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}", version="auto")
    try:
        assert c.ping()
    finally:
        c.close()
    assert "without encryption" in d.log.read_text()
