//! Property tests of the parsers a client reaches: cache headers, request bodies (OpenAI
//! and Anthropic), SSE and configuration. Each asserts "no panic, and a failure is a
//! well-formed error naming what was wrong". Case counts are kept small so the whole
//! file runs in a few seconds inside the test command.

use deja::gateway::{self, CacheControls, GatewayError};
use deja::providers::sse::SseDecoder;
use deja::providers::Endpoint;
use proptest::prelude::*;

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Header names: known ones, near misses and anything.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-deja-cache".to_owned()),
        Just("x-deja-cache-threshold".to_owned()),
        Just("x-deja-cache-ttl".to_owned()),
        Just("x-deja-cache-namespace".to_owned()),
        Just("cache-control".to_owned()),
        Just("X-Deja-Cache".to_owned()),
        "x-deja-[a-z-]{0,12}",
        "[a-z-]{1,16}",
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"on".to_vec()),
        Just(b"off".to_vec()),
        Just(b"0.9".to_vec()),
        Just(b"tenant-%C3%A9".to_vec()),
        "[ -~]{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(cfg(512))]

    #[test]
    fn cache_headers_never_panic_and_errors_name_the_header(
        headers in proptest::collection::vec((header_name(), header_value()), 0..6)
    ) {
        let r = CacheControls::from_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        match r {
            Ok(c) => {
                if let Some(t) = c.threshold {
                    prop_assert!((0.0..=1.0).contains(&t));
                }
                prop_assert!(c.namespace.chars().count() <= 128);
                prop_assert!(!c.namespace.chars().any(char::is_control));
            }
            Err(GatewayError::InvalidRequest { message, param }) => {
                let param = param.expect("a header error names the header");
                prop_assert!(param.starts_with("x-deja-"), "{param}");
                prop_assert!(!message.is_empty() && message.len() < 600, "{message}");
            }
            Err(other) => prop_assert!(false, "unexpected error kind: {other:?}"),
        }
    }

    #[test]
    fn namespaces_round_trip_through_percent_encoding(ns in "\\PC{0,40}") {
        let encoded: String = percent_encoding::utf8_percent_encode(
            &ns,
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let headers = [("x-deja-cache-namespace", encoded.as_bytes())];
        match CacheControls::from_headers(headers) {
            Ok(c) => prop_assert_eq!(c.namespace, ns),
            Err(GatewayError::InvalidRequest { param, .. }) => {
                // Only too long or control characters are refused.
                prop_assert_eq!(param.as_deref(), Some("x-deja-cache-namespace"));
                prop_assert!(ns.chars().count() > 128 || ns.chars().any(char::is_control));
            }
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn request_bodies_never_panic(body in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200).boxed(),
        json_like().prop_map(String::into_bytes).boxed(),
    ]) {
        for endpoint in [Endpoint::ChatCompletions, Endpoint::Completions, Endpoint::Embeddings] {
            match gateway::parse_request(endpoint, &body) {
                Ok(_) => {}
                Err(GatewayError::InvalidRequest { message, .. }) => {
                    prop_assert!(!message.is_empty())
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
        // The Anthropic Messages translation and token count.
        let _ = gateway::messages::count_tokens(&body);
    }

    #[test]
    fn sse_decoder_never_panics_and_is_split_invariant(
        bytes in proptest::collection::vec(prop_oneof![
            Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), Just(b'd'), Just(b'a'),
            Just(b't'), any::<u8>()
        ], 0..300),
        split in any::<prop::sample::Index>(),
    ) {
        let whole = {
            let mut d = SseDecoder::new();
            let mut ev = d.feed(&bytes);
            ev.extend(d.finish());
            ev
        };
        let at = if bytes.is_empty() { 0 } else { split.index(bytes.len()) };
        let parts = {
            let mut d = SseDecoder::new();
            let mut ev = d.feed(&bytes[..at]);
            ev.extend(d.feed(&bytes[at..]));
            ev.extend(d.finish());
            ev
        };
        prop_assert_eq!(format!("{whole:?}"), format!("{parts:?}"));
    }
}

/// JSON-ish request bodies: valid shapes with wrong types, missing fields, odd values.
fn json_like() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_owned()),
        Just("1e999".to_owned()),
        Just("-1".to_owned()),
        Just("\"x\"".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("[{\"role\":\"user\",\"content\":\"hi\"}]".to_owned()),
        Just("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]".to_owned()),
        "\"[ -~]{0,10}\"",
    ];
    let key = prop_oneof![
        Just("model"),
        Just("messages"),
        Just("prompt"),
        Just("input"),
        Just("stream"),
        Just("max_tokens"),
        Just("stream_options"),
        Just("n"),
        Just("system"),
    ];
    proptest::collection::vec((key, value), 0..6).prop_map(|kv| {
        let fields: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", fields.join(","))
    })
}

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn config_text_never_panics_and_errors_name_a_source(
        text in prop_oneof![
            "[ -~\n]{0,120}".boxed(),
            config_like().boxed(),
        ]
    ) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        let env = std::collections::HashMap::new();
        if let Err(e) = deja::config::load(Some(f.path()), &env, &Default::default()) {
            let msg = e.to_string();
            prop_assert!(!msg.is_empty() && msg.len() < 2000, "{msg}");
        }
    }
}

fn config_like() -> impl Strategy<Value = String> {
    let section = prop_oneof![
        Just("server"),
        Just("cache"),
        Just("embedder"),
        Just("metrics"),
        Just("providers.p"),
        Just("routing.aliases"),
        Just("admin"),
    ];
    let key = prop_oneof![
        Just("port"),
        Just("kind"),
        Just("keys"),
        Just("api_key"),
        Just("token"),
        Just("max_body_bytes"),
        Just("body_timeout_secs"),
        Just("listen"),
        Just("max_partitions"),
        Just("on_overload"),
        Just("base_url"),
        Just("similarity_threshold"),
    ];
    let value = prop_oneof![
        Just("0".to_owned()),
        Just("-5".to_owned()),
        Just("1e300".to_owned()),
        Just("\"openai\"".to_owned()),
        Just("\"bypass\"".to_owned()),
        Just("[]".to_owned()),
        Just("[{ key = 1 }]".to_owned()),
        Just("{}".to_owned()),
        "\"[ -~]{0,12}\"",
    ];
    (section, proptest::collection::vec((key, value), 1..4)).prop_map(|(s, kv)| {
        let lines: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("[{s}]\n{}\n", lines.join("\n"))
    })
}
