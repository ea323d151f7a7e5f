"""The HTTPS certificate for serving a class on the LAN: self-signed, made on first use, or the teacher's own."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALID_FOR = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=7)  # a certificate this close to its end is remade rather than reused
BACKDATE = dt.timedelta(days=1)  # a phone whose clock runs behind still accepts it
ALWAYS_NAMED = ("localhost", "127.0.0.1")
INSTALL_HINT = "pip install 'cifar-lab[https]' (or: pip install 'cryptography>=42')"


class CertificateError(ValueError):
    """A certificate that cannot be made or used; the message says what to do."""


def ensure_certificate(folder: Path | str, addresses: Sequence[str]) -> tuple[Path, Path]:
    """(cert, key) in `folder`: reused if valid for more than RENEW_BEFORE and naming every address, else made anew.

    The certificate is self-signed for localhost, 127.0.0.1 and `addresses`, valid VALID_FOR; the key file is
    readable by its owner only. Both are written atomically, so a reader never sees half a file.
    """
    _require_cryptography()
    folder = Path(folder).expanduser()
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    names = list(dict.fromkeys([*ALWAYS_NAMED, *addresses]))
    if _reusable(cert_path, key_path, names):
        return cert_path, key_path
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert_pem, key_pem = _self_signed(names)
        _write_atomically(key_path, key_pem)  # the key first: a new cert never sits beside an old key
        _write_atomically(cert_path, cert_pem)
    except OSError as err:
        raise CertificateError(f"cannot write the HTTPS certificate in {folder}: {err}; make it writable") from err
    return cert_path, key_path


def check_certificate_pair(cert: Path | str, key: Path | str) -> tuple[Path, Path]:
    """The teacher's own certificate and key, as given, once they exist, load and belong together."""
    cert_path, key_path = Path(cert).expanduser(), Path(key).expanduser()
    for label, path in (("certificate", cert_path), ("key", key_path)):
        if not path.is_file():
            raise CertificateError(f"the {label} file {path} does not exist; give the path to a PEM file")
    try:  # the standard library checks what Streamlit's server will load, without cryptography
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path, password=_no_password)
    except (ssl.SSLError, OSError, _EncryptedKey) as err:
        raise CertificateError(
            f"{cert_path} and {key_path} are not a usable pair ({err}); give a PEM certificate and its "
            "unencrypted private key"
        ) from err
    return cert_path, key_path


class _EncryptedKey(Exception):
    def __str__(self) -> str:
        return "the key is protected by a password, which the server cannot ask for"


def _no_password() -> str:
    raise _EncryptedKey()


def _require_cryptography() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise CertificateError(f"making an HTTPS certificate needs the cryptography package: {INSTALL_HINT}") from None


def _reusable(cert_path: Path, key_path: Path, names: Sequence[str]) -> bool:
    """Whether the certificate and key on disk load, match, last beyond RENEW_BEFORE and name every one of `names`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):  # missing, damaged or password-protected: make a new pair
        return False
    fresh = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > RENEW_BEFORE
    same_key = cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return fresh and same_key and set(names) <= set(subject_names(cert))


def subject_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate's subjectAltName lists, as text."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]


def _self_signed(names: Sequence[str]) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a new P-256 key and a certificate for `names`, signed by itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())  # fast to make, accepted by every current browser
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cifar_lab classroom")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _general_name(name: str) -> x509.GeneralName:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write a temporary file beside `path`, owner-only from its creation, then rename it over `path`."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
