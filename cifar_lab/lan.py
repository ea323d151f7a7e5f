"""The machine's IPv4 addresses that others on the local network can reach, the likely one first."""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROUTE_TABLE = Path("/proc/net/route")  # Linux: one route a line, addresses as little-endian hex
SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's (first) IPv4 address
RTF_UP = 0x1
# Interfaces that only this machine's containers, VMs or tunnels sit behind: listed after the others, not dropped.
VIRTUAL_PREFIXES = (
    *("docker", "br-", "veth", "virbr", "vmnet", "vboxnet", "lxc", "lxd"),  # containers and VMs
    *("tun", "utun", "tap", "wg", "zt", "tailscale"),  # VPNs
)
# RFC 5737 TEST-NET-1: routed like any internet address, never a real host; connect() on UDP sends nothing to it.
PROBE_ADDRESS = ("192.0.2.1", 9)
_T = TypeVar("_T")


def usable(address: str) -> bool:
    """Whether others could reach this machine at `address`: IPv4, not loopback, link-local, 0.0.0.0 or multicast."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast)


def default_interface(route_table: str) -> str | None:
    """The interface of the default route (lowest metric) in the text of Linux's /proc/net/route; None if none."""
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:  # the first line names the columns
        fields = line.split()
        if len(fields) < 8:
            continue
        name, destination, flags, metric, mask = fields[0], fields[1], fields[3], fields[6], fields[7]
        try:
            is_default = int(destination, 16) == 0 and int(mask, 16) == 0 and int(flags, 16) & RTF_UP
            rank = int(metric)
        except ValueError:
            continue
        if is_default and (best is None or rank < best[0]):
            best = (rank, name)
    return best[1] if best else None


def order_addresses(
    by_interface: Iterable[tuple[str, str]], default: str | None = None, likely: str | None = None
) -> list[str]:
    """The usable addresses of (interface, address) pairs, each once: `likely`, then the `default` interface's,
    then the other interfaces' in their order; virtual ones (VIRTUAL_PREFIXES) last, whatever the route."""
    pairs = list(by_interface)

    def rank(pair: tuple[str, str]) -> int:
        name, address = pair
        if name.startswith(VIRTUAL_PREFIXES):  # even the default route's: a VPN carrying it is not the classroom
            return 3
        if address == likely:
            return 0
        return 1 if default is not None and name == default else 2

    ordered = sorted(pairs, key=rank)  # sorted() is stable: the sources' own order breaks ties
    return list(dict.fromkeys(address for _, address in ordered if usable(address)))


def read_route_table() -> str:
    """Linux's routing table as text; empty elsewhere."""
    try:
        return ROUTE_TABLE.read_text()
    except OSError:
        return ""


def interface_addresses() -> list[tuple[str, str]]:
    """(interface, IPv4 address) of every interface that has one, through Linux's SIOCGIFADDR; empty elsewhere."""
    if not sys.platform.startswith("linux"):
        return []
    import fcntl  # POSIX only

    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])  # struct ifreq: the name, then room for the answer
            try:
                answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
            except OSError:  # no IPv4 address on this interface
                continue
            found.append((name, socket.inet_ntoa(answer[20:24])))  # sockaddr_in's address, after name and port
    return found


def hostname_addresses() -> list[str]:
    """The IPv4 addresses the machine's own name resolves to (often only 127.0.x.1 on Linux)."""
    infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def probe_address() -> str | None:
    """The source address the machine would use to reach the internet; connect() on UDP sends no packet."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(PROBE_ADDRESS)
        return str(sock.getsockname()[0])


@dataclass(frozen=True)
class Sources:
    """Where lan_addresses looks; tests pass their own."""

    route_table: Callable[[], str] = read_route_table
    interfaces: Callable[[], Sequence[tuple[str, str]]] = interface_addresses
    hostname: Callable[[], Sequence[str]] = hostname_addresses
    probe: Callable[[], str | None] = probe_address


def lan_addresses(sources: Sources | None = None) -> list[str]:
    """The machine's reachable IPv4 addresses, the likely one first; [] when there are none. Never raises.

    Linux: every interface's address, the default route's interface first. Elsewhere, or when that finds none: the
    addresses of the machine's name, with the one the machine would route through (the UDP probe) first.
    """
    sources = sources or Sources()
    try:
        return _find(sources)
    except Exception:  # a surprise in a source's answer: the page shows "no address" rather than a traceback
        return []


def _find(sources: Sources) -> list[str]:
    found = order_addresses(_safely(sources.interfaces, []), default_interface(_safely(sources.route_table, "")))
    if found:
        return found
    named: Sequence[str] = _safely(sources.hostname, [])
    likely = _safely(sources.probe, None)
    return order_addresses([("", address) for address in [*named, likely] if address], likely=likely)


def _safely(source: Callable[[], _T], fallback: _T) -> _T:
    """source(), or `fallback` when it fails: a machine without network, name or route still gets an answer."""
    try:
        return source()
    except Exception:  # OSError, socket.gaierror, a missing ioctl: any of them only means "not this way"
        return fallback
