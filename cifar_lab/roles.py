"""Who may do what in a class: the teacher may act on every run, a participant only on their own."""

from __future__ import annotations

import getpass
import hmac
import ipaddress
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass

ENV_TEACHER_KEY = "CIFAR_LAB_TEACHER_KEY"
TEACHER = "teacher"  # the owner recorded for the teacher's runs when they typed no name


class NotAllowed(PermissionError):
    """Someone asked to act on a run or setting that is not theirs; the message says whose it is."""


@dataclass(frozen=True)
class Viewer:
    """One person using the dashboard: the name they typed ("" until they do) and whether they are the teacher."""

    name: str = ""
    teacher: bool = False

    @property
    def owner(self) -> str:
        """The owner recorded for their runs."""
        return self.name or (TEACHER if self.teacher else "")

    def owns(self, owner: str) -> bool:
        return bool(self.owner) and same_person(self.owner, owner)

    def may_manage(self, owner: str) -> bool:
        """Stop, rename, delete or resume a run of `owner`."""
        return self.teacher or self.owns(owner)


def same_person(a: str, b: str) -> bool:
    """Names typed on different devices: "Ada" and "ada " are one person."""
    return a.strip().casefold() == b.strip().casefold()


def check_may_manage(viewer: Viewer | None, owner: str, action: str, run_id: str) -> None:
    """Raise NotAllowed unless `viewer` (None: the server itself, e.g. the CLI) may `action` the run."""
    if viewer is None or viewer.may_manage(owner):
        return
    whose = f"{owner}'s" if owner else "someone else's"
    raise NotAllowed(f"Run {run_id} is {whose}: only they or the teacher can {action} it.")


def check_teacher(viewer: Viewer | None, action: str) -> None:
    if viewer is not None and not viewer.teacher:
        raise NotAllowed(f"Only the teacher can {action}.")


def is_teacher(
    address: str | None,
    key_entered: str = "",
    env: Mapping[str, str] | None = None,
    own_addresses: Collection[str] = (),
) -> bool:
    """With CIFAR_LAB_TEACHER_KEY set, whoever entered that key (from any address); without it, whoever uses the
    dashboard on the server machine itself: a loopback address, or one of `own_addresses` (the machine's LAN
    addresses, as when the teacher opens the join address on the laptop itself)."""
    env = os.environ if env is None else env
    key = env.get(ENV_TEACHER_KEY, "")
    if key:
        return bool(key_entered) and hmac.compare_digest(key_entered.encode(), key.encode())
    return is_loopback(address) or (bool(address) and address in own_addresses)


def teacher_key_set(env: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if env is None else env).get(ENV_TEACHER_KEY))


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # "::ffff:127.0.0.1" from a dual-stack socket
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def cli_owner() -> str:
    """The owner of runs started from the command line: the user who ran it."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        return "cli"
