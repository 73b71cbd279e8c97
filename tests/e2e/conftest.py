"""Fixtures: the real deja binary and the deja-mock provider binary on free ports."""
import os
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEJA = os.environ.get("DEJA_BIN", os.path.join(ROOT, "target", "debug", "deja"))
# The mock providers are their own binary (crates/deja-mock), not part of the shipped deja.
MOCK = os.environ.get("DEJA_MOCK_BIN", os.path.join(ROOT, "target", "debug", "deja-mock"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


@pytest.fixture(scope="session")
def mock_provider():
    port = free_port()
    p = subprocess.Popen([MOCK, "--port", str(port)], stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/v1/models")
    yield f"http://127.0.0.1:{port}"
    p.terminate()
    p.wait(10)


@pytest.fixture(scope="session")
def deja(mock_provider, tmp_path_factory):
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OPENAI_API_KEY": "sk-e2e",
        "OPENAI_BASE_URL": f"{mock_provider}/v1",
        "DEJA_DATA_DIR": str(tmp_path_factory.mktemp("deja-data")),
        "DEJA__DISCOVERY__PROBE_OLLAMA": "false",
    }
    for k in ("ORT_DYLIB_PATH", "DEJA_ADMIN_TOKEN"):
        if k in os.environ:
            env[k] = os.environ[k]
    p = subprocess.Popen([DEJA, "serve", "--port", str(port)], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/ready")
    yield f"http://127.0.0.1:{port}"
    p.terminate()
    p.wait(30)


ANTHROPIC_MOCK_KEY = "sk-ant-e2e"


@pytest.fixture(scope="session")
def anthropic_mock():
    """deja's Anthropic Messages mock; it accepts only ANTHROPIC_MOCK_KEY as x-api-key."""
    port = free_port()
    p = subprocess.Popen(
        [MOCK, "--format", "anthropic", "--port", str(port), "--api-key", ANTHROPIC_MOCK_KEY],
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/_mock/requests")
    yield f"http://127.0.0.1:{port}"
    p.terminate()
    p.wait(10)


@pytest.fixture(scope="session")
def deja_multi(mock_provider, anthropic_mock, tmp_path_factory):
    """deja with two providers: `openai` (the OpenAI-compatible mock) and `claude` (the
    Anthropic mock), semantic cache on."""
    port = free_port()
    data = tmp_path_factory.mktemp("deja-multi-data")
    config = data / "deja.toml"
    config.write_text(
        f"""
[providers.openai]
kind = "openai-compatible"
base_url = "{mock_provider}/v1"
api_key = "sk-e2e"

[providers.claude]
kind = "anthropic"
base_url = "{anthropic_mock}/v1"
api_key = "{ANTHROPIC_MOCK_KEY}"
"""
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEJA_DATA_DIR": str(data),
        "DEJA__DISCOVERY__PROBE_OLLAMA": "false",
    }
    for k in ("ORT_DYLIB_PATH", "DEJA_ADMIN_TOKEN"):
        if k in os.environ:
            env[k] = os.environ[k]
    p = subprocess.Popen(
        [DEJA, "serve", "--config", str(config), "--port", str(port)], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
    )
    wait_http(f"http://127.0.0.1:{port}/ready")
    yield f"http://127.0.0.1:{port}"
    p.terminate()
    p.wait(30)
