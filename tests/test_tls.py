"""The HTTPS certificate: made on first use, reused while it fits, remade when it does not; a teacher's own pair."""

from __future__ import annotations

import builtins
import datetime as dt
import stat

import pytest

from cifar_lab import tls

x509 = pytest.importorskip("cryptography.x509")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")


def load(cert_path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert_path.read_bytes())


def test_a_certificate_is_made_for_localhost_and_the_lan_addresses_with_an_owner_only_key(tmp_path):
    folder = tmp_path / "tls"
    cert_path, key_path = tls.ensure_certificate(folder, ["192.168.1.20", "10.0.0.5"])
    assert (cert_path, key_path) == (folder / "cert.pem", folder / "key.pem")
    cert = load(cert_path)
    assert tls.subject_names(cert) == ["localhost", "127.0.0.1", "192.168.1.20", "10.0.0.5"]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    lasts = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=360) < lasts <= dt.timedelta(days=366)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert key.public_key() == cert.public_key()
    assert sorted(p.name for p in folder.iterdir()) == ["cert.pem", "key.pem"]  # no temporary file left behind


def test_a_fitting_certificate_is_reused_and_a_new_address_remakes_it(tmp_path):
    cert_path, _ = tls.ensure_certificate(tmp_path, ["192.168.1.20", "10.0.0.5"])
    first = cert_path.read_bytes()
    tls.ensure_certificate(tmp_path, ["10.0.0.5"])  # fewer addresses: still covered
    assert cert_path.read_bytes() == first
    tls.ensure_certificate(tmp_path, ["10.0.0.5", "172.16.0.9"])
    assert cert_path.read_bytes() != first
    assert "172.16.0.9" in tls.subject_names(load(cert_path))


def test_a_certificate_near_its_end_or_damaged_is_remade(tmp_path, monkeypatch):
    monkeypatch.setattr(tls, "VALID_FOR", dt.timedelta(days=5))  # less than RENEW_BEFORE
    cert_path, key_path = tls.ensure_certificate(tmp_path, [])
    short = cert_path.read_bytes()
    monkeypatch.undo()
    tls.ensure_certificate(tmp_path, [])
    assert cert_path.read_bytes() != short
    key_path.write_text("damaged")
    tls.ensure_certificate(tmp_path, [])
    assert serialization.load_pem_private_key(key_path.read_bytes(), password=None).public_key() == (
        load(cert_path).public_key()
    )


def test_without_cryptography_the_error_says_what_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_cryptography(name, *args, **kwargs):
        if name.startswith("cryptography"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cryptography)
    with pytest.raises(tls.CertificateError, match=r"pip install 'cifar-lab\[https\]'"):
        tls.ensure_certificate(tmp_path, [])
    assert not list(tmp_path.iterdir())


def test_a_teacher_s_own_pair_is_used_as_given(tmp_path):
    cert_path, key_path = tls.ensure_certificate(tmp_path / "own", ["10.0.0.5"])
    assert tls.check_certificate_pair(str(cert_path), str(key_path)) == (cert_path, key_path)


def test_a_teacher_s_pair_that_is_missing_mismatched_or_encrypted_is_refused_clearly(tmp_path):
    cert_path, key_path = tls.ensure_certificate(tmp_path / "a", [])
    _, other_key = tls.ensure_certificate(tmp_path / "b", [])
    with pytest.raises(tls.CertificateError, match="certificate file .*missing.pem does not exist"):
        tls.check_certificate_pair(tmp_path / "missing.pem", key_path)
    with pytest.raises(tls.CertificateError, match="key file .*nokey.pem does not exist"):
        tls.check_certificate_pair(cert_path, tmp_path / "nokey.pem")
    with pytest.raises(tls.CertificateError, match="not a usable pair"):
        tls.check_certificate_pair(cert_path, other_key)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(tls.CertificateError, match="protected by a password"):
        tls.check_certificate_pair(cert_path, encrypted)
