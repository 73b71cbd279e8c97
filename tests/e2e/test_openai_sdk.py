"""The official openai Python SDK against deja, with only base_url changed."""
import json
import urllib.request

import openai
import pytest


@pytest.fixture
def client(deja):
    return openai.OpenAI(base_url=f"{deja}/v1", api_key="unused-by-deja", max_retries=0)


def test_chat_non_streaming(client):
    r = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What does deja do?"}],
        seed=7,
        extra_body={"some_future_field": {"a": 1}},
    )
    assert r.headers["x-deja-provider"] == "openai"
    assert r.headers["x-request-id"]
    c = r.parse()
    assert c.choices[0].message.content == "Mock answer to: What does deja do?"
    assert c.choices[0].finish_reason == "stop"
    assert c.system_fingerprint == "fp_mock"
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens


def test_chat_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me a reply"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == "Mock answer to: stream me a reply"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == len(text.split())


def test_legacy_completions_and_embeddings_and_models(client):
    c = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hello")
    assert c.choices[0].text == "Mock answer to: hello"
    e = client.embeddings.create(model="text-embedding-3-small", input=["a", "b", "c"])
    assert len(e.data) == 3 and all(len(d.embedding) == 8 for d in e.data)
    ids = [m.id for m in client.models.list()]
    assert "openai/mock-model" in ids


def test_upstream_auth_error_passes_through(client, mock_provider):
    body = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                      "param": None, "code": "invalid_api_key"}}
    set_behaviour(mock_provider, {"mode": "fail", "status": 401, "body": json.dumps(body)})
    try:
        with pytest.raises(openai.AuthenticationError) as ei:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        assert ei.value.code == "invalid_api_key"
        assert "Incorrect API key" in str(ei.value)
    finally:
        set_behaviour(mock_provider, {"mode": "normal"})


def test_bad_request_is_a_400_with_message(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert "at least one message" in str(ei.value)


def test_upstream_failure_mid_stream_raises(client, mock_provider):
    set_behaviour(mock_provider, {"mode": "drop_mid_stream", "after_chunks": 2})
    try:
        with pytest.raises(openai.APIError) as ei:
            for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three four"}], stream=True
            ):
                pass
        assert "stream ended before completion" in str(ei.value)
    finally:
        set_behaviour(mock_provider, {"mode": "normal"})


def set_behaviour(mock, b):
    req = urllib.request.Request(
        f"{mock}/_mock/behaviour", data=json.dumps(b).encode(), method="PUT",
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(req).close()
