"""The official openai Python SDK against deja, served by AWS Bedrock and Cohere mocks
(`deja-mock --format bedrock|cohere`): the Bedrock mock verifies every SigV4
signature, the Cohere mock the bearer key and the v2 request shapes."""
import os
import socket
import subprocess
import time

import openai
import pytest

from conftest import DEJA, MOCK, free_port, wait_http

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def wait_tcp(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


@pytest.fixture(scope="module")
def native_deja(tmp_path_factory):
    procs = []
    ports = {}
    for fmt in ("bedrock", "cohere"):
        port = free_port()
        procs.append(subprocess.Popen([MOCK, "--format", fmt, "--port", str(port)],
                                      stderr=subprocess.DEVNULL))
        wait_tcp(port)
        ports[fmt] = port
    tmp = tmp_path_factory.mktemp("deja-native")
    config = tmp / "deja.toml"
    config.write_text(f"""
[providers.bedrock]
kind = "bedrock"
base_url = "http://127.0.0.1:{ports['bedrock']}"
models = ["{MODEL}", "amazon.titan-embed-text-v2:0"]

[providers.cohere]
kind = "cohere"
base_url = "http://127.0.0.1:{ports['cohere']}"
api_key = "env:CO_API_KEY"
""")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        # Bedrock's region and credentials from the standard AWS variables.
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "CO_API_KEY": "co-test-key",
        "DEJA_DATA_DIR": str(tmp / "data"),
        "DEJA__CACHE__ENABLED": "false",
        "DEJA__DISCOVERY__PROBE_OLLAMA": "false",
    }
    procs.append(subprocess.Popen([DEJA, "serve", "--config", str(config), "--port", str(port)],
                                  env=env, stderr=subprocess.DEVNULL))
    wait_http(f"http://127.0.0.1:{port}/ready")
    yield f"http://127.0.0.1:{port}"
    for p in reversed(procs):
        p.terminate()
        p.wait(30)


@pytest.fixture
def client(native_deja):
    return openai.OpenAI(base_url=f"{native_deja}/v1", api_key="unused-by-deja", max_retries=0)


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}}]


@pytest.mark.parametrize("model", [f"bedrock/{MODEL}", "cohere/command-a-03-2025"])
def test_chat_and_stream(client, model):
    c = client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}])
    assert c.choices[0].message.content == "Mock answer to: Hello there"
    assert c.choices[0].finish_reason == "stop"
    assert c.model == model.split("/", 1)[1]
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens

    text, usage, finish = "", None, None
    for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "stream me"}],
            stream=True, stream_options={"include_usage": True}):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == "Mock answer to: stream me"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == len(text.split())


@pytest.mark.parametrize("model", [f"bedrock/{MODEL}", "cohere/command-a-03-2025"])
def test_streamed_tool_call_then_tool_result(client, model):
    messages = [{"role": "user", "content": "Weather in Lima?"}]
    calls, finish = {}, None
    for chunk in client.chat.completions.create(model=model, messages=messages, tools=TOOLS, stream=True):
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for d in chunk.choices[0].delta.tool_calls or []:
            slot = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = d.id or slot["id"]
            if d.function:
                slot["name"] += d.function.name or ""
                slot["arguments"] += d.function.arguments or ""
    assert finish == "tool_calls"
    call = calls[0]
    assert call["name"] == "get_weather"
    assert call["arguments"] and '"Weather in Lima?"' in call["arguments"]

    messages.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]})
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": "21C, clear"})
    c = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, tool_choice="auto")
    assert c.choices[0].message.content == "Mock answer from tool result: 21C, clear"


def test_embeddings(client):
    e = client.embeddings.create(model="bedrock/amazon.titan-embed-text-v2:0", input=["a b", "c"], dimensions=256)
    assert [len(d.embedding) for d in e.data] == [256, 256]
    e = client.embeddings.create(model="cohere/embed-v4.0", input="hello world")
    assert len(e.data) == 1 and len(e.data[0].embedding) == 1536


def test_provider_errors_surface_with_their_status(client):
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model=f"bedrock/{MODEL}",
                                       messages=[{"role": "user", "content": "ERROR ThrottlingException"}])
    assert err.value.status_code == 429
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="cohere/command-a-03-2025",
                                       messages=[{"role": "user", "content": "ERROR 429"}])
