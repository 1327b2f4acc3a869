"""``fedtutor classroom``: the instructor's Flower server and the students' laptops as its clients.

``fedtutor classroom serve --host ADDR --students N`` (the instructor):

1. makes a CA for the session and a server certificate for ADDR (``fedtutor.course.certs``), and one
   key pair per student; writes ``student-K.json`` join files and ``codes.txt`` (one line each);
2. starts a ``flower-superlink`` on 127.0.0.1 only, with TLS and ``--enable-supernode-auth``,
   and enrols the students' public keys through its Control API;
3. starts the **gateway** on ADDR: it speaks TLS with the session's certificate and forwards only
   the Fleet API (``/v1/fleet/...``, what SuperNodes use) to the SuperLink. Flower 1.42 serves its
   Control API (submit runs, enrol SuperNodes) on the same port without authentication in the
   open-source edition, so exposing the SuperLink itself would let anyone on the network enrol
   their own key or run code on the instructor's machine. The gateway also answers
   ``GET /classroom/info`` (CA certificate, versions, server clock) for the students' checks;
4. waits for the students, submits the course's ServerApp (``fedtutor.flower:server_app``) with
   ``flwr run``, and prints a live view: who is connected, who contributed to each round,
   accuracy, bytes per round, refused connections.

``fedtutor classroom join ADDR --code CODE`` (a student): checks the connection first (address
reachable, TLS certificate valid for ADDR and from the expected CA, clock skew, fedtutor and
Flower versions) and says in one line what is wrong, then starts a ``flower-supernode`` that
signs its requests with the student's key and trains on shard K-1 of the data.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # fedtutor.flower imports torch: loaded only when a classroom really starts
    from fedtutor.flower import DeploymentConfig

MAX_BODY = 256 * 2**20  # the largest request the gateway forwards (a CNN update is ~7 MB)
SEEN_S = 10.0  # a SuperNode polls at least every 3 s; silent longer than this = not connected
MAX_SKEW_S = 120.0  # Flower rejects signatures more than 300 s old; warn well before
FLEET_PREFIX = "/v1/fleet/"
INFO_PATH = "/classroom/info"
KEY_HEADER = "flwr-public-key"  # base64 of the SuperNode's public key (PEM), set by Flower on Fleet requests


class ClassroomError(RuntimeError):
    """Something a person must fix; the message says what, in one line."""


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import fedtutor

    return {"fedtutor": fedtutor.__version__, "flower": version("flwr")}


# ----------------------------------------------------------------------------- the gateway


@dataclass
class Seen:
    """What the gateway knows about one student's SuperNode."""

    last: float = 0.0  # time.monotonic() of the last request
    up: int = 0  # bytes received from the student (requests)
    down: int = 0  # bytes sent to the student (responses)


@dataclass
class GatewayStats:
    students: dict[int, Seen] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refuse(self, reason: str) -> None:
        with self.lock:
            self.refused[reason] = self.refused.get(reason, 0) + 1

    def connected(self, now: float | None = None) -> list[int]:
        now = time.monotonic() if now is None else now
        with self.lock:
            return sorted(k for k, s in self.students.items() if now - s.last < SEEN_S)


class Gateway:
    """TLS on ``host:port``; forwards only Fleet API requests to the SuperLink on 127.0.0.1."""

    def __init__(self, host: str, port: int, upstream_port: int, folder: Path, keys: dict[str, int], info: dict):
        self.host, self.port, self.upstream_port = host, port, upstream_port
        self.keys = keys  # base64(public key PEM) -> student number
        self.info = json.dumps(info).encode()
        self.stats = GatewayStats()
        self.server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_tls.load_cert_chain(folder / "server.pem", folder / "server.key")
        self.upstream_tls = ssl.create_default_context(cafile=str(folder / "ca.pem"))
        self.listener = socket.create_server((host, port), reuse_port=False)
        self.thread = threading.Thread(target=self._serve, name="classroom-gateway", daemon=True)
        self._closed = False
        self.clock: Callable[[], float] = time.time  # the server's clock, as students' preflight sees it

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.close()

    def _serve(self) -> None:
        while not self._closed:
            try:
                sock, address = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(sock, address), daemon=True).start()

    def _handle(self, sock: socket.socket, address) -> None:
        sock.settimeout(30)
        try:
            conn = self.server_tls.wrap_socket(sock, server_side=True)
        except ssl.SSLError as err:
            if not isinstance(err, ssl.SSLEOFError):  # EOF: a bare reachability check, not a refusal
                self.stats.refuse("no TLS / bad handshake")  # plaintext clients end here
            sock.close()
            return
        except OSError:
            sock.close()
            return
        with conn, contextlib.suppress(OSError, ValueError):  # a dropped connection: the SuperNode retries
            self._forward(conn)

    def _forward(self, conn: ssl.SSLSocket) -> None:
        head, body = _read_request(conn)
        if head is None:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = [line.split(":", 1) for line in lines[1:] if ":" in line]
        values = {name.strip().lower(): value.strip() for name, value in headers}
        if method == "GET" and path == INFO_PATH:
            info = json.loads(self.info)
            info["time"] = self.clock()
            _respond(conn, 200, json.dumps(info).encode(), "application/json")
            return
        if not path.startswith(FLEET_PREFIX):
            self.stats.refuse(f"not the Fleet API ({path.split('?')[0][:40]})")
            _respond(conn, 403, b"only the Fleet API is served here\n")
            return
        if "transfer-encoding" in values:
            _respond(conn, 411, b"Content-Length required\n")
            return
        length = int(values.get("content-length", "0"))
        if length > MAX_BODY:
            _respond(conn, 413, b"request too large\n")
            return
        body += _read_exactly(conn, length - len(body))
        student = self.keys.get(values.get(KEY_HEADER, ""))
        kept = [f"{n}:{v}" for n, v in headers if n.strip().lower() not in ("connection", "keep-alive")]
        request = "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1") + body
        up = len(request)
        down, status = 0, 0
        raw = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=120)
        with self.upstream_tls.wrap_socket(raw, server_hostname="127.0.0.1") as upstream:
            upstream.sendall(request)
            while chunk := upstream.recv(1 << 16):
                if not status:
                    status = int(chunk.split(b" ", 2)[1])
                    if student is None and status >= 400:  # counted before the refused client can see it
                        self.stats.refuse("key not enrolled")
                conn.sendall(chunk)
                down += len(chunk)
        if student is None:
            return
        with self.stats.lock:
            seen = self.stats.students.setdefault(student, Seen())
            seen.last, seen.up, seen.down = time.monotonic(), seen.up + up, seen.down + down


def _read_request(conn: ssl.SSLSocket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(1 << 16)
        if not chunk or len(data) > 1 << 16:
            return None, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def _read_exactly(conn: ssl.SSLSocket, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            raise ValueError("connection closed mid-request")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _respond(conn: ssl.SSLSocket, status: int, body: bytes, kind: str = "text/plain") -> None:
    reason = {200: "OK", 403: "Forbidden", 411: "Length Required", 413: "Payload Too Large"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
    head += "Connection: close\r\n\r\n"
    conn.sendall(head.encode() + body)


# ----------------------------------------------------------------------------- the instructor's side


class Classroom:
    """The instructor's server: SuperLink (TLS + SuperNode auth) on loopback, the gateway on ``host:port``.

    A context manager: leaving it stops every process it started.
    """

    def __init__(
        self,
        config: DeploymentConfig,
        host: str,
        port: int,
        folder: Path,
        echo: Callable[[str], None] = print,
        data_folder: Path | None = None,
        extra_names: Iterable[str] = (),
    ) -> None:
        from fedtutor.course.launcher import Deployment, free_port_block

        self.host, self.port, self.folder, self.echo = host, port, folder, echo
        self.names = [host, *extra_names, "127.0.0.1", "localhost"]
        internal = free_port_block(1, start=port + 1)  # the SuperLink's own port, loopback only
        self.config = replace(config, host="127.0.0.1", port=internal)
        self.deployment = Deployment(self.config, folder, echo, data_folder)  # processes, progress, stop()
        self.gateway: Gateway | None = None
        self.keys: dict[str, int] = {}

    # -- files for the session
    def prepare(self) -> list[Path]:
        """Certificates, one key and join file per student, codes.txt. Returns the join files."""
        from fedtutor.course import certs

        self.folder.mkdir(parents=True, exist_ok=True)
        ca, ca_key = certs.make_ca()
        cert, key = certs.make_server_cert(ca, ca_key, self.names)
        for name, content in {"ca.pem": ca, "ca.key": ca_key, "server.pem": cert, "server.key": key}.items():
            _write_private(self.folder / name, content)
        joins, codes = [], []
        for k in range(1, self.config.clients + 1):
            private, public = certs.make_student_key()
            self.keys[base64.b64encode(public).decode()] = k
            code = certs.student_code(k, private, ca)
            join = {"address": f"{self.host}:{self.port}", "student": k, "students": self.config.clients}
            join |= {"code": code, "ca_cert": ca.decode(), **versions()}
            path = self.folder / f"student-{k}.json"
            _write_private(path, json.dumps(join, indent=1).encode())
            joins.append(path)
            codes.append(f"student {k}: fedtutor classroom join {self.host}:{self.port} --code {code}")
        _write_private(self.folder / "codes.txt", ("\n".join(codes) + "\n").encode())
        self._write_app()
        return joins

    def _write_app(self) -> None:
        from fedtutor.course.launcher import APP_PYPROJECT

        app = self.folder / "app"
        app.mkdir(exist_ok=True)
        run_config = {**self.config.to_run_config(), "progress-file": str(self.deployment.progress)}
        lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in run_config.items())
        apps = {"serverapp": "fedtutor.flower:server_app", "clientapp": "fedtutor.flower:client_app"}
        (app / "pyproject.toml").write_text(APP_PYPROJECT.format(config=lines, **apps), encoding="utf-8")
        home = self.folder / "flwr-home"
        home.mkdir(exist_ok=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "fedtutor"\n\n[superlink.fedtutor]\n'
            f'address = "127.0.0.1:{self.config.port}"\nroot-certificates = "{self.folder / "ca.pem"}"\n',
            encoding="utf-8",
        )

    # -- processes
    def start(self) -> None:
        f, c = self.folder, self.config
        command = ["flower-superlink", "--ssl-ca-certfile", f / "ca.pem", "--ssl-certfile", f / "server.pem"]
        command += ["--ssl-keyfile", f / "server.key", "--enable-supernode-auth"]
        command += ["--disable-runtime-dependency-installation", "--host", "127.0.0.1", "--port", str(c.port)]
        from fedtutor.course.launcher import start_forkserver

        self.deployment.forkserver, self.deployment.env = start_forkserver(f, self.deployment.env)
        self.deployment.superlink = self.deployment._spawn("superlink", [str(a) for a in command])
        self.deployment._wait_for_port("127.0.0.1", c.port, timeout=60.0)
        self._enrol()
        info = {"ca_cert": (f / "ca.pem").read_text(), "students": c.clients, "partition": c.partition, **versions()}
        self.gateway = Gateway(self.host, self.port, c.port, f, self.keys, info)
        self.gateway.start()

    def _control(self):
        """Flower's Control API client, for enrolling keys (the same call as ``flwr supernode register``)."""
        os.environ.setdefault("FLWR_HOME", str(self.folder / "flwr-home"))
        from flwr.cli.typing import SuperLinkConnection
        from flwr.cli.utils import init_http_client_from_connection

        connection = SuperLinkConnection(
            name="fedtutor", address=f"127.0.0.1:{self.config.port}", root_certificates=str(self.folder / "ca.pem")
        )
        with contextlib.redirect_stdout(None):  # it prints "Using SuperLink: ..."
            return init_http_client_from_connection(connection)

    def _enrol(self) -> None:
        from flwr.proto.control_pb2 import RegisterNodeRequest

        client = self._control()
        try:
            for key, k in self.keys.items():
                client.RegisterNode(request=RegisterNodeRequest(public_key=base64.b64decode(key), name=f"student-{k}"))
        finally:
            client.close()

    def wait_for_students(self, timeout: float, want: int | None = None) -> list[int]:
        """Block until ``want`` students (default: all) are connected, or ``timeout`` s; print who arrives."""
        assert self.gateway is not None
        want = want or self.config.clients
        deadline, shown = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            self.deployment._check_alive()
            here = self.gateway.stats.connected()
            if here != shown:
                self.echo(f"connected: {len(here)}/{self.config.clients} students {_names(here)}")
                shown = here
            if len(here) >= want:
                break
            time.sleep(0.5)
        return self.gateway.stats.connected()

    def submit(self) -> None:
        """``flwr run``: the SuperLink starts the course's ServerApp, which begins round 1."""
        from fedtutor.course.launcher import submit_app

        submit_app(["flwr", "run", str(self.folder / "app"), "fedtutor"], self.deployment.env, self.folder)

    def rounds(self, timeout: float) -> Iterable[dict]:
        """The ServerApp's round records, each with the gateway's view added (connected, refused)."""
        for record in self.deployment.events(timeout):
            assert self.gateway is not None
            record["connected"] = self.gateway.stats.connected()
            record["students"] = [p + 1 for p in record["clients"]]  # partition k-1 is student k
            record["refused"] = dict(self.gateway.stats.refused)
            yield record

    def describe(self, record: dict) -> str:
        lost = [p + 1 for p in record["dropped"]]
        refused = ", ".join(f"{n} {why}" for why, n in record["refused"].items()) or "none"
        return (
            f"round {record['round']}/{self.config.rounds}: accuracy {record['test_acc']:.2%}, "
            f"contributed {_names(record['students'])}"
            + (f", lost {_names(lost) if lost else record['lost']}" if record["lost"] else "")
            + f", {record['bytes_down'] / 1e6:.2f} MB sent / {record['bytes_up'] / 1e6:.2f} MB received"
            + f"; connected now {_names(record['connected'])}; refused so far: {refused}"
        )

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.close()
        self.deployment.stop()

    def pids(self) -> list[int]:
        from fedtutor.course.launcher import run_processes

        return sorted(p.pid for p in run_processes(self.deployment.token))

    def __enter__(self) -> Classroom:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class LiveView:
    """The instructor's live view in a notebook: a table and a figure, redrawn after every round.

    Call ``update(record)`` with each record of ``Classroom.rounds``. The table has one row per
    round (accuracy, who contributed, who was lost, MB sent and received, who is connected,
    refused connections) and one row per student (rounds contributed, bytes through the gateway);
    the figure plots accuracy and MB per round. Outside a notebook it prints ``describe``'s line.
    """

    def __init__(self, room: Classroom) -> None:
        from fedtutor.widgets import in_jupyter

        self.room, self.records = room, []
        self.handles = None
        if in_jupyter():
            from IPython.display import HTML, display

            self.handles = (display(HTML(self.html()), display_id=True), display(HTML(""), display_id=True))

    def update(self, record: dict) -> None:
        self.records.append(record)
        if self.handles is None:
            self.room.echo(self.room.describe(record))
            return
        import matplotlib.pyplot as plt
        from IPython.display import HTML

        table, figure = self.handles
        table.update(HTML(self.html()))
        fig = self.figure()
        figure.update(fig)
        plt.close(fig)  # the inline backend must not show it a second time

    def students(self) -> list[dict]:
        """Per enrolled student: connected now, rounds contributed, bytes up/down through the gateway."""
        assert self.room.gateway is not None
        stats, here = self.room.gateway.stats, set(self.room.gateway.stats.connected())
        rows = []
        for k in range(1, self.room.config.clients + 1):
            seen = stats.students.get(k, Seen())
            rounds = [r["round"] for r in self.records if k in r["students"]]
            rows.append({"student": k, "connected": k in here, "rounds": rounds, "up": seen.up, "down": seen.down})
        return rows

    def html(self) -> str:
        head = "<tr><th>round</th><th>accuracy</th><th>contributed</th><th>lost</th><th>MB sent</th>"
        head += "<th>MB received</th><th>connected</th><th>refused so far</th></tr>"
        rows = []
        for r in self.records:
            lost = _names(p + 1 for p in r["dropped"]) if r["dropped"] else (str(r["lost"]) if r["lost"] else "")
            refused = ", ".join(f"{n} {why}" for why, n in r["refused"].items()) or "none"
            cells = [r["round"], f"{r['test_acc']:.2%}", _names(r["students"]), lost, f"{r['bytes_down'] / 1e6:.2f}",
                     f"{r['bytes_up'] / 1e6:.2f}", _names(r["connected"]), html.escape(refused)]  # fmt: skip
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        people = "".join(
            f"<tr><td>student {s['student']}</td><td>{'connected' if s['connected'] else 'away'}</td>"
            f"<td>rounds {_names(s['rounds'])}</td><td>{s['up'] / 1e6:.2f} MB up</td>"
            f"<td>{s['down'] / 1e6:.2f} MB down</td></tr>"
            for s in (self.students() if self.room.gateway else [])
        )
        waiting = "" if self.records else "<p>waiting for round 1 ...</p>"
        return f"<table>{head}{''.join(rows)}</table>{waiting}<table>{people}</table>"

    def figure(self):
        import matplotlib.pyplot as plt

        rounds = [r["round"] for r in self.records]
        fig, (acc, mb) = plt.subplots(1, 2, figsize=(9, 3))
        acc.plot(rounds, [100 * r["test_acc"] for r in self.records], "o-")
        acc.set(xlabel="round", ylabel="test accuracy (%)", title="accuracy of the global model", xticks=rounds)
        acc.set_ylim(0, 100)
        width = 0.4
        mb.bar([t - width / 2 for t in rounds], [r["bytes_down"] / 1e6 for r in self.records], width, label="sent")
        mb.bar([t + width / 2 for t in rounds], [r["bytes_up"] / 1e6 for r in self.records], width, label="received")
        for r in self.records:
            mb.annotate(_names(r["students"]), (r["round"], r["bytes_down"] / 1e6), ha="center", va="bottom", size=8)
        mb.set(xlabel="round", ylabel="MB", title="model traffic per round (students above)", xticks=rounds)
        mb.set_ylim(0, 1.6 * max([r["bytes_down"] / 1e6 for r in self.records], default=1))
        mb.legend(loc="upper right", ncol=2)
        fig.tight_layout()
        return fig


def _names(students: Iterable[int]) -> str:
    listed = ", ".join(str(k) for k in students)
    return f"[{listed}]" if listed else "[none]"


def _write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner can read (keys, codes); never replace an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)


def session_folder(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3`` ...: a new session never overwrites an old one's keys."""
    candidate, n = base, 2
    while candidate.exists() and any(candidate.iterdir()):
        candidate, n = base.with_name(f"{base.name}-{n}"), n + 1
    return candidate


# ----------------------------------------------------------------------------- the student's side


def split_address(address: str, default_port: int = 9200) -> tuple[str, int]:
    host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
    if not port:
        return address, default_port
    if not port.isdigit():
        raise ClassroomError(f"{address!r} is not HOST or HOST:PORT (the port must be a number).")
    return host, int(port)


def preflight(host: str, port: int, ca_fingerprint: str | None = None, ca_cert: str | None = None) -> dict:
    """Check the connection before starting a SuperNode; ``ClassroomError`` says what is wrong in one line.

    Reachable, speaks TLS, its CA is the expected one (by fingerprint, or the join file's certificate),
    the certificate is valid for ``host``, the clocks agree, and the versions match. Returns the
    server's info (CA certificate, number of students, versions).
    """
    from fedtutor.course import certs

    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as err:
        why = "connection refused" if isinstance(err, ConnectionRefusedError) else str(err) or type(err).__name__
        raise ClassroomError(
            f"cannot reach {host}:{port} ({why}): is the instructor's server running, are you on the same "
            f"network, and does no firewall block TCP port {port}?"
        ) from None
    try:  # first without checking the certificate, only to fetch the CA and compare fingerprints
        info = _get_info(host, port, ssl._create_unverified_context())  # noqa: S323 - checked just below
    except (ssl.SSLError, OSError, ValueError) as err:
        raise ClassroomError(f"{host}:{port} answers but is not a fedtutor classroom over TLS ({err}).") from None
    ca = ca_cert or info["ca_cert"]
    if ca_fingerprint and not certs.fingerprint(ca.encode()).startswith(ca_fingerprint):
        raise ClassroomError(
            f"the server at {host}:{port} is not the classroom your code is for (its certificate authority differs): "
            "check the address, or ask for a new code."
        )
    verified = ssl.create_default_context(cadata=ca)
    t0 = time.time()
    try:
        info = _get_info(host, port, verified)
    except ssl.SSLCertVerificationError as err:
        raise ClassroomError(
            f"the server's certificate is not valid for {host!r} ({err.verify_message}): "
            "use exactly the address the instructor gave."
        ) from None
    t1 = time.time()
    skew = info["time"] - (t0 + t1) / 2
    if abs(skew) > MAX_SKEW_S:
        raise ClassroomError(
            f"your clock is {abs(skew):.0f} s {'behind' if skew > 0 else 'ahead of'} the server's; "
            "turn on automatic date and time, then try again (signed requests expire)."
        )
    mine = versions()
    for name in ("fedtutor", "flower"):
        if info[name] != mine[name]:
            raise ClassroomError(
                f"the server runs {name} {info[name]} but you have {mine[name]}: "
                f'install the same version (pip install "{"flwr" if name == "flower" else name}=={info[name]}").'
            )
    info["skew_s"] = skew
    return info


def _get_info(host: str, port: int, context: ssl.SSLContext) -> dict:
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as conn,
    ):
        conn.sendall(f"GET {INFO_PATH} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(head.split(b"\r\n")[0].decode("latin-1", "replace") or "no answer")
    return json.loads(body)


class Student:
    """One student's SuperNode, connected to the classroom over TLS and signing with the student's key."""

    def __init__(self, host: str, port: int, number: int, students: int, private_key: bytes, ca_cert: str,
                 folder: Path, data_folder: Path | None = None) -> None:  # fmt: skip
        self.host, self.port, self.number, self.students = host, port, number, students
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key_path, self.ca_path = folder / f"student-{number}.key", folder / "classroom-ca.pem"
        self.key_path.unlink(missing_ok=True)
        _write_private(self.key_path, private_key)
        self.ca_path.write_text(ca_cert)
        # Every process of this SuperNode (and the SuperExec and ClientApps it starts) inherits the
        # token, so stop() finds them all, whoever their parent is by then.
        from fedtutor.course.launcher import flower_environment

        self.token = uuid.uuid4().hex
        self.env = flower_environment(folder / "flwr-home", data_folder, self.token)
        self.process: subprocess.Popen | None = None
        self.forkserver: subprocess.Popen | None = None  # its own, not a shared one
        self.log = folder / f"student-{number}.log"
        self._seen: dict[int, object] = {}

    def command(self, local_port: int) -> list[str]:
        if not 1 <= self.number <= self.students:
            raise ClassroomError(f"student number {self.number} is not in 1..{self.students} for this classroom.")
        return [
            *("flower-supernode", "--root-certificates", str(self.ca_path)),
            *("--superlink", f"{self.host}:{self.port}", "--auth-supernode-private-key", str(self.key_path)),
            *("--node-config", f"partition-id={self.number - 1} num-partitions={self.students}"),
            *("--host", "127.0.0.1", "--port", str(local_port)),
        ]

    def start(self, share_forkserver: Classroom | None = None) -> None:
        """Start the SuperNode. ``share_forkserver``: a classroom on this same machine whose fork server
        (``forkserver``) the student's ClientApps may use, instead of starting one of its own."""
        from fedtutor.course import forkserver
        from fedtutor.course.launcher import child_options, start_forkserver

        with socket.create_server(("127.0.0.1", 0)) as probe:  # a port the OS says is free right now
            local_port = probe.getsockname()[1]
        command = self.command(local_port)
        if share_forkserver is not None and share_forkserver.deployment.forkserver is not None:
            self.env = forkserver.use(share_forkserver.deployment.env, self.env)
        else:  # stop() ends it with the rest: it carries the token
            self.forkserver, self.env = start_forkserver(self.folder, self.env)
        with open(self.log, "wb") as log:
            options = child_options()  # its own session; on Linux it dies with this process
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env, **options)

    def status(self) -> str:
        """``running``, ``connected`` (the SuperLink accepted the key), or why it stopped."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        assert self.process is not None
        self.remember()
        if self.process.poll() is not None:
            if "Failed to activate SuperNode" in text:
                return "refused: the server does not know this key (not enrolled, or a code from another session)"
            return f"stopped with status {self.process.returncode}; see {self.log}"
        return "connected" if "SuperNode ID:" in text else "running"

    def wait_connected(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while (status := self.status()) == "running" and time.monotonic() < deadline:
            time.sleep(0.3)
        return status

    def remember(self) -> None:
        import psutil

        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.process.pid)
                for proc in [root, *root.children(recursive=True)]:
                    self._seen.setdefault(proc.pid, proc)

    def stop(self) -> None:
        import psutil

        from fedtutor.course import forkserver
        from fedtutor.course.launcher import kill_survivors, run_processes

        self.remember()
        procs = list({p.pid: p for p in [*self._seen.values(), *run_processes(self.token)] if p.is_running()}.values())
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        kill_survivors(procs, grace=5)
        if self.forkserver is not None:
            forkserver.remove_socket(self.env)
        if self.process is not None:
            with contextlib.suppress(Exception):
                self.process.wait(timeout=5)

    def pids(self) -> list[int]:
        return sorted(self._seen)


def student_from(join_file: Path | None, code: str | None) -> tuple[int, bytes, str | None, str | None, str | None]:
    """(number, private key, CA fingerprint, CA certificate, address) from a join file or a code."""
    from fedtutor.course import certs

    if join_file is not None:
        try:
            join = json.loads(Path(join_file).read_text())
            code, ca, address = join["code"], join["ca_cert"], join["address"]
        except (OSError, ValueError, KeyError) as err:
            raise ClassroomError(f"cannot read the join file {join_file}: {err}") from None
    elif code is not None:
        ca = address = None
    else:
        raise ClassroomError("give your enrolment code (--code ...) or the join file (--join-file student-K.json).")
    try:
        parsed = certs.parse_code(code)
    except ValueError as err:
        raise ClassroomError(f"your code is not valid: {err}") from None
    return parsed.number, parsed.private_key, parsed.ca_fingerprint, ca, address


# ----------------------------------------------------------------------------- doctor


def check_classroom(port: int = 9200):
    """``fedtutor doctor``: can this machine take part in a classroom (Flower, TLS, a free port, firewall)?"""
    from fedtutor.course.doctor import Check

    try:
        import cryptography  # noqa: F401
        import flwr  # noqa: F401
    except ImportError as err:
        return Check("classroom", False, f"{err.name} missing", 'pip install "fedtutor[flower]"', required=False)
    try:
        with socket.create_server(("0.0.0.0", port)):
            pass
    except OSError:
        return Check(
            "classroom", False, f"port {port} is in use here", f"serve on another: --port {port + 10}", required=False
        )
    if sys.platform == "win32":
        hint = "Windows asks once to allow Python through the firewall: answer yes for private networks"
    elif sys.platform == "darwin":
        hint = "macOS may ask to accept incoming connections for Python: allow it"
    else:
        hint = f"if students cannot connect, open TCP {port} (e.g. sudo ufw allow {port}/tcp)"
    return Check("classroom", True, f"Flower + TLS ready, port {port} free; {hint}", required=False)


# ----------------------------------------------------------------------------- command line


def serve(args: argparse.Namespace) -> int:
    from fedtutor.flower import DeploymentConfig, DeploymentError

    try:
        config = DeploymentConfig(
            clients=args.students,
            rounds=args.rounds,
            partition=args.partition,
            min_clients=args.min_clients,
            straggler_timeout=args.straggler_timeout,
            seed=args.seed,
        )
    except ValueError as err:
        print(f"fedtutor classroom serve: {err}", file=sys.stderr)
        return 2
    folder = session_folder(Path(args.dir))
    echo = lambda line: print(line, flush=True)  # noqa: E731
    try:
        with Classroom(config, args.host, args.port, folder, echo, extra_names=args.name or ()) as room:
            joins = room.prepare()
            room.start()
            echo(f"classroom on {args.host}:{args.port} (TLS, enrolled students only); files in {folder}")
            echo(f"give each student their join file ({joins[0].name} ...) or their line of {folder / 'codes.txt'}:")
            echo((folder / "codes.txt").read_text().rstrip())
            here = room.wait_for_students(args.wait)
            if len(here) < config.min_clients:
                echo(f"only {len(here)} student(s) after {args.wait:g} s (need {config.min_clients}); stopping")
                return 1
            echo(f"starting {config.rounds} rounds with students {_names(here)}")
            room.submit()
            for record in room.rounds(timeout=120 + config.rounds * (60 + config.straggler_timeout)):
                echo(room.describe(record))
        echo("done; every process stopped")
        return 0
    except (ClassroomError, DeploymentError, OSError) as err:
        print(f"fedtutor classroom serve: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nfedtutor classroom serve: interrupted; every process stopped.", file=sys.stderr)
        return 130


def join(args: argparse.Namespace) -> int:
    from fedtutor.course.launcher import raise_on_signals, restore_handlers

    try:
        number, key, fp, ca, address = student_from(Path(args.join_file) if args.join_file else None, args.code)
        host, port = split_address(args.address or address or "", args.port)
        if not host:
            raise ClassroomError("give the server's address: fedtutor classroom join HOST[:PORT] --code ...")
        info = preflight(host, port, fp, ca)
        skew = abs(info["skew_s"])
        print(f"ok: {host}:{port} reachable, certificate valid, clock within {skew:.1f} s, versions match")
        folder = Path(args.dir or tempfile.mkdtemp(prefix="fedtutor-student-"))
        student = Student(host, port, number, int(info["students"]), key, info["ca_cert"], folder)
        # The first Ctrl-C, SIGTERM or SIGHUP leaves the loop below; later ones (a terminal, or
        # `timeout`, passes them on again) are ignored so that they cannot cut the clean-up short.
        previous = raise_on_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
        try:
            student.start()
            status = student.wait_connected(timeout=120)
            if not status.startswith("connected"):
                raise ClassroomError(status)
            print(f"student {number}: connected; training on shard {number} of {student.students} when rounds come")
            while (status := student.status()) in ("connected", "running"):
                time.sleep(1)
            raise ClassroomError(status)
        finally:
            try:
                student.stop()
            finally:
                restore_handlers(previous)
                if not args.dir:
                    shutil.rmtree(folder, ignore_errors=True)
    except ClassroomError as err:
        print(f"fedtutor classroom join: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nfedtutor classroom join: left the classroom.", file=sys.stderr)
        return 130


def add_classroom_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "classroom",
        help="a real federation across laptops: serve (instructor) or join (student), TLS + enrolled keys",
        description="The instructor runs `serve`, which prints one join line per student; each student runs "
        "`join` on their own laptop.",
    )
    commands = parser.add_subparsers(dest="classroom_command", required=True)
    s = commands.add_parser("serve", help="start the classroom server (instructor)")
    s.add_argument("--host", required=True, help="the address students will type (this machine's LAN IP or name)")
    s.add_argument("--port", type=int, default=9200, help="TCP port students connect to (9200)")
    s.add_argument("--name", action="append", help="another name or address for this server (repeatable)")
    s.add_argument("--students", type=int, default=2, help="number of students to enrol (2)")
    s.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (3)")
    s.add_argument("--partition", choices=["iid", "dirichlet", "shards"], default="iid", help="data split (iid)")
    s.add_argument("--min-clients", type=int, default=1, help="go on while at least this many students reply (1)")
    s.add_argument("--straggler-timeout", type=float, default=30.0, help="s a round waits after its first reply")
    s.add_argument("--wait", type=float, default=600.0, help="s to wait for all students before starting (600)")
    s.add_argument("--seed", type=int, default=0, help="seed for the model and the partition (0)")
    s.add_argument("--dir", default="fedtutor-classroom", help="folder for keys, join files and logs")
    s.set_defaults(func=serve)
    j = commands.add_parser("join", help="join a classroom as a student")
    j.add_argument("address", nargs="?", metavar="HOST[:PORT]", help="the server's address (from the instructor)")
    j.add_argument("--code", help="your enrolment code")
    j.add_argument("--join-file", help="your join file (student-K.json), instead of --code")
    j.add_argument("--port", type=int, default=9200, help="server port when HOST has none (9200)")
    j.add_argument("--dir", help="keep your key and log here (default: a temporary folder)")
    j.set_defaults(func=join)
