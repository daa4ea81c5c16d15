"""HTTPS: the real server with a self-signed certificate."""

import shutil
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import tiny_run
from tests.serving.test_server_process import free_port


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a self-signed certificate")
def test_serves_https_with_a_self_signed_certificate(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    tiny_run(tmp_path, "pop", model={})
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lmrec.cli.main", "serve", "--run", str(tmp_path / "run"),
                             "--port", str(port), "--ssl-keyfile", str(key), "--ssl-certfile", str(cert)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, r = time.time() + 60, None
        while time.time() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/health", verify=ssl.create_default_context(cafile=str(cert)),
                              timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert r is not None and r.status_code == 200 and r.json()["status"] == "ok"
        with pytest.raises(httpx.TransportError):  # an unknown certificate is refused by a verifying client
            httpx.get(f"https://127.0.0.1:{port}/health", timeout=2)
        with pytest.raises(httpx.TransportError):  # and plain HTTP gets nothing
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_half_a_tls_configuration_is_an_error(tmp_path):
    from typer.testing import CliRunner

    from lmrec.cli.main import app

    tiny_run(tmp_path, "pop", model={})
    result = CliRunner().invoke(app, ["serve", "--run", str(tmp_path / "run"), "--ssl-keyfile", str(tmp_path / "k")])
    assert result.exit_code == 2 and "needs both --ssl-keyfile and --ssl-certfile" in result.output
