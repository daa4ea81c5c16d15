"""HTTPS: the real server with a self-signed certificate."""

import shutil
import ssl
import subprocess

import httpx
import pytest

from lmrec.serving.launch import start_server, stop_server
from tests.conftest import tiny_run


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a self-signed certificate")
def test_serves_https_with_a_self_signed_certificate(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    tiny_run(tmp_path, "pop", model={})
    proc, base = start_server(tmp_path / "run", None, "--ssl-keyfile", str(key), "--ssl-certfile", str(cert),
                              cafile=cert)
    try:
        r = httpx.get(f"{base}/health", verify=ssl.create_default_context(cafile=str(cert)), timeout=1)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        with pytest.raises(httpx.TransportError):  # an unknown certificate is refused by a verifying client
            httpx.get(f"{base}/health", timeout=2)
        with pytest.raises(httpx.TransportError):  # and plain HTTP gets nothing
            httpx.get(base.replace("https:", "http:") + "/health", timeout=2)
    finally:
        stop_server(proc)


def test_half_a_tls_configuration_is_an_error(tmp_path):
    from typer.testing import CliRunner

    from lmrec.cli.main import app

    tiny_run(tmp_path, "pop", model={})
    result = CliRunner().invoke(app, ["serve", "--run", str(tmp_path / "run"), "--ssl-keyfile", str(tmp_path / "k")])
    assert result.exit_code == 2 and "needs both --ssl-keyfile and --ssl-certfile" in result.output
