//! Translation tests. Fixtures follow Google's public API reference; the URL of the page
//! each follows is noted by it.

use super::*;
use crate::providers::stream::{OpenAiChunks, Pipeline};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn roles_system_images_and_generation_config() {
    let body = obj(json!({
        "model": "gemini-2.0-flash",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "And its colour?"}
        ],
        "temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "stop": "END", "n": 2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": {
            "type": "object", "additionalProperties": false, "$schema": "x",
            "properties": {"colour": {"type": ["string", "null"]}}, "required": ["colour"]}}},
        "stream_options": {"include_usage": true}, "user": "u1"
    }));
    let g = chat_request(&body).unwrap();
    assert_eq!(
        g["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        g["contents"],
        json!([
            {"role": "user", "parts": [
                {"text": "What is in this image?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
            ]},
            {"role": "model", "parts": [{"text": "A cat."}]},
            {"role": "user", "parts": [{"text": "And its colour?"}]}
        ])
    );
    assert_eq!(
        g["generationConfig"],
        json!({
            "temperature": 0.2, "topP": 0.9, "maxOutputTokens": 50, "candidateCount": 2,
            "stopSequences": ["END"], "responseMimeType": "application/json",
            "responseSchema": {"type": "object",
                "properties": {"colour": {"nullable": true, "type": "string"}}, "required": ["colour"]}
        })
    );
    // Nothing OpenAI-only leaks into the Google body.
    let keys: Vec<&String> = g.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["contents", "systemInstruction", "generationConfig"]);
}

#[test]
fn tools_calls_and_results_round_trip() {
    // Shapes from https://ai.google.dev/gemini-api/docs/function-calling (REST tab).
    let body = obj(json!({
        "model": "gemini-2.0-flash",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b__thought__c2ln", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp\": 21}"},
            {"role": "tool", "tool_call_id": "call_b__thought__c2ln", "content": "sunny"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}},
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
    }));
    let g = chat_request(&body).unwrap();
    assert_eq!(
        g["contents"][1],
        json!({"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}, "thoughtSignature": "c2ln"}
        ]})
    );
    // Both results share one user turn, in order.
    assert_eq!(
        g["contents"][2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}
        ]})
    );
    assert_eq!(g["contents"].as_array().unwrap().len(), 3);
    assert_eq!(
        g["tools"],
        json!([{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather by city",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "now"}
        ]}])
    );
    assert_eq!(
        g["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    for (choice, mode) in [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")] {
        let mut b = body.clone();
        b.insert("tool_choice".into(), json!(choice));
        let g = chat_request(&b).unwrap();
        assert_eq!(g["toolConfig"]["functionCallingConfig"]["mode"], mode);
    }
}

#[test]
fn bad_inputs_name_the_parameter() {
    let e = chat_request(&obj(json!({"messages": [
        {"role": "assistant", "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "not json"}}]}
    ]})))
    .unwrap_err();
    assert_eq!(
        e.param.as_deref(),
        Some("messages[0].tool_calls[0].function.arguments")
    );
    let e = chat_request(&obj(json!({"messages": [
        {"role": "tool", "tool_call_id": "nope", "content": "x"}
    ]})))
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].tool_call_id"));
    let e = chat_request(&obj(json!({"messages": [
        {"role": "user", "content": [{"type": "video", "video": {}}]}
    ]})))
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].content[0].type"));
    assert!(check_model("../../x").is_err());
    assert_eq!(
        check_model("models/gemini-2.0-flash").unwrap(),
        "gemini-2.0-flash"
    );
}

// Response shape from https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse
#[test]
fn response_text_usage_and_finish() {
    let g = json!({
        "candidates": [{
            "content": {"parts": [{"text": "Hello"}, {"text": " there."}], "role": "model"},
            "finishReason": "STOP", "avgLogprobs": -0.12, "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
        }],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 19, "thoughtsTokenCount": 8,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mAitaKmfEIOBn9kP"
    });
    let o = chat_response(&g, "req-model");
    assert_eq!(o["object"], "chat.completion");
    assert_eq!(o["id"], "chatcmpl-mAitaKmfEIOBn9kP");
    assert_eq!(o["model"], "gemini-2.5-flash");
    assert_eq!(
        o["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hello there."})
    );
    assert_eq!(o["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        o["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 11, "total_tokens": 19,
               "completion_tokens_details": {"reasoning_tokens": 8}})
    );
}

#[test]
fn function_calls_become_tool_calls_with_signatures_kept() {
    let g = json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "U0lH"}
        ]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 5, "totalTokenCount": 25}
    });
    let o = chat_response(&g, "gemini-2.0-flash");
    let c = &o["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls");
    assert_eq!(c["message"]["content"], Value::Null);
    let call = &c["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    let id = call["id"].as_str().unwrap();
    assert!(
        id.starts_with("call_") && id.ends_with("__thought__U0lH"),
        "{id}"
    );
    // Sent back, the signature returns to its part.
    let back = chat_request(&obj(json!({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": id, "content": "ok"}
    ]})))
    .unwrap();
    assert_eq!(back["contents"][1]["parts"][0]["thoughtSignature"], "U0lH");
    assert_eq!(
        back["contents"][2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );
}

#[test]
fn safety_and_blocked_prompts_are_content_filter() {
    for r in [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
    ] {
        assert_eq!(finish_reason(r, false), "content_filter");
    }
    assert_eq!(finish_reason("MAX_TOKENS", false), "length");
    assert_eq!(finish_reason("STOP", false), "stop");
    // https://ai.google.dev/api/generate-content#PromptFeedback
    let g = json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}});
    let o = chat_response(&g, "m");
    assert_eq!(o["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(o["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(o["usage"]["prompt_tokens"], 7);
}

/// The Gemini hook as the stream driver runs it.
fn pipeline(model: &str, include_usage: bool) -> Pipeline<SseDecoder, OpenAiChunks<GeminiStream>> {
    let hook = GeminiStream::new(&Arc::from("g"), model);
    Pipeline::new(
        SseDecoder::new(),
        OpenAiChunks::new(hook, include_usage, model.to_owned()),
    )
}

/// One Google chunk as an SSE event, through the pipeline: the OpenAI chunks out.
fn push(p: &mut Pipeline<SseDecoder, OpenAiChunks<GeminiStream>>, v: Value) -> Vec<Value> {
    chunks(&p.feed(format!("data: {v}\r\n\r\n").as_bytes()).unwrap())
}

fn chunks(frames: &[Bytes]) -> Vec<Value> {
    frames
        .iter()
        .filter_map(|f| {
            let d = std::str::from_utf8(f).unwrap().strip_prefix("data: ")?;
            serde_json::from_str(d.trim_end()).ok()
        })
        .collect()
}

#[test]
fn stream_chunks_translate_with_usage_on_request() {
    let mut t = pipeline("gemini-2.0-flash", true);
    let a = push(
        &mut t,
        json!({"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4}, "modelVersion": "gemini-2.0-flash", "responseId": "r1"}),
    );
    let b = push(
        &mut t,
        json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}], "role": "model"},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6, "totalTokenCount": 10}, "responseId": "r1"}),
    );
    assert!(t.hook().inner().translator().finished());
    let end_frames = t.finish().unwrap();
    assert_eq!(end_frames.last().unwrap().as_ref(), b"data: [DONE]\n\n");
    let end = chunks(&end_frames);
    assert_eq!(
        a[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "Hel"})
    );
    assert_eq!(a[0]["id"], "chatcmpl-r1");
    assert_eq!(a[0].get("usage"), Some(&Value::Null));
    let d = &b[0]["choices"][0];
    assert_eq!(d["finish_reason"], "tool_calls");
    assert_eq!(d["delta"]["tool_calls"][0]["index"], 0);
    assert_eq!(
        d["delta"]["tool_calls"][0]["function"]["arguments"],
        "{\"x\":1}"
    );
    assert_eq!(end[0]["choices"], json!([]));
    assert_eq!(end[0]["usage"]["total_tokens"], 10);
    let mut t = pipeline("m", false);
    push(
        &mut t,
        json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "MAX_TOKENS"}]}),
    );
    assert!(chunks(&t.finish().unwrap()).is_empty());
}

#[test]
fn sse_parser_handles_split_and_crlf_events() {
    let mut p = SseDecoder::new();
    assert!(p.feed(b"data: {\"a\"").is_empty());
    let data: Vec<String> = p
        .feed(b":1}\r\n\r\ndata: {\"b\":2}\n\ndata: {\"c\"")
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(data, vec!["{\"a\":1}", "{\"b\":2}"]);
    assert_eq!(p.finish().map(|e| e.data).as_deref(), Some("{\"c\""));
}

// https://ai.google.dev/api/embeddings#method:-models.batchembedcontents and
// https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api
#[test]
fn embeddings_both_ways() {
    let body = obj(json!({"model": "text-embedding-004", "input": ["a", "b"], "dimensions": 2}));
    assert_eq!(
        gemini_embed_request("text-embedding-004", &body).unwrap(),
        json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 2},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 2}
        ]})
    );
    assert_eq!(
        vertex_embed_request(&body).unwrap(),
        json!({"instances": [{"content": "a"}, {"content": "b"}], "parameters": {"outputDimensionality": 2}})
    );
    let g = json!({"embeddings": [{"values": [0.5, -1.0]}, {"values": [0.25, 2.0]}]});
    let o = embeddings_response(&g, "text-embedding-004", false).unwrap();
    assert_eq!(
        o["data"][1],
        json!({"object": "embedding", "index": 1, "embedding": [0.25, 2.0]})
    );
    let v = json!({"predictions": [{"embeddings": {"statistics": {"truncated": false, "token_count": 6}, "values": [1.0, 0.0]}}],
        "metadata": {"billableCharacterCount": 20}});
    let o = embeddings_response(&v, "text-embedding-005", true).unwrap();
    assert_eq!(o["usage"]["prompt_tokens"], 6);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(o["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, [1.0f32.to_le_bytes(), 0.0f32.to_le_bytes()].concat());
    assert!(gemini_embed_request("m", &obj(json!({"input": [[1, 2]]}))).is_err());
}

// https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes
#[test]
fn google_errors_become_openai_errors() {
    let b = br#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}"#;
    let o: Value = serde_json::from_slice(&error_body("g", 429, b)).unwrap();
    assert_eq!(
        o,
        json!({"error": {"message": "Resource has been exhausted (e.g. check quota).",
            "type": "rate_limit_error", "param": null, "code": "RESOURCE_EXHAUSTED"}})
    );
    let b = br#"[{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}]"#;
    let o: Value = serde_json::from_slice(&error_body("g", 400, b)).unwrap();
    assert_eq!(o["error"]["type"], "invalid_request_error");
    let o: Value =
        serde_json::from_slice(&error_body("g", 502, b"<html>Bad Gateway</html>")).unwrap();
    assert!(o["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Bad Gateway"));
}
