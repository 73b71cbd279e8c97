"""The official openai Python SDK against deja serving Gemini and Azure OpenAI (mock
providers run by `deja-mock --format gemini|azure`) and deja's local embedding
model: the translated answers must parse as the SDK expects, streaming and tools included."""
import os
import subprocess

import openai
import pytest

from conftest import DEJA, MOCK, ROOT, free_port, wait_http


@pytest.fixture(scope="module")
def google_azure_deja(tmp_path_factory):
    procs = []
    gport, aport, dport = free_port(), free_port(), free_port()
    procs.append(subprocess.Popen(
        [MOCK, "--format", "gemini", "--port", str(gport), "--api-key", "g-e2e"],
        stderr=subprocess.DEVNULL))
    procs.append(subprocess.Popen(
        [MOCK, "--format", "azure", "--port", str(aport), "--api-key", "az-e2e",
         "--models", "my-4o-mini"],
        stderr=subprocess.DEVNULL))
    cfg = tmp_path_factory.mktemp("cfg") / "deja.toml"
    cfg.write_text(f"""
[providers.gem]
kind = "gemini"
base_url = "http://127.0.0.1:{gport}/v1beta"
api_key = "g-e2e"
discover_models = false
models = ["gemini-2.0-flash"]

[providers.az]
kind = "azure"
base_url = "http://127.0.0.1:{aport}"
api_key = "az-e2e"
deployments = {{ "gpt-4o-mini" = "my-4o-mini" }}
""")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEJA_DATA_DIR": str(tmp_path_factory.mktemp("deja-data")),
        "DEJA__CACHE__ENABLED": "false",
        "DEJA__DISCOVERY__PROBE_OLLAMA": "false",
    }
    if "ORT_DYLIB_PATH" in os.environ:
        env["ORT_DYLIB_PATH"] = os.environ["ORT_DYLIB_PATH"]
    procs.append(subprocess.Popen([DEJA, "serve", "--config", str(cfg), "--port", str(dport)],
                                  env=env, cwd=ROOT, stderr=subprocess.DEVNULL))
    wait_http(f"http://127.0.0.1:{dport}/ready")
    yield f"http://127.0.0.1:{dport}"
    for p in procs:
        p.terminate()
        p.wait(30)


@pytest.fixture
def client(google_azure_deja):
    return openai.OpenAI(base_url=f"{google_azure_deja}/v1", api_key="unused", max_retries=0)


WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}]


def test_gemini_chat_and_stream(client):
    c = client.chat.completions.create(
        model="gem/gemini-2.0-flash",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello gemini"}])
    assert c.choices[0].message.content == "Echo: hello gemini"
    assert c.choices[0].finish_reason == "stop"
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens

    text, usage, finish = "", None, None
    for chunk in client.chat.completions.create(
            model="gem/gemini-2.0-flash", messages=[{"role": "user", "content": "stream to me"}],
            stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert text == "Echo: stream to me"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 4


def test_gemini_tools_round_trip_with_sdk_objects(client):
    msgs = [{"role": "user", "content": "weather in Paris?"}]
    c = client.chat.completions.create(model="gem/gemini-2.0-flash", messages=msgs, tools=WEATHER,
                                       tool_choice="required")
    m = c.choices[0].message
    assert c.choices[0].finish_reason == "tool_calls"
    assert m.tool_calls[0].function.name == "get_weather"
    msgs.append(m.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": m.tool_calls[0].id, "content": '{"temp_c": 21}'})
    c = client.chat.completions.create(model="gem/gemini-2.0-flash", messages=msgs, tools=WEATHER)
    assert c.choices[0].message.content == 'Tool results: {"temp_c":21}'

    # Streamed, the SDK's accumulating helper sees one complete tool call.
    with client.beta.chat.completions.stream(model="gem/gemini-2.0-flash", messages=msgs[:1],
                                             tools=WEATHER) as s:
        final = s.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Paris"}'


def test_gemini_errors_are_sdk_errors(client):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="gem/gemini-2.0-flash",
                                       messages=[{"role": "user", "content": "fail:429"}])
    assert e.value.status_code == 429
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gem/gemini-2.0-flash", messages=[
            {"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}])


def test_gemini_embeddings_through_sdk_base64(client):
    # The SDK asks for base64 and decodes it.
    e = client.embeddings.create(model="gem/text-embedding-004", input=["abc", "de"], dimensions=3)
    assert len(e.data) == 2 and len(e.data[0].embedding) == 3


def test_azure_chat_stream_and_content_filter(client):
    c = client.chat.completions.create(model="az/gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hi azure"}])
    assert c.choices[0].message.content == "Echo: hi azure"
    text = "".join(ch.delta.content or "" for chunk in client.chat.completions.create(
        model="az/gpt-4o-mini", messages=[{"role": "user", "content": "stream azure"}], stream=True)
        for ch in chunk.choices)
    assert text == "Echo: stream azure"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="az/gpt-4o-mini",
                                       messages=[{"role": "user", "content": "filter me"}])
    assert e.value.code == "content_filter"


def test_local_embeddings_through_sdk(client):
    e = client.embeddings.create(model="local/all-MiniLM-L6-v2", input=["hello world", "deja vu"])
    assert [len(d.embedding) for d in e.data] == [384, 384]
    norm = sum(x * x for x in e.data[0].embedding) ** 0.5
    assert abs(norm - 1.0) < 1e-3
    assert e.usage.prompt_tokens > 0
    ids = [m.id for m in client.models.list()]
    assert "local/all-MiniLM-L6-v2" in ids and "gem/gemini-2.0-flash" in ids
