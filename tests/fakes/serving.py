"""Run a WSGI app on 127.0.0.1 port 0 in a daemon thread, over HTTP or HTTPS with a throwaway certificate."""
from __future__ import annotations

import datetime as dt
import ipaddress
import tempfile
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request: benchmarks make thousands."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def self_signed_cert(folder: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 / localhost that is its own CA; clients pass the cert path as ``verify``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class ThreadedServer:
    """Owns the server thread. ``url`` is known after ``start()``; ``stop()`` shuts it down and joins."""

    def __init__(self, app: Any, *, tls: bool = False) -> None:
        self.app = app
        self.tls = tls
        self.cert_path: str | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> str:
        ssl_context: Any = None
        if self.tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="rg-fake-")
            cert, key = self_signed_cert(Path(self._tmp.name))
            self.cert_path = cert
            ssl_context = (cert, key)
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True, ssl_context=ssl_context,
                                   request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-provider", daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()
