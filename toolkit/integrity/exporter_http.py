"""The exporter's HTTP endpoint: `/metrics` (one scrape), `/` (a page linking it), 404
for the rest. The standard library's threading server: a request per thread, the scrapes
themselves serialized by toolkit.integrity.exporter.Exporter."""

from __future__ import annotations

import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from urllib.parse import urlsplit

from toolkit.errors import BadInput
from toolkit.integrity.exporter import Exporter
from toolkit.integrity.exporter_defaults import DEFAULT_PORT
from toolkit.integrity.metrics_text import CONTENT_TYPE, render_snapshot

LISTEN_HELP = (
    f"HOST:PORT (127.0.0.1:{DEFAULT_PORT}; :{DEFAULT_PORT} for every interface; "
    f"[::1]:{DEFAULT_PORT} for IPv6; port 0 for any free port)"
)

INDEX = """<!doctype html>
<html><head><title>venuedb exporter</title></head>
<body><h1>venuedb exporter</h1>
<p>The health checks of sql/checks/, releases, deployments and backfills of one venuedb
database, in the Prometheus text format: <a href="/metrics">/metrics</a>.</p>
</body></html>
"""


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT -> (host, port); an empty host is every IPv4 interface."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise BadInput(f"--listen must be {LISTEN_HELP}, not {text!r}; nothing was started")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise BadInput(
            f"--listen {text!r}: write an IPv6 address in brackets, e.g. [::1]:{DEFAULT_PORT}; "
            "nothing was started"
        )
    number = int(port)
    if number > 65535:
        raise BadInput(f"--listen {text!r}: port {number} is out of range; nothing was started")
    return host or "0.0.0.0", number


class ExporterServer(ThreadingHTTPServer):
    # server_close() waits for a scrape in flight (bounded by the statement timeouts)
    # instead of killing it mid-query.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], family: int, exporter: Exporter) -> None:
        self.address_family = family
        self.exporter = exporter
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own would look the host up in DNS (getfqdn) for a name it never uses.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        """One line, not socketserver's traceback: a client that hung up before the answer
        (Prometheus gave up at its scrape_timeout) is routine."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            self.exporter.log(f"the client {client_address} left before the answer ({error})")
        else:
            self.exporter.log(f"error answering {client_address}: {error!r}")

    @property
    def url(self) -> str:
        # As server_bind() stored them from the bound socket (the stubs' server_address
        # also allows a bytes host, which getsockname() never returns).
        host = self.server_name
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.server_port}"


def bind(exporter: Exporter, listen: str) -> ExporterServer:
    """A bound server, not yet serving; BadInput (nothing started) when it cannot listen."""
    host, port = parse_listen(listen)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return ExporterServer((host, port), family, exporter)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise BadInput(f"cannot listen on {listen!r}: {why}; nothing was started") from None


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    server_version = "venuedb-exporter"
    timeout = 30  # a client that connects and sends nothing does not hold a thread forever

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            snapshot = self.server.exporter.scrape()
            self._answer(200, CONTENT_TYPE, render_snapshot(snapshot))
        elif path == "/":
            # No database URL here, masked or not: the page is for anyone who can reach it.
            self._answer(200, "text/html; charset=utf-8", INDEX)
        else:
            self._answer(
                404, "text/plain; charset=utf-8", "not found; the metrics are at /metrics\n"
            )

    def _answer(self, code: int, content_type: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """No access log: Prometheus scrapes every few seconds; state changes are logged."""
