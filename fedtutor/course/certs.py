"""Certificates and student keys for ``fedtutor classroom`` (made with the ``cryptography`` package).

- ``make_ca`` / ``make_server_cert``: a certificate authority that lives for one teaching session,
  and the server's certificate signed by it, valid for the addresses the students will type
  (each in the certificate's Subject Alternative Name, which is what TLS clients check).
- ``make_student_key``: one P-384 key pair per student. The public half is enrolled with the
  SuperLink (Flower's SuperNode authentication); the private half is what the student's
  SuperNode signs its requests with. ``student_code`` packs a student's number, private key
  and the CA's fingerprint into one line to paste; ``parse_code`` unpacks it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CURVE = ec.SECP384R1()  # Flower's SuperNode authentication wants a NIST curve; P-384 is its documented one
KEY_BYTES = 48  # a P-384 private key is one 384-bit number
FINGERPRINT_HEX = 16  # how much of the CA's SHA-256 a code carries (64 bits: enough to detect a wrong server)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(pem, pkcs8, serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedtutor classroom"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_ca(days: int = 2) -> tuple[bytes, bytes]:
    """A fresh CA for one session: (certificate PEM, private key PEM). Short-lived on purpose."""
    key = ec.generate_private_key(CURVE)
    name = _name("fedtutor classroom CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(hours=1))  # a student clock a little behind still accepts it
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )  # digital_signature, key_cert_sign, crl_sign
        .sign(key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def make_server_cert(ca_cert_pem: bytes, ca_key_pem: bytes, hosts: list[str], days: int = 2) -> tuple[bytes, bytes]:
    """The server's (certificate PEM, key PEM), signed by the CA, valid for every name/address in ``hosts``."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = ec.generate_private_key(CURVE)
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):  # unique, in order
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(hours=1))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate (DER), in hex: what a student compares to trust the right CA."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _ssh_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Flower's SuperNode reads its private key in OpenSSH format (``ssh-keygen -t ecdsa -b 384`` makes one)
    pem, openssh = serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH
    return key.private_bytes(pem, openssh, serialization.NoEncryption())


def _load_ssh_key(private_key: bytes) -> ec.EllipticCurvePrivateKey:
    return serialization.load_ssh_private_key(private_key, password=None)  # type: ignore[return-value]


def make_student_key() -> tuple[bytes, bytes]:
    """A student's (private key in OpenSSH format, public key PEM): the SuperNode signs with the first,
    the SuperLink enrols the second."""
    key = ec.generate_private_key(CURVE)
    return _ssh_key(key), public_key_pem(_ssh_key(key))


def public_key_pem(private_key: bytes) -> bytes:
    """The public half as Flower's SuperLink stores it (PEM SubjectPublicKeyInfo)."""
    public = _load_ssh_key(private_key).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class StudentCode:
    """What one enrolment code carries: the student's number, private key, and the CA to trust."""

    number: int  # 1-based, as the instructor reads it out; the data shard is number - 1
    private_key: bytes  # OpenSSH format, as flower-supernode reads it
    ca_fingerprint: str  # a prefix of the CA certificate's SHA-256, hex


def student_code(number: int, private_key: bytes, ca_cert_pem: bytes) -> str:
    """One line to paste: ``<number>.<private key, base64url>.<CA fingerprint prefix>``."""
    secret = _load_ssh_key(private_key).private_numbers().private_value.to_bytes(KEY_BYTES, "big")
    packed = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    return f"{number}.{packed}.{fingerprint(ca_cert_pem)[:FINGERPRINT_HEX]}"


def parse_code(code: str) -> StudentCode:
    """The inverse of ``student_code``; ``ValueError`` says what is wrong with a mistyped code."""
    parts = code.strip().split(".")
    if len(parts) != 3:
        raise ValueError("an enrolment code has three parts separated by '.' (number-key-fingerprint); copy it whole.")
    number, packed, fp = parts
    if not number.isdigit() or int(number) < 1:
        raise ValueError(f"the code's first part is your student number (1, 2, ...), got {number!r}.")
    try:
        secret = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
    except ValueError:
        secret = b""
    if len(secret) != KEY_BYTES:
        raise ValueError("the code's middle part (your key) is damaged or incomplete; copy the code again.")
    if len(fp) != FINGERPRINT_HEX or any(c not in "0123456789abcdef" for c in fp):
        raise ValueError("the code's last part (the server's fingerprint) is damaged; copy the code again.")
    key = ec.derive_private_key(int.from_bytes(secret, "big"), CURVE)
    return StudentCode(int(number), _ssh_key(key), fp)
