"""Run a simulator (any WSGI app) on a local port, in a thread or in the foreground."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, make_server


@dataclass
class RunningServer:
    """A WSGI server running in a background thread."""

    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        """Return the http://host:port the server listens on."""
        return f"http://{self.server.host}:{self.server.port}"

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``app`` on ``host:port`` (0 picks a free port) from a daemon thread."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(
        target=lambda: server.serve_forever(poll_interval=0.05), name=f"sim-{server.server_port}", daemon=True
    )
    thread.start()
    return RunningServer(server, thread)
