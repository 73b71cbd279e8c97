//! The Bedrock mock refuses what AWS refuses: requests are signed here with the
//! `aws-sigv4` crate as any AWS SDK would sign them, then sent as signed or altered.

use deja_mock::bedrock::{BedrockMock, BedrockMockSettings};
use std::time::SystemTime;

const PATH: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";

struct Signing<'a> {
    secret: &'a str,
    region: &'a str,
    service: &'a str,
}

const RIGHT: Signing<'static> = Signing {
    secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    region: "us-east-1",
    service: "bedrock",
};

/// `(name, value)` headers to send: content-type, x-amz-date and authorization.
fn sign(mock: &BedrockMock, s: &Signing<'_>, body: &[u8]) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new("AKIDEXAMPLE", s.secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(s.region)
        .name(s.service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("{}{PATH}", mock.base_url());
    let headers = [
        ("host", mock.addr.to_string()),
        ("content-type", "application/json".to_owned()),
    ];
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(n, v)| (*n, v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let (signed, _) = instructions.into_parts();
    let mut out = vec![("content-type".to_owned(), "application/json".to_owned())];
    out.extend(
        signed
            .into_iter()
            .map(|h| (h.name().to_owned(), h.value().to_owned())),
    );
    out
}

/// Send; `(status, x-amzn-ErrorType without its suffix)`.
async fn send(mock: &BedrockMock, headers: &[(String, String)], body: &[u8]) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{PATH}", mock.base_url()))
        .body(body.to_vec());
    for (n, v) in headers {
        req = req.header(n, v);
    }
    let r = req.send().await.unwrap();
    let kind = r
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(':').next())
        .unwrap_or("")
        .to_owned();
    (r.status().as_u16(), kind)
}

fn body(text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "messages": [{"role": "user", "content": [{"text": text}]}]
    }))
    .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_correct_signature_is_accepted_and_any_wrong_one_refused_with_403() {
    let mock = BedrockMock::start(BedrockMockSettings::default()).unwrap();
    let b = body("hello");

    let good = sign(&mock, &RIGHT, &b);
    assert_eq!(send(&mock, &good, &b).await, (200, String::new()));

    // The signature's last hex digit changed.
    let mut tampered = good.clone();
    for (n, v) in &mut tampered {
        if n == "authorization" {
            let last = v.pop().unwrap();
            v.push(if last == '0' { '1' } else { '0' });
        }
    }
    let refused = (403, "InvalidSignatureException".to_owned());
    assert_eq!(send(&mock, &tampered, &b).await, refused);

    // Signed with another secret key.
    let wrong_secret = Signing {
        secret: "not-the-secret",
        ..RIGHT
    };
    let h = sign(&mock, &wrong_secret, &b);
    assert_eq!(send(&mock, &h, &b).await, refused);

    // The body changed after signing.
    assert_eq!(send(&mock, &good, &body("hellO")).await, refused);

    // Signed for another region or service.
    let h = sign(
        &mock,
        &Signing {
            region: "eu-west-1",
            ..RIGHT
        },
        &b,
    );
    assert_eq!(send(&mock, &h, &b).await, refused);
    let h = sign(
        &mock,
        &Signing {
            service: "s3",
            ..RIGHT
        },
        &b,
    );
    assert_eq!(send(&mock, &h, &b).await, refused);

    // No signature at all.
    let unsigned = vec![("content-type".to_owned(), "application/json".to_owned())];
    assert_eq!(
        send(&mock, &unsigned, &b).await,
        (403, "MissingAuthenticationTokenException".to_owned())
    );

    // Only the correctly signed request got through.
    assert_eq!(mock.requests().len(), 1);
}
