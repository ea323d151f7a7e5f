"""Joining a class: the addresses students open, and their QR codes, from the server's settings."""

from __future__ import annotations

import io
import ipaddress
import math
from collections.abc import Sequence

import segno

QR_MIN_WIDTH_PX = 600  # wide enough to scan from the back of a room once projected
QR_BORDER = 4  # modules of quiet zone, the QR standard's minimum
QR_ERROR = "m"  # recovers ~15% of a smudged or glare-washed code; segno raises it when that costs no size
ALL_INTERFACES = ("", "0.0.0.0", "::")  # unset (Streamlit binds 0.0.0.0) or a wildcard: every address serves
UNIX_SOCKET_PREFIX = "unix://"


def join_urls(addresses: Sequence[str], port: int, *, https: bool, base_path: str = "") -> list[str]:
    """The URLs to open, one per address, e.g. `http://192.168.1.20:8501/` or `https://10.0.0.5:8501/lab/`.

    `base_path` is Streamlit's server.baseUrlPath (with or without slashes). IPv6 addresses are bracketed.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not valid; it must be between 1 and 65535")
    scheme = "https" if https else "http"
    path = "/".join(part for part in base_path.split("/") if part)
    suffix = f"/{path}/" if path else "/"
    return [f"{scheme}://{_host(address)}:{port}{suffix}" for address in addresses]


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def is_loopback(server_address: str | None) -> bool:
    """Whether a server bound to `server_address` answers only this machine (localhost, 127.x, ::1)."""
    address = (server_address or "").strip().lower()
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def reachable_addresses(server_address: str | None, lan: Sequence[str]) -> list[str]:
    """The addresses other machines can join at: every LAN address when the server listens on all interfaces
    (Streamlit's default when server.address is unset), the one it is bound to, or none (loopback, a Unix socket)."""
    address = (server_address or "").strip()
    if address in ALL_INTERFACES:
        return list(lan)
    if is_loopback(address) or address.startswith(UNIX_SOCKET_PREFIX):
        return []
    return [address]


def qr_png(url: str) -> bytes:
    """A PNG QR code of `url`, black on white, with a quiet zone, at least QR_MIN_WIDTH_PX pixels wide."""
    code = segno.make_qr(url, error=QR_ERROR)
    modules, _ = code.symbol_size(scale=1, border=QR_BORDER)
    out = io.BytesIO()
    code.save(out, kind="png", scale=math.ceil(QR_MIN_WIDTH_PX / modules), border=QR_BORDER)
    return out.getvalue()
