"""`python -m cifar_lab serve`: run the dashboard for a class, reachable on the LAN, over HTTPS when asked."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import lan, paths, tls

DEFAULT_PORT = 8501  # Streamlit's own default
ALL_INTERFACES = "0.0.0.0"
LOOPBACK = "127.0.0.1"
INSTALL_DASHBOARD = "pip install -r requirements.txt (or: pip install 'cifar-lab[dashboard]')"


class ServeError(ValueError):
    """The dashboard cannot be started as asked; the message says what to do."""


@dataclass(frozen=True)
class Launch:
    """What `serve` runs and tells the teacher: the command, the join URLs (likely first) and the local URL."""

    argv: list[str]
    join_urls: list[str]
    local_url: str
    certificate: Path | None


def tls_dir() -> Path:
    """$XDG_CACHE_HOME/cifar_lab/tls, else ~/.cache/cifar_lab/tls: the made certificate can always be made again."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cifar_lab" / "tls"


def dashboard_script() -> Path:
    """dashboard.py of the checkout the package runs from; ServeError when the package is installed without one."""
    root = paths.source_checkout()
    if root is None:
        raise ServeError(
            f"dashboard.py is not beside the cifar_lab package ({paths.PACKAGE_DIR.parent}); the dashboard runs from "
            "a checkout of the project: run `python -m cifar_lab serve` in that checkout"
        )
    return root / "dashboard.py"


def streamlit_argv(
    script: Path, *, port: int, local: bool, certificate: tuple[Path, Path] | None, python: str = sys.executable
) -> list[str]:
    """`<python> -m streamlit run <script>` on all interfaces (or loopback), with the certificate when given."""
    argv = [python, "-m", "streamlit", "run", str(script)]
    argv += ["--server.address", LOOPBACK if local else ALL_INTERFACES, "--server.port", str(port)]
    argv += ["--server.headless", "true"]  # no browser to open on a projector, no first-run e-mail prompt to block
    if certificate is not None:
        argv += ["--server.sslCertFile", str(certificate[0]), "--server.sslKeyFile", str(certificate[1])]
    return argv


def plan_launch(
    *,
    port: int = DEFAULT_PORT,
    https: bool = False,
    cert: str | None = None,
    key: str | None = None,
    local: bool = False,
    addresses: Sequence[str] | None = None,
    tls_folder: Path | None = None,
) -> Launch:
    """Check the request and build the command; `addresses` defaults to lan.lan_addresses(), the folder to tls_dir()."""
    from .dashboard.join import join_urls

    if not 0 < port < 65536:
        raise ServeError(f"--port {port} is not valid; give a port between 1 and 65535 (default {DEFAULT_PORT})")
    if (cert is None) != (key is None):
        raise ServeError("--cert and --key go together: give the certificate file and its private key file")
    script = dashboard_script()
    if importlib.util.find_spec("streamlit") is None:
        raise ServeError(f"the dashboard needs streamlit: {INSTALL_DASHBOARD}")
    lan_found = [] if local else list(lan.lan_addresses() if addresses is None else addresses)
    certificate = None
    if cert is not None and key is not None:
        certificate = tls.check_certificate_pair(cert, key)
    elif https:
        certificate = tls.ensure_certificate(tls_folder or tls_dir(), lan_found)
    secure = certificate is not None
    return Launch(
        argv=streamlit_argv(script, port=port, local=local, certificate=certificate),
        join_urls=join_urls(lan_found, port, https=secure),
        local_url=join_urls(["localhost"], port, https=secure)[0],
        certificate=certificate[0] if certificate else None,
    )


def announce(launch: Launch, out: TextIO, *, local: bool) -> None:
    """Tell the teacher where students join and what their browsers will ask."""
    if local:
        print(f"Only this machine can open the lab (--local): {launch.local_url}", file=out)
    elif launch.join_urls:
        print("Students join at (the first is the likely one; the Class page shows it as a QR code):", file=out)
        for url in launch.join_urls:
            print(f"  {url}", file=out)
    else:
        print("No network address found: connect this machine to the classroom's network, then restart.", file=out)
    print(f"On this machine: {launch.local_url}", file=out)
    if launch.certificate is not None:
        print(
            f"HTTPS with the certificate {launch.certificate}. A self-signed certificate makes each browser warn "
            "once: choose Advanced, then Proceed (or Visit this website).",
            file=out,
        )
    elif not local:
        print("Phones get no camera without HTTPS: add --https to serve it.", file=out)
    out.flush()


def run(argv: list[str]) -> int:
    """Become the Streamlit server (POSIX: signals and the exit status are its own), or wait for it (Windows)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(argv[0], argv)  # does not return
    try:
        return subprocess.call(argv)
    except KeyboardInterrupt:  # Ctrl-C reached the server too; let it finish shutting down
        return 130


def serve(
    *,
    port: int = DEFAULT_PORT,
    https: bool = False,
    cert: str | None = None,
    key: str | None = None,
    local: bool = False,
) -> int:
    """Plan, announce and run the dashboard for a class; the server's exit status."""
    launch = plan_launch(port=port, https=https, cert=cert, key=key, local=local)
    announce(launch, sys.stdout, local=local)
    return run(launch.argv)
