"""The classroom's certificates, student keys and enrolment codes (fedtutor.course.certs), and the
student's preflight checks against an in-process gateway (threads only: no Flower process starts)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl

import pytest

pytest.importorskip("cryptography")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from fedtutor.course import certs, classroom  # noqa: E402
from fedtutor.course.classroom import ClassroomError  # noqa: E402


@pytest.fixture(scope="module")
def ca():
    return certs.make_ca()


def sans(cert_pem: bytes) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n) for n in names.get_values_for_type(x509.IPAddress)} | set(names.get_values_for_type(x509.DNSName))


def test_ca_is_a_short_lived_ca(ca):
    cert = x509.load_pem_x509_certificate(ca[0])
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    now = dt.datetime.now(dt.timezone.utc)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - now <= dt.timedelta(days=2, minutes=1)  # lives for the session only
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_server_cert_names_every_host_and_chains_to_the_ca(ca):
    cert_pem, key_pem = certs.make_server_cert(ca[0], ca[1], ["10.99.0.1", "teacher.local", "10.99.0.1"])
    assert sans(cert_pem) == {"10.99.0.1", "teacher.local"}  # IP as an IP SAN, name as a DNS SAN, no duplicates
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.issuer == x509.load_pem_x509_certificate(ca[0]).subject
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    now = dt.datetime.now(dt.timezone.utc)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert b"PRIVATE KEY" in key_pem


def test_fingerprint_is_the_sha256_of_the_certificate(ca):
    other = certs.make_ca()[0]
    assert len(certs.fingerprint(ca[0])) == 64
    assert certs.fingerprint(ca[0]) == certs.fingerprint(ca[0])
    assert certs.fingerprint(ca[0]) != certs.fingerprint(other)


def test_student_keys_and_codes_round_trip(ca):
    private, public = certs.make_student_key()
    private2, public2 = certs.make_student_key()
    assert public != public2 and private != private2
    assert b"OPENSSH PRIVATE KEY" in private and b"BEGIN PUBLIC KEY" in public
    assert certs.public_key_pem(private) == public
    code = certs.student_code(7, private, ca[0])
    assert " " not in code and "\n" not in code
    parsed = certs.parse_code(code)
    assert parsed.number == 7
    assert certs.public_key_pem(parsed.private_key) == public  # the same key comes back
    assert certs.fingerprint(ca[0]).startswith(parsed.ca_fingerprint)
    again = certs.parse_code(f"  {code}\n")  # pasted with whitespace
    assert (again.number, again.ca_fingerprint) == (parsed.number, parsed.ca_fingerprint)
    assert certs.public_key_pem(again.private_key) == public


def _tamper(code: str) -> list[str]:
    number, key, fp = code.split(".")
    return [
        "",
        code[:-1],  # last character lost
        f"{number}.{key}",  # a part missing
        f"{number}.{key}.{fp}.x",  # a part too many
        f"0.{key}.{fp}",  # number 0
        f"x{number}.{key}.{fp}",  # not a number
        f"{number}.{key[:-4]}.{fp}",  # key truncated
        f"{number}.{key}AAAA.{fp}",  # key too long
        f"{number}.{key[:10]}!{key[11:]}.{fp}",  # not base64
        f"{number}.{key}.{fp.upper()}",  # fingerprint case changed
        f"{number}.{key}.{fp[:-1]}z",  # fingerprint not hex
    ]


def test_damaged_codes_are_refused_with_one_line(ca):
    code = certs.student_code(3, certs.make_student_key()[0], ca[0])
    for bad in _tamper(code):
        with pytest.raises(ValueError) as err:
            certs.parse_code(bad)
        message = str(err.value)
        assert "\n" not in message and len(message) < 160, message
        assert "code" in message or "number" in message, message
    # the command-line helper turns it into a ClassroomError naming the problem
    with pytest.raises(ClassroomError, match="your code is not valid"):
        classroom.student_from(None, code[:-1])
    with pytest.raises(ClassroomError, match="enrolment code"):
        classroom.student_from(None, None)


def test_a_changed_key_character_gives_another_key_not_a_crash(ca):
    # a single flipped base64 character still decodes to 48 bytes: the key differs, so the SuperLink
    # refuses it (tested in test_classroom_federation); here only that it is not the enrolled key
    private, public = certs.make_student_key()
    number, key, fp = certs.student_code(1, private, ca[0]).split(".")
    flipped = key[:5] + ("A" if key[5] != "A" else "B") + key[6:]
    assert certs.public_key_pem(certs.parse_code(f"{number}.{flipped}.{fp}").private_key) != public


# ----------------------------------------------------------------------------- preflight


def _gateway(tmp_path, hosts: list[str]) -> classroom.Gateway:
    ca_cert, ca_key = certs.make_ca()
    cert, key = certs.make_server_cert(ca_cert, ca_key, hosts)
    for name, content in {"ca.pem": ca_cert, "server.pem": cert, "server.key": key}.items():
        (tmp_path / name).write_bytes(content)
    info = {"ca_cert": ca_cert.decode(), "students": 2, "partition": "iid", **classroom.versions()}
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    gateway = classroom.Gateway("127.0.0.1", port, 1, tmp_path, {}, info)
    gateway.start()
    return gateway


def test_preflight_accepts_the_right_server(tmp_path):
    gateway = _gateway(tmp_path, ["127.0.0.1"])
    try:
        fp = certs.fingerprint((tmp_path / "ca.pem").read_bytes())[:16]
        info = classroom.preflight("127.0.0.1", gateway.port, fp)
        assert info["students"] == 2 and abs(info["skew_s"]) < 5
    finally:
        gateway.close()


def test_preflight_refuses_a_certificate_for_another_host(tmp_path):
    gateway = _gateway(tmp_path, ["10.99.0.1", "teacher.local"])  # not 127.0.0.1
    try:
        fp = certs.fingerprint((tmp_path / "ca.pem").read_bytes())[:16]
        with pytest.raises(ClassroomError, match="not valid for '127.0.0.1'") as err:
            classroom.preflight("127.0.0.1", gateway.port, fp)
        assert "\n" not in str(err.value)
    finally:
        gateway.close()


def test_preflight_refuses_another_classrooms_ca(tmp_path):
    gateway = _gateway(tmp_path, ["127.0.0.1"])
    try:
        wrong = certs.fingerprint(certs.make_ca()[0])[:16]
        with pytest.raises(ClassroomError, match="not the classroom your code is for"):
            classroom.preflight("127.0.0.1", gateway.port, wrong)
    finally:
        gateway.close()


def test_preflight_refuses_an_unreachable_port_and_a_plain_server():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(ClassroomError, match="cannot reach 127.0.0.1:.*connection refused") as err:
        classroom.preflight("127.0.0.1", port)
    assert "\n" not in str(err.value)
    # a listener that accepts and closes without TLS: reachable, but not a classroom
    with socket.create_server(("127.0.0.1", 0)) as plain:
        plain.settimeout(5)
        port = plain.getsockname()[1]
        import threading

        def close_all():
            for _ in range(2):
                try:
                    conn, _ = plain.accept()
                    conn.close()
                except OSError:
                    return

        threading.Thread(target=close_all, daemon=True).start()
        with pytest.raises(ClassroomError, match="not a fedtutor classroom over TLS"):
            classroom.preflight("127.0.0.1", port)


def test_preflight_refuses_skewed_clock_and_other_versions(tmp_path, monkeypatch):
    gateway = _gateway(tmp_path, ["127.0.0.1"])
    try:
        gateway.clock = lambda: classroom.time.time() + 3600  # the student's clock is 1 h behind
        with pytest.raises(ClassroomError, match="clock is 3[56]\\d\\d s behind"):
            classroom.preflight("127.0.0.1", gateway.port)
        gateway.clock = lambda: classroom.time.time() - 600
        with pytest.raises(ClassroomError, match="clock is [56]\\d\\d s ahead of"):
            classroom.preflight("127.0.0.1", gateway.port)
        gateway.clock = classroom.time.time
        monkeypatch.setattr(classroom, "versions", lambda: {"fedtutor": "0.0.1", "flower": "1.0.0"})
        with pytest.raises(ClassroomError, match="the server runs fedtutor .* but you have 0.0.1"):
            classroom.preflight("127.0.0.1", gateway.port)
    finally:
        gateway.close()


def test_gateway_refuses_plaintext_and_non_fleet_requests(tmp_path):
    gateway = _gateway(tmp_path, ["127.0.0.1"])
    try:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as plain:
            plain.sendall(b"POST /v1/fleet/create-node HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            try:
                answer = plain.recv(4096)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"HTTP/")  # a failed handshake, never an HTTP answer
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with (
            socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            conn.sendall(b"POST /flwr.proto.Control/StartRun HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            assert conn.recv(4096).startswith(b"HTTP/1.1 403")
        deadline = classroom.time.monotonic() + 5
        while len(gateway.stats.refused) < 2 and classroom.time.monotonic() < deadline:
            classroom.time.sleep(0.05)
        assert gateway.stats.refused.get("no TLS / bad handshake") == 1
        assert any(why.startswith("not the Fleet API") for why in gateway.stats.refused)
    finally:
        gateway.close()


def test_student_codes_in_a_join_file(tmp_path, ca):
    private, _ = certs.make_student_key()
    code = certs.student_code(2, private, ca[0])
    (tmp_path / "j.json").write_text(
        classroom.json.dumps({"code": code, "ca_cert": ca[0].decode(), "address": "10.99.0.1:9200"})
    )
    number, key, fp, ca_text, address = classroom.student_from(tmp_path / "j.json", None)
    assert (number, address, ca_text) == (2, "10.99.0.1:9200", ca[0].decode())
    assert certs.public_key_pem(key) == certs.public_key_pem(private) and fp
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ClassroomError, match="cannot read the join file"):
        classroom.student_from(tmp_path / "bad.json", None)
