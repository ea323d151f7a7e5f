"""Joining a class: the LAN addresses, the join URLs, their QR codes (decoded for real) and the join panel."""

from __future__ import annotations

import io

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from cifar_lab import lan
from cifar_lab.dashboard.join import QR_MIN_WIDTH_PX, is_loopback, join_urls, qr_png, reachable_addresses

zxingcpp = pytest.importorskip("zxingcpp")

ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
"""
INTERFACES = [
    ("lo", "127.0.0.1"),
    ("docker0", "172.17.0.1"),
    ("wlan0", "192.168.1.20"),
    ("eth0", "10.0.0.5"),
    ("usb0", "169.254.3.4"),
]


def sources(route_table: str = "", interfaces=(), hostname=(), probe=None) -> lan.Sources:
    """Sources that answer from the arguments; a source given as an exception raises it."""

    def answer(value):
        def source():
            if isinstance(value, Exception):
                raise value
            return value

        return source

    return lan.Sources(answer(route_table), answer(interfaces), answer(hostname), answer(probe))


def decode(png: bytes) -> list[str]:
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def test_the_default_route_with_the_lowest_metric_names_the_interface():
    assert lan.default_interface(ROUTES) == "eth0"
    assert lan.default_interface(ROUTES.replace("\t100\t00000000", "\t900\t00000000")) == "wlan0"
    assert lan.default_interface(ROUTES.splitlines()[0]) is None
    assert lan.default_interface("") is None
    down = ROUTES.replace("0003\t0\t0\t600", "0002\t0\t0\t600").replace("0003\t0\t0\t100", "0002\t0\t0\t100")
    assert lan.default_interface(down) is None  # routes that are not up do not count


def test_addresses_put_the_default_interface_first_virtual_ones_last_and_drop_loopback_and_link_local():
    found = lan.lan_addresses(sources(ROUTES, INTERFACES))
    assert found == ["10.0.0.5", "192.168.1.20", "172.17.0.1"]


def test_a_vpn_carrying_the_default_route_comes_after_the_classroom_network():
    routes = ROUTES.replace("eth0\t00000000\t0100000A", "wg0\t00000000\t0100000A")
    found = lan.lan_addresses(sources(routes, [("wg0", "10.8.0.2"), ("wlan0", "192.168.1.20")]))
    assert lan.default_interface(routes) == "wg0"
    assert found == ["192.168.1.20", "10.8.0.2"]


def test_usable_refuses_what_no_other_machine_can_reach():
    assert lan.usable("192.168.1.20") and lan.usable("10.1.2.3")
    for address in ("127.0.0.1", "127.0.1.1", "169.254.0.9", "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "nonsense"):
        assert not lan.usable(address), address


def test_without_interfaces_the_name_s_addresses_count_with_the_probed_one_first():
    named = ["127.0.1.1", "172.17.0.1", "192.168.1.20", "192.168.1.20"]
    assert lan.lan_addresses(sources(hostname=named, probe="192.168.1.20")) == ["192.168.1.20", "172.17.0.1"]
    assert lan.lan_addresses(sources(hostname=OSError("no name"), probe="10.0.0.5")) == ["10.0.0.5"]
    assert lan.lan_addresses(sources(interfaces=[("lo", "127.0.0.1")], hostname=named)) == named[1:3]


def test_no_address_anywhere_is_an_empty_list_never_an_error():
    failing = sources(OSError("no /proc"), OSError("no ioctl"), OSError("no name"), OSError("unreachable"))
    assert lan.lan_addresses(failing) == []
    assert lan.lan_addresses(sources(hostname=["127.0.1.1"], probe="127.0.0.1")) == []
    assert lan.lan_addresses(sources(interfaces=[("eth0", None)])) == []  # a malformed answer: still a list


def test_this_machine_s_interfaces_include_loopback():
    pairs = lan.interface_addresses()  # reads the machine's own interfaces; sends nothing
    if pairs:  # Linux
        assert ("lo", "127.0.0.1") in pairs
        assert all(lan.usable(address) for address in lan.order_addresses(pairs))


def test_join_urls_give_scheme_port_and_base_path():
    assert join_urls(["192.168.1.20", "10.0.0.5"], 8501, https=False) == [
        "http://192.168.1.20:8501/",
        "http://10.0.0.5:8501/",
    ]
    assert join_urls(["192.168.1.20"], 8443, https=True, base_path="/lab/") == ["https://192.168.1.20:8443/lab/"]
    assert join_urls(["192.168.1.20"], 8501, https=True, base_path="class/lab") == [
        "https://192.168.1.20:8501/class/lab/"
    ]
    assert join_urls(["fd00::5"], 8501, https=False) == ["http://[fd00::5]:8501/"]
    assert join_urls([], 8501, https=False) == []
    with pytest.raises(ValueError, match="port 0 is not valid"):
        join_urls(["192.168.1.20"], 0, https=False)


@pytest.mark.parametrize(
    ("server_address", "expected"),
    [
        (None, ["192.168.1.20", "10.0.0.5"]),  # unset: Streamlit listens on every interface
        ("", ["192.168.1.20", "10.0.0.5"]),
        ("0.0.0.0", ["192.168.1.20", "10.0.0.5"]),
        ("::", ["192.168.1.20", "10.0.0.5"]),
        ("127.0.0.1", []),
        ("localhost", []),
        ("::1", []),
        ("unix:///tmp/lab.sock", []),
        ("10.0.0.5", ["10.0.0.5"]),  # bound to one address: only that one answers
    ],
)
def test_reachable_addresses_follow_where_the_server_listens(server_address, expected):
    assert reachable_addresses(server_address, ["192.168.1.20", "10.0.0.5"]) == expected
    assert is_loopback(server_address) == (server_address in ("127.0.0.1", "localhost", "::1"))


@pytest.mark.parametrize("url", ["http://192.168.1.20:8501/", "https://10.0.0.5:8443/class/lab/"])
def test_the_qr_code_decodes_to_the_url_and_is_big_enough_to_project(url):
    png = qr_png(url)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.width >= QR_MIN_WIDTH_PX and image.width == image.height
    assert decode(png) == [url]
    assert zxingcpp.read_barcodes(image)[0].ec_level in ("M", "Q", "H")
    corner = image.convert("L").crop((0, 0, image.width // 40, image.width // 40))
    assert corner.getextrema() == (255, 255)  # the quiet zone: white around the code


def _panel_script():
    from cifar_lab_ui.join_panel import join_panel

    join_panel()


@pytest.fixture
def panel(monkeypatch):
    """An AppTest of a script calling join_panel(), on a machine with two LAN addresses and the given options."""
    from cifar_lab_ui import join_panel

    monkeypatch.setattr(lan, "lan_addresses", lambda sources=None: ["192.168.1.20", "10.0.0.5"])
    join_panel._lan_addresses.clear()

    def run(**options) -> AppTest:
        real = st.get_option
        monkeypatch.setattr(st, "get_option", lambda name: options.get(name, real(name)))
        at = AppTest.from_function(_panel_script, default_timeout=30).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return run


def test_the_panel_shows_the_likely_url_big_with_its_qr_and_the_others_below(panel):
    at = panel(**{"server.address": None, "server.port": 8501, "server.sslCertFile": None})
    assert [t.value for t in at.title] == ["http://192.168.1.20:8501/"]
    assert len(at.image) == 2  # the likely address's QR code, and the other one's in the expander
    assert "http://10.0.0.5:8501/" in at.expander[0].markdown[0].value
    assert any("no camera without HTTPS" in c.value and "serve --https" in c.value for c in at.caption)


def test_the_panel_over_https_with_a_base_path_says_nothing_about_the_camera(panel):
    options = {"server.address": "0.0.0.0", "server.port": 8443, "server.sslCertFile": "/x/cert.pem"}
    at = panel(**options, **{"server.baseUrlPath": "lab"})
    assert [t.value for t in at.title] == ["https://192.168.1.20:8443/lab/"]
    assert not any("camera" in c.value for c in at.caption)


def test_the_panel_on_loopback_says_how_to_start_for_the_class(panel):
    at = panel(**{"server.address": "127.0.0.1", "server.port": 8501})
    assert not at.title and not at.image
    assert "python -m cifar_lab serve" in at.warning[0].value and "0.0.0.0" in at.warning[0].value
