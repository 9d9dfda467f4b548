"""A local HTTP server (127.0.0.1) for checkpoints behind URLs."""
import functools
import http.server
import threading

import pytest


@pytest.fixture
def server(tmp_path, monkeypatch):
    """``(root, base_url)``: files under ``root`` served on 127.0.0.1; the
    torch.hub cache goes to a temporary folder."""
    root = tmp_path / 'served'
    root.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass
