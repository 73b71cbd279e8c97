//! Server-side AWS Signature Version 4: the `Authorization` header a request should carry,
//! recomputed from the request as it arrived (method, path and query as sent, the headers
//! its `SignedHeaders` names, the body) and the credentials the mock knows.
//!
//! The signing itself is the `aws-sigv4` crate's, called here directly: nothing of deja's
//! Bedrock adapter is reused, so a signing bug in the adapter (a header signed but sent
//! differently, the wrong body hashed, the wrong service or region in the scope) makes the
//! mock refuse the request. The tests below pin this function to AWS's published SigV4 test
//! vectors (aws-sig-v4-test-suite), so the check does not depend on trusting the crate either.

use std::time::SystemTime;

/// The credentials a mock accepts.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    /// The request's `x-amz-security-token`, when it carried one.
    pub session_token: Option<&'a str>,
}

/// What was received: `url` is `scheme://host` plus the path and query exactly as sent
/// (still percent-encoded); `signed_headers` are the `(name, value)` pairs named by the
/// request's `SignedHeaders`, values as received.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub signed_headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The `Authorization` value a correct SigV4 signer would have sent for `req`, signed at
/// `time` for `region` and `service` (`bedrock` for Bedrock Runtime).
pub fn expected_authorization(
    creds: Credentials<'_>,
    region: &str,
    service: &str,
    time: SystemTime,
    req: Received<'_>,
) -> Result<String, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(
            creds.access_key_id,
            creds.secret_access_key,
            creds.session_token.map(str::to_owned),
            None,
            "deja-mock",
        )
        .into();
    let mut settings = SigningSettings::default();
    // A server checks exactly the headers the client says it signed: none is left out.
    settings.excluded_headers = None;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    // `x-amz-date` and `x-amz-security-token` are added by the signer from `time` and the
    // identity; passing the received ones as well would list them twice.
    let headers = req.signed_headers.iter().copied().filter(|(n, _)| {
        !n.eq_ignore_ascii_case("x-amz-date") && !n.eq_ignore_ascii_case("x-amz-security-token")
    });
    let signable =
        SignableRequest::new(req.method, req.url, headers, SignableBody::Bytes(req.body))
            .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (headers, _query) = instructions.into_parts();
    headers
        .into_iter()
        .find(|h| h.name() == "authorization")
        .map(|h| h.value().to_owned())
        .ok_or_else(|| "the signer produced no authorization header".to_owned())
}

#[cfg(test)]
mod tests {
    //! Cases from AWS's SigV4 test suite (`aws-sig-v4-test-suite`, as shipped in the
    //! `aws-signing-test-suite/v4` folder of the aws-sigv4 crate): the request, the
    //! context (credentials, region `us-east-1`, service `service`, 2015-08-30T12:36:00Z)
    //! and the `Authorization` of `header-signed-request.txt`.
    use super::*;

    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const HOST: &str = "example.amazonaws.com";

    fn time() -> SystemTime {
        // 2015-08-30T12:36:00Z
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160)
    }

    fn auth(
        session_token: Option<&str>,
        method: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let creds = Credentials {
            access_key_id: KEY_ID,
            secret_access_key: SECRET,
            session_token,
        };
        let req = Received {
            method,
            url: "https://example.amazonaws.com/",
            signed_headers: headers,
            body,
        };
        expected_authorization(creds, "us-east-1", "service", time(), req).unwrap()
    }

    #[test]
    fn get_vanilla() {
        assert_eq!(
            auth(None, "GET", &[("host", HOST), ("x-amz-date", "20150830T123600Z")], b""),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn post_vanilla() {
        assert_eq!(
            auth(None, "POST", &[("host", HOST), ("x-amz-date", "20150830T123600Z")], b""),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        assert_eq!(
            auth(
                Some(token),
                "GET",
                &[
                    ("host", HOST),
                    ("x-amz-date", "20150830T123600Z"),
                    ("x-amz-security-token", token)
                ],
                b""
            ),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        );
    }

    #[test]
    fn post_x_www_form_urlencoded_signs_the_body() {
        let headers = [
            ("content-length", "13"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", HOST),
            (
                "x-amz-content-sha256",
                "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            ),
            ("x-amz-date", "20150830T123600Z"),
        ];
        let expected = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b";
        assert_eq!(auth(None, "POST", &headers, b"Param1=value1"), expected);
        // One byte of the body changed after signing: another signature.
        assert_ne!(auth(None, "POST", &headers, b"Param1=value2"), expected);
    }
}
