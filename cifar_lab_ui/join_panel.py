"""The "join the class" panel: the address students open, big, with its QR code, from the running server's settings."""

from __future__ import annotations

import streamlit as st

from cifar_lab import lan
from cifar_lab.dashboard.join import is_loopback, join_urls, qr_png, reachable_addresses

QR_WIDTH_PX = 600  # on a projector; a narrower screen (a phone) shrinks it to its own width
OTHER_QR_WIDTH_PX = 300
SERVE_FOR_CLASS = "`python -m cifar_lab serve` (or `streamlit run dashboard.py --server.address 0.0.0.0`)"


@st.cache_data(show_spinner=False, max_entries=32)
def _qr(url: str) -> bytes:
    """One PNG per URL for every viewer and rerun."""
    return qr_png(url)


@st.cache_data(show_spinner=False, ttl=60)
def _lan_addresses() -> list[str]:
    """The machine's addresses, looked up at most once a minute (name lookups can be slow off Linux)."""
    return lan.lan_addresses()


def join_panel() -> None:
    """Where students join: the likely URL in big text and as a QR code, the machine's other addresses below."""
    address = st.get_option("server.address")
    https = bool(st.get_option("server.sslCertFile"))
    if is_loopback(address):
        st.warning(
            f"The lab listens on {address} only: no one else can join. Start it for the class with {SERVE_FOR_CLASS}."
        )
        return
    urls = join_urls(
        reachable_addresses(address, _lan_addresses()),
        int(st.get_option("server.port")),
        https=https,
        base_path=st.get_option("server.baseUrlPath") or "",
    )
    if not urls:
        st.warning("This machine has no network address: connect it to the classroom's network, then reload the page.")
        return
    st.title(urls[0], anchor=False)
    _qr_image(urls[0], QR_WIDTH_PX, caption="Scan to join")
    if len(urls) > 1:
        with st.expander(f"Other addresses of this machine ({len(urls) - 1})"):
            for url in urls[1:]:
                st.markdown(f"**{url}**")
                _qr_image(url, OTHER_QR_WIDTH_PX)
    if not https:
        st.caption(
            "Phones get no camera without HTTPS: start the lab with `python -m cifar_lab serve --https`. "
            "Each browser then warns once about the self-signed certificate: choose Advanced, then Proceed "
            "(or Visit this website)."
        )


def _qr_image(url: str, width_px: int, caption: str | None = None) -> None:
    """The URL's QR code `width_px` wide, or the screen's width where that is less (st.image(width=int) overflows)."""
    with st.container(width=width_px):
        st.image(_qr(url), width="stretch", caption=caption)
