use super::*;
use crate::providers::stream::{OpenAiChunks, Pipeline};
use crate::providers::ProviderKind;

/// The ConverseStream hook as the stream driver runs it, usage chunk included.
fn decoder() -> Pipeline<EventStreamFraming, OpenAiChunks<ConverseStreamDecoder>> {
    Pipeline::new(
        EventStreamFraming::new(),
        OpenAiChunks::new(ConverseStreamDecoder::new(), true, String::new()),
    )
}
use aws_smithy_types::event_stream::{Header, HeaderValue};
use std::time::{Duration, UNIX_EPOCH};

// ---- SigV4: AWS's published test suite ------------------------------------------
// https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html
// (the same vectors ship as `aws-sig-v4-test-suite/*` in the AWS SDKs, e.g.
// @aws-sdk/signature-v4's suite.fixture). Every case: AKIDEXAMPLE, us-east-1,
// service "service", 2015-08-30T12:36:00Z, host example.amazonaws.com.

const SUITE_TIME: u64 = 1_440_938_160; // 20150830T123600Z
const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

fn suite_creds(token: Option<&str>) -> AwsCredentials {
    AwsCredentials {
        access_key_id: Secret::new("AKIDEXAMPLE"),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: token.map(Secret::new),
    }
}

fn suite_authorization(
    token: Option<&str>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<(&'static str, String)> {
    sign_headers(
        &suite_creds(token),
        "us-east-1",
        "service",
        method,
        url,
        headers,
        body,
        UNIX_EPOCH + Duration::from_secs(SUITE_TIME),
    )
    .unwrap()
}

fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {h:?}"))
}

const SCOPE: &str =
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

#[test]
fn sigv4_suite_get_vanilla() {
    let h = suite_authorization(None, "GET", "https://example.amazonaws.com/", &[], b"");
    assert_eq!(
        header(&h, "authorization"),
        format!("{SCOPE}, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    );
    assert_eq!(header(&h, "x-amz-date"), "20150830T123600Z");
}

#[test]
fn sigv4_suite_post_vanilla() {
    let h = suite_authorization(None, "POST", "https://example.amazonaws.com/", &[], b"");
    assert_eq!(
        header(&h, "authorization"),
        format!("{SCOPE}, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
    );
}

#[test]
fn sigv4_suite_get_vanilla_query_order_key_case() {
    let h = suite_authorization(
        None,
        "GET",
        "https://example.amazonaws.com/?Param2=value2&Param1=value1",
        &[],
        b"",
    );
    assert_eq!(
        header(&h, "authorization"),
        format!("{SCOPE}, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    );
}

#[test]
fn sigv4_suite_post_header_value_case() {
    let h = suite_authorization(
        None,
        "POST",
        "https://example.amazonaws.com/",
        &[("My-Header1", "VALUE1")],
        b"",
    );
    assert_eq!(
        header(&h, "authorization"),
        format!("{SCOPE}, SignedHeaders=host;my-header1;x-amz-date, Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d")
    );
}

#[test]
fn sigv4_suite_post_sts_header_before() {
    let h = suite_authorization(
        Some(STS_TOKEN),
        "POST",
        "https://example.amazonaws.com/",
        &[],
        b"",
    );
    assert_eq!(
        header(&h, "authorization"),
        format!("{SCOPE}, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead")
    );
    assert_eq!(header(&h, "x-amz-security-token"), STS_TOKEN);
}

#[test]
fn sigv4_suite_post_x_www_form_urlencoded() {
    let h = suite_authorization(
        None,
        "POST",
        "https://example.amazonaws.com/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"Param1=value1",
    );
    assert_eq!(
        header(&h, "authorization"),
        format!("{SCOPE}, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
    );
}

#[test]
fn a_different_secret_gives_a_different_signature() {
    let good = suite_authorization(None, "POST", "https://example.amazonaws.com/", &[], b"x");
    let bad = sign_headers(
        &AwsCredentials {
            secret_access_key: Secret::new("wrong"),
            ..suite_creds(None)
        },
        "us-east-1",
        "service",
        "POST",
        "https://example.amazonaws.com/",
        &[],
        b"x",
        UNIX_EPOCH + Duration::from_secs(SUITE_TIME),
    )
    .unwrap();
    assert_ne!(
        header(&good, "authorization"),
        header(&bad, "authorization")
    );
}

#[test]
fn model_ids_are_encoded_like_the_aws_sdks() {
    assert_eq!(
        encode_model_id("anthropic.claude-3-haiku-20240307-v1:0"),
        "anthropic.claude-3-haiku-20240307-v1%3A0"
    );
    assert_eq!(
        encode_model_id("arn:aws:bedrock:us-east-1:123:inference-profile/us.x"),
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.x"
    );
}

// ---- Config -------------------------------------------------------------------

#[test]
fn region_and_credentials_come_from_the_aws_variables() {
    let mut cfg = ProviderConfig::new(ProviderKind::Bedrock);
    let env: HashMap<String, String> = [
        ("AWS_DEFAULT_REGION", "eu-west-3"),
        ("AWS_ACCESS_KEY_ID", "AKIA1"),
        ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
        ("AWS_SESSION_TOKEN", "tok"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert!(cfg.validate_settings().is_err());
    cfg.apply_env(&env);
    cfg.validate_settings().unwrap();
    let b = cfg.bedrock().unwrap();
    assert_eq!(b.region.as_deref(), Some("eu-west-3"));
    assert_eq!(
        cfg.effective_base_url().as_deref(),
        Some("https://bedrock-runtime.eu-west-3.amazonaws.com")
    );
    assert_eq!(
        b.aws_session_token.as_ref().map(Secret::expose),
        Some("tok")
    );
    // A configured key is not mixed with the environment's secret.
    let mut cfg = ProviderConfig::new(ProviderKind::Bedrock);
    cfg.settings = crate::config::ProviderSettings::Bedrock(crate::config::BedrockConfig {
        aws_access_key_id: Some(Secret::new("AKIACONF")),
        ..Default::default()
    });
    cfg.apply_env(&env);
    assert!(cfg.bedrock().unwrap().aws_secret_access_key.is_none());
    let (field, _) = cfg.validate_settings().unwrap_err();
    assert_eq!(field, "aws_access_key_id");
}

// ---- Request translation --------------------------------------------------------
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html

fn body(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn chat_becomes_a_converse_request() {
    let out = to_converse(&body(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
            ]},
        ],
        "max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "stop": "END",
    })))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "messages": [{"role": "user", "content": [
                {"text": "What is this?"},
                {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}}
            ]}],
            "system": [{"text": "Be brief."}],
            "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
        })
    );
}

#[test]
fn tools_tool_calls_and_results_translate() {
    let out = to_converse(&body(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
    })))
    .unwrap();
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len(),
        3,
        "the two tool results merge into one user turn"
    );
    assert_eq!(
        msgs[1]["content"][0],
        json!({"toolUse": {"toolUseId": "call_1", "name": "weather", "input": {"city": "Paris"}}})
    );
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(
        msgs[2]["content"],
        json!([
            {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}},
            {"toolResult": {"toolUseId": "call_2", "content": [{"text": "24C"}]}}
        ])
    );
    assert_eq!(
        out["toolConfig"],
        json!({
            "tools": [{"toolSpec": {"name": "weather", "description": "Weather now", "inputSchema": {"json":
                {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}],
            "toolChoice": {"tool": {"name": "weather"}}
        })
    );
}

#[test]
fn tool_choice_required_and_none() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    let mut b = body(base.clone());
    b.insert("tool_choice".into(), json!("required"));
    assert_eq!(
        to_converse(&b).unwrap()["toolConfig"]["toolChoice"],
        json!({"any": {}})
    );
    b.insert("tool_choice".into(), json!("none"));
    assert!(to_converse(&b).unwrap().get("toolConfig").is_none());
}

#[test]
fn requests_bedrock_cannot_take_are_refused() {
    for (bad, needle) in [
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            "data:",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "n": 2}),
            "`n`",
        ),
        (
            json!({"messages": [{"role": "system", "content": "only system"}]}),
            "user message",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{oops"}}]}]}),
            "not JSON",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "r"}]}),
            "tool_call_id",
        ),
    ] {
        let err = to_converse(&body(bad)).unwrap_err();
        assert!(err.contains(needle), "{err}");
    }
}

// ---- Response translation -------------------------------------------------------

#[test]
fn converse_response_becomes_a_chat_completion() {
    // Shape from https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_ResponseSyntax
    let v = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "Hello there."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
        "metrics": {"latencyMs": 310}
    });
    let out = from_converse(&v).unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["choices"][0]["message"]["content"], "Hello there.");
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15})
    );
}

#[test]
fn tool_use_response_becomes_tool_calls() {
    let v = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "top_song", "input": {"sign": "WZPZ"}}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 375, "outputTokens": 64, "totalTokens": 439}
    });
    let out = from_converse(&v).unwrap();
    let msg = &out["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null);
    assert_eq!(msg["tool_calls"][0]["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "top_song");
    let args: Value = serde_json::from_str(
        msg["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"sign": "WZPZ"}));
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ] {
        assert_eq!(finish_reason(stop), finish, "{stop}");
    }
}

#[test]
fn errors_keep_status_and_exception_name() {
    let p: Arc<str> = "bedrock".into();
    let e = bedrock_error(
        &p,
        429,
        Some("ThrottlingException"),
        br#"{"message":"Too many requests, please wait before trying again."}"#,
    );
    let ProviderError::Upstream { status, body, .. } = e else {
        panic!()
    };
    assert_eq!(status, 429);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["error"]["message"],
        "Too many requests, please wait before trying again."
    );
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], "ThrottlingException");
    // Without the header, the status names the exception.
    let ProviderError::Upstream { body, .. } =
        bedrock_error(&p, 403, None, b"{\"message\":\"denied\"}")
    else {
        panic!()
    };
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "AccessDeniedException");
}

#[test]
fn titan_embeddings_become_an_openai_list() {
    let (e, n) = parse_titan(br#"{"embedding":[0.1,-0.2],"inputTextTokenCount":4}"#).unwrap();
    let out = embeddings_list("amazon.titan-embed-text-v2:0", vec![(e.clone(), n), (e, 3)]);
    assert_eq!(out["data"][1]["index"], 1);
    assert_eq!(out["data"][0]["embedding"], json!([0.1, -0.2]));
    assert_eq!(out["usage"]["prompt_tokens"], 7);
    assert!(parse_titan(br#"{"message":"x"}"#).is_err());
}

// ---- Event stream ---------------------------------------------------------------
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html

fn frame(event: &str, payload: Value) -> Vec<u8> {
    let msg = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&msg, &mut out).unwrap();
    out
}

fn chunks_of(frames: &[Bytes]) -> Vec<Value> {
    frames
        .iter()
        .filter_map(|f| {
            let s = std::str::from_utf8(f).unwrap();
            let d = s.strip_prefix("data: ")?.trim_end();
            serde_json::from_str(d).ok()
        })
        .collect()
}

#[test]
fn event_stream_frames_become_openai_chunks_even_split_anywhere() {
    let mut bytes = Vec::new();
    bytes.extend(frame(
        "messageStart",
        json!({"p": "abcd", "role": "assistant"}),
    ));
    bytes.extend(frame(
        "contentBlockDelta",
        json!({"p": "ab", "contentBlockIndex": 0, "delta": {"text": "Let me check"}}),
    ));
    bytes.extend(frame("contentBlockStop", json!({"contentBlockIndex": 0})));
    bytes.extend(frame("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu_1", "name": "weather"}}})));
    bytes.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
    ));
    bytes.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
    ));
    bytes.extend(frame("contentBlockStop", json!({"contentBlockIndex": 1})));
    bytes.extend(frame("messageStop", json!({"stopReason": "tool_use"})));
    bytes.extend(frame("metadata", json!({"usage": {"inputTokens": 20, "outputTokens": 9, "totalTokens": 29}, "metrics": {"latencyMs": 400}})));
    for split in [1usize, 7, 64, bytes.len()] {
        let mut d = decoder();
        let mut out = Vec::new();
        for piece in bytes.chunks(split) {
            out.extend(d.feed(piece).unwrap());
        }
        out.extend(d.finish().unwrap());
        assert_eq!(out.last().unwrap().as_ref(), b"data: [DONE]\n\n");
        let c = chunks_of(&out);
        assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(c[1]["choices"][0]["delta"]["content"], "Let me check");
        let tc = &c[2]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (tc["index"].as_u64(), tc["id"].as_str()),
            (Some(0), Some("tu_1"))
        );
        assert_eq!(tc["function"]["name"], "weather");
        let args: String = c[3..5]
            .iter()
            .map(|x| {
                x["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(args, "{\"city\":\"Paris\"}");
        assert_eq!(c[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c[6]["choices"], json!([]));
        assert_eq!(c[6]["usage"]["total_tokens"], 29);
    }
}

#[test]
fn exception_frames_and_truncation_interrupt_the_stream() {
    let msg = Message::new(Bytes::from(r#"{"message":"Rate exceeded"}"#))
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String("throttlingException".into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("exception".into()),
        ));
    let mut bytes = frame("messageStart", json!({"role": "assistant"}));
    aws_smithy_eventstream::frame::write_message_to(&msg, &mut bytes).unwrap();
    let mut d = decoder();
    let err = d.feed(&bytes).unwrap_err();
    assert!(
        err.contains("throttlingException") && err.contains("Rate exceeded"),
        "{err}"
    );

    let mut d = decoder();
    d.feed(&frame("messageStart", json!({"role": "assistant"})))
        .unwrap();
    assert!(d.finish().unwrap_err().contains("before messageStop"));

    let mut d = decoder();
    let f = frame("messageStart", json!({"role": "assistant"}));
    d.feed(&f[..f.len() - 3]).unwrap();
    assert!(d.finish().unwrap_err().contains("inside a frame"));

    let mut corrupt = frame("messageStart", json!({"role": "assistant"}));
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff; // message CRC no longer matches
    assert!(decoder().feed(&corrupt).is_err());
}

#[test]
fn the_cache_can_assemble_a_translated_stream() {
    // What the semantic cache stores from a streamed miss must look like the
    // non-streaming answer: text, tool calls, finish_reason and usage.
    let mut bytes = Vec::new();
    bytes.extend(frame("messageStart", json!({"role": "assistant"})));
    bytes.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "Checking "}}),
    ));
    bytes.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "now."}}),
    ));
    bytes.extend(frame(
        "contentBlockStart",
        json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu_9", "name": "f"}}}),
    ));
    bytes.extend(frame(
        "contentBlockDelta",
        json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"a\":1}"}}}),
    ));
    bytes.extend(frame("messageStop", json!({"stopReason": "tool_use"})));
    bytes.extend(frame(
        "metadata",
        json!({"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}}),
    ));
    let mut d = decoder();
    let mut frames = d.feed(&bytes).unwrap();
    frames.extend(d.finish().unwrap());
    let mut asm = crate::cache::replay::SseAssembler::new();
    for f in &frames {
        asm.feed(f);
    }
    let body = asm.finish().expect("a complete stream assembles");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["content"], "Checking now.");
    assert_eq!(choice["message"]["tool_calls"][0]["id"], "tu_9");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"a\":1}"
    );
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(body["usage"]["total_tokens"], 7);
}

#[test]
fn the_control_plane_is_found_from_the_runtime_url() {
    assert_eq!(
        control_plane_url("https://bedrock-runtime.eu-west-3.amazonaws.com"),
        "https://bedrock.eu-west-3.amazonaws.com"
    );
    assert_eq!(
        control_plane_url("http://127.0.0.1:9000"),
        "http://127.0.0.1:9000"
    );
    // https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ListFoundationModels.html
    let v = json!({"modelSummaries": [
        {"modelId": "anthropic.claude-3-haiku-20240307-v1:0", "inferenceTypesSupported": ["ON_DEMAND"]},
        {"modelId": "anthropic.claude-3-7-sonnet-20250219-v1:0", "inferenceTypesSupported": ["INFERENCE_PROFILE"]},
        {"modelId": "amazon.titan-embed-text-v2:0"}
    ]});
    assert_eq!(
        foundation_model_ids(&v),
        vec![
            "anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.titan-embed-text-v2:0"
        ]
    );
}
