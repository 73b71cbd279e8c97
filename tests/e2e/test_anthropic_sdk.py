"""The official anthropic Python SDK against deja's /anthropic API, with only base_url
changed, the request served by (a) the OpenAI-compatible mock and (b) the Anthropic mock."""
import json
import time
import urllib.request

import anthropic
import pytest

OPENAI_MODEL = "openai/mock-model"
CLAUDE_MODEL = "claude/claude-sonnet-4-5-20250929"
# (model, the mock's answer prefix, x-deja-provider)
PROVIDERS = [
    pytest.param(OPENAI_MODEL, "Mock answer to: ", "openai", id="openai-mock"),
    pytest.param(CLAUDE_MODEL, "Mock Claude answer to: ", "claude", id="anthropic-mock"),
]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def client(deja_multi):
    # Cache off by default so that similar prompts in different tests do not hit each other.
    return anthropic.Anthropic(
        base_url=f"{deja_multi}/anthropic", api_key="unused-by-deja", max_retries=0,
        default_headers={"x-deja-cache": "off"},
    )


@pytest.mark.parametrize("model,prefix,provider", PROVIDERS)
def test_messages_non_streaming(client, model, prefix, provider):
    q = f"What does deja do for {provider}?"
    r = client.messages.with_raw_response.create(
        model=model, max_tokens=200, system="You are terse.",
        messages=[{"role": "user", "content": q}],
    )
    assert r.headers["x-deja-provider"] == provider
    assert r.headers["x-deja-cache"] == "bypass"
    m = r.parse()
    assert m.type == "message" and m.role == "assistant"
    assert m.id.startswith("msg_")
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == prefix + q
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == len(m.content[0].text.split())
    assert m.usage.input_tokens > 0


@pytest.mark.parametrize("model,prefix,provider", PROVIDERS)
def test_messages_streaming(client, model, prefix, provider):
    q = f"stream a reply from {provider}"
    with client.messages.stream(model=model, max_tokens=200, messages=[{"role": "user", "content": q}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == prefix + q
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(text.split())
    assert final.usage.input_tokens > 0


@pytest.mark.parametrize("model,prefix,provider", PROVIDERS)
def test_raw_event_stream(client, model, prefix, provider):
    events = list(client.messages.create(
        model=model, max_tokens=200, stream=True,
        messages=[{"role": "user", "content": f"raw events via {provider}"}],
    ))
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert types[-2] == "message_delta"
    assert "content_block_start" in types and "content_block_stop" in types


@pytest.mark.parametrize("model,prefix,provider", PROVIDERS)
def test_max_tokens_stop_reason(client, model, prefix, provider):
    m = client.messages.create(
        model=model, max_tokens=3, messages=[{"role": "user", "content": f"a long answer from {provider} please"}]
    )
    assert m.stop_reason == "max_tokens"
    assert m.content[0].text == " ".join((prefix + "x").split()[:3])


def test_tool_use_round_trip(client):
    msgs = [{"role": "user", "content": "Use the tool: what is the weather in Oslo?"}]
    m = client.messages.create(model=CLAUDE_MODEL, max_tokens=200, tools=[WEATHER], messages=msgs)
    assert m.stop_reason == "tool_use"
    tool = [b for b in m.content if b.type == "tool_use"][0]
    assert tool.name == "get_weather"
    assert tool.input == {"city": "mock-city"}
    assert tool.id.startswith("toolu_")
    msgs += [
        {"role": "assistant", "content": m.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "-3C, snow"}]},
    ]
    m2 = client.messages.create(model=CLAUDE_MODEL, max_tokens=200, tools=[WEATHER], messages=msgs)
    assert m2.stop_reason == "end_turn"
    assert m2.content[0].text == "Mock Claude answer to: [tool result: -3C, snow]"


def test_tool_use_streaming(client):
    with client.messages.stream(
        model=CLAUDE_MODEL, max_tokens=200, tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Lima?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    tool = [b for b in final.content if b.type == "tool_use"][0]
    assert tool.name == "get_weather" and tool.input == {"city": "mock-city"}


def test_image_input(client):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    m = client.messages.create(model=CLAUDE_MODEL, max_tokens=200, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "text", "text": "What is this pixel?"},
    ]}])
    assert m.content[0].text == "Mock Claude answer to: What is this pixel? (with 1 image)"


def test_errors_are_raised_as_the_sdk_exceptions(client, mock_provider):
    with pytest.raises(anthropic.NotFoundError) as ei:
        client.messages.create(model="claude/gpt-9", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert ei.value.body["error"] == {"type": "not_found_error", "message": "model: gpt-9"}
    with pytest.raises(anthropic.RateLimitError) as ei:
        client.messages.create(model=CLAUDE_MODEL, max_tokens=10, messages=[{"role": "user", "content": "mock-error:429"}])
    assert "mock error 429 on demand" in str(ei.value)
    with pytest.raises(anthropic.BadRequestError) as ei:
        client.messages.create(model=CLAUDE_MODEL, max_tokens=10, messages=[{"role": "system", "content": "x"}])
    assert ei.value.body["error"]["type"] == "invalid_request_error"
    body = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                      "param": None, "code": "invalid_api_key"}}
    set_behaviour(mock_provider, {"mode": "fail", "status": 401, "body": json.dumps(body)})
    try:
        with pytest.raises(anthropic.AuthenticationError) as ei:
            client.messages.create(model=OPENAI_MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
        assert "Incorrect API key" in str(ei.value)
    finally:
        set_behaviour(mock_provider, {"mode": "normal"})


def test_error_event_mid_stream_raises(client, anthropic_mock):
    set_behaviour(anthropic_mock, {"mode": "drop_mid_stream", "after_chunks": 4})
    try:
        with pytest.raises(anthropic.APIStatusError) as ei:
            with client.messages.stream(
                model=CLAUDE_MODEL, max_tokens=100, messages=[{"role": "user", "content": "one two three four"}]
            ) as stream:
                for _ in stream.text_stream:
                    pass
        assert "Overloaded" in str(ei.value)
    finally:
        set_behaviour(anthropic_mock, {"mode": "normal"})


def test_count_tokens(client):
    r = client.messages.count_tokens(
        model=CLAUDE_MODEL, system="12345678", messages=[{"role": "user", "content": "abcdefgh"}]
    )
    assert r.input_tokens == 4


@pytest.mark.parametrize("model,prefix,provider", PROVIDERS)
def test_semantic_cache_applies(deja_multi, model, prefix, provider):
    c = anthropic.Anthropic(base_url=f"{deja_multi}/anthropic", api_key="unused", max_retries=0)
    q = f"How do I rotate the API keys of {provider} safely?"
    first = c.messages.with_raw_response.create(model=model, max_tokens=100, messages=[{"role": "user", "content": q}])
    assert first.headers["x-deja-cache"] == "miss"
    # The entry is stored after the reply; while it is being stored a repeat may still
    # miss (or, briefly, hit it semantically before the exact key is written).
    for _ in range(100):
        again = c.messages.with_raw_response.create(model=model, max_tokens=100, messages=[{"role": "user", "content": q}])
        if again.headers["x-deja-cache"] == "hit-exact":
            break
        time.sleep(0.02)
    assert again.headers["x-deja-cache"] == "hit-exact"
    assert again.parse().content[0].text == first.parse().content[0].text == prefix + q
    with c.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": q}]) as s:
        assert "".join(s.text_stream) == prefix + q
        assert s.get_final_message().stop_reason == "end_turn"


def set_behaviour(mock, b):
    req = urllib.request.Request(
        f"{mock}/_mock/behaviour", data=json.dumps(b).encode(), method="PUT",
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(req).close()
