"""`python -m cifar_lab serve`: the Streamlit command it builds, what it tells the teacher, and a real HTTPS start."""

from __future__ import annotations

import io
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cifar_lab import paths, serve, tls
from cifar_lab.cli import main

x509 = pytest.importorskip("cryptography.x509")
DASHBOARD = paths.PACKAGE_DIR.parent / "dashboard.py"


def test_the_argv_runs_the_checkout_s_dashboard_on_every_interface():
    argv = serve.streamlit_argv(DASHBOARD, port=8501, local=False, certificate=None, python="/py")
    assert argv == [
        "/py",
        "-m",
        "streamlit",
        "run",
        str(DASHBOARD),
        "--server.address",
        "0.0.0.0",
        "--server.port",
        "8501",
        "--server.headless",
        "true",
    ]


def test_local_https_listens_on_loopback_with_the_certificate():
    argv = serve.streamlit_argv(
        DASHBOARD, port=9000, local=True, certificate=(Path("/c/cert.pem"), Path("/c/key.pem")), python="/py"
    )
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--server.port") + 1] == "9000"
    assert argv[-4:] == ["--server.sslCertFile", "/c/cert.pem", "--server.sslKeyFile", "/c/key.pem"]


def test_https_makes_a_certificate_for_the_lan_and_announces_the_join_urls(tmp_path):
    launch = serve.plan_launch(https=True, addresses=["192.168.1.20", "10.0.0.5"], tls_folder=tmp_path)
    assert launch.argv[:5] == [sys.executable, "-m", "streamlit", "run", str(DASHBOARD)]
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    assert launch.argv[-4:] == ["--server.sslCertFile", cert, "--server.sslKeyFile", key]
    assert "192.168.1.20" in tls.subject_names(x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes()))
    assert launch.join_urls == ["https://192.168.1.20:8501/", "https://10.0.0.5:8501/"]
    assert launch.local_url == "https://localhost:8501/"
    out = io.StringIO()
    serve.announce(launch, out, local=False)
    text = out.getvalue()
    assert text.index("https://192.168.1.20:8501/") < text.index("https://10.0.0.5:8501/")
    assert "warn once" in text and str(tmp_path / "cert.pem") in text


def test_plain_http_announces_that_phones_need_https_and_local_lists_no_join_url(tmp_path):
    plain = serve.plan_launch(port=8600, addresses=["192.168.1.20"])
    assert plain.join_urls == ["http://192.168.1.20:8600/"] and "--server.sslCertFile" not in plain.argv
    out = io.StringIO()
    serve.announce(plain, out, local=False)
    assert "add --https" in out.getvalue()
    local = serve.plan_launch(local=True, addresses=["192.168.1.20"])
    assert local.join_urls == [] and "127.0.0.1" in local.argv
    out = io.StringIO()
    serve.announce(local, out, local=True)
    assert "Only this machine" in out.getvalue() and "192.168.1.20" not in out.getvalue()


def test_the_cli_refuses_bad_serve_requests_with_the_fix(capsys, tmp_path):
    assert main(["serve", "--port", "70000"]) == 2
    assert "between 1 and 65535" in capsys.readouterr().err
    assert main(["serve", "--cert", str(tmp_path / "c.pem")]) == 2
    assert "--cert and --key go together" in capsys.readouterr().err
    assert main(["serve", "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem")]) == 2
    assert "c.pem does not exist" in capsys.readouterr().err


def test_an_installed_package_without_the_checkout_says_where_to_run(monkeypatch):
    monkeypatch.setattr(paths, "source_checkout", lambda: None)
    with pytest.raises(serve.ServeError, match="runs from a checkout"):
        serve.plan_launch(addresses=[])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, context: ssl.SSLContext, server: subprocess.Popen, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"serve exited early with {server.returncode}: {server.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as reply:
                return reply.read().decode().strip()
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"no answer at {url} within {timeout} s")


def test_serve_https_answers_with_the_made_certificate(tmp_path):
    port = free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "CIFAR_LAB_RUNS": str(tmp_path / "runs")}
    command = [sys.executable, "-m", "cifar_lab", "serve", "--local", "--https", "--port", str(port)]
    server = subprocess.Popen(
        command,
        env=env,
        cwd=DASHBOARD.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        cert = tmp_path / "cache" / "cifar_lab" / "tls" / "cert.pem"
        deadline = time.monotonic() + 30
        while not cert.exists() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        context = ssl.create_default_context(cafile=str(cert))  # trusts that certificate only
        assert wait_for_health(f"https://127.0.0.1:{port}/_stcore/health", context, server) == "ok"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=15)
        announced = server.stdout.read()
        server.stdout.close()
    assert f"Only this machine can open the lab (--local): https://localhost:{port}/" in announced


def test_run_hands_back_the_server_s_exit_status():
    code = "import sys; from cifar_lab.serve import run; run([sys.executable, '-c', 'raise SystemExit(3)'])"
    proc = subprocess.run([sys.executable, "-c", code], cwd=DASHBOARD.parent, timeout=60)
    assert proc.returncode == 3
