"""``operadora sim``: refuses to run without a password; runs and prints its URL with one."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from operadora.cli import app

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_sim_requires_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPERADORA_SIM__PASSWORD", raising=False)
    monkeypatch.delenv("OPERADORA_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["sim", "--port", "0"])
    assert result.exit_code == 2
    assert "sim.password" in result.output


def test_sim_runs_with_a_generated_password() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPERADORA_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "operadora", "sim", "--port", "0", "--generate-password"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = password = None
        deadline = time.monotonic() + 30
        while (url is None or password is None) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if m := re.search(r"ARI at (http://127\.0\.0\.1:\d+/ari)", line):
                url = m.group(1)
            if m := re.search(r"password: (\S+)", line):
                password = m.group(1)
        assert url and password, "the command printed no URL/password"
        request = urllib.request.Request(f"{url}/asterisk/ping")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 401
        err.value.close()
        token = base64.b64encode(f"operadora:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_sim_takes_sip_on_the_port_it_prints() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPERADORA_")}
    command = [sys.executable, "-m", "operadora", "sim", "--port", "0", "--sip-port", "0"]
    proc = subprocess.Popen(
        [*command, "--generate-password"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if m := re.search(r"SIP \(UDP\): sip:127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
        assert port, "the command printed no SIP port"
        options = (
            b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-cli\r\n"
            b"From: <sip:sipp@127.0.0.1>;tag=a\r\nTo: <sip:127.0.0.1>\r\nCall-ID: cli@127.0.0.1\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(options, ("127.0.0.1", port))
            answer, _ = sock.recvfrom(65535)
        assert answer.startswith(b"SIP/2.0 200 OK\r\n")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
