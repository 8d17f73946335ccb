//! SigV4 verifier tests, pinned by AWS's published "aws-sig-v4-test-suite" vectors.

use http::{HeaderMap, HeaderName, HeaderValue};
use time::macros::datetime;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::*;
use crate::store::{AccessKeyEntry, CredentialStore};

const SUITE_KEY_ID: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SUITE_TIME: OffsetDateTime = datetime!(2015-08-30 12:36:00 UTC);
const VANILLA_GET: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
const VANILLA_POST: &str = "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b";
const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

fn suite_store() -> CredentialStore {
    CredentialStore::new(
        vec![AccessKeyEntry {
            access_key_id: SUITE_KEY_ID.to_owned(),
            secret_access_key: Zeroizing::new(SUITE_SECRET.to_owned()),
            account_id: "111122223333".to_owned(),
            principal_arn: "arn:aws:iam::111122223333:user/example".to_owned(),
            tags: Default::default(),
        }],
        vec![],
        vec![],
    )
    .unwrap()
}

/// One test-suite case: the request as its `.req` file has it, and the published signature.
struct Vector {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    /// Beyond `Host` and `X-Amz-Date`, in order (repeats are separate header lines).
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    signed_headers: &'static str,
    signature: &'static str,
}

const fn get(name: &'static str, path: &'static str, signature: &'static str) -> Vector {
    Vector {
        name,
        method: "GET",
        path,
        query: "",
        headers: &[],
        body: "",
        signed_headers: "host;x-amz-date",
        signature,
    }
}

const MY_HEADER: &str = "host;my-header1;x-amz-date";

const SUITE: &[Vector] = &[
    get("get-vanilla", "/", VANILLA_GET),
    Vector {
        query: "Param2=value2&Param1=value1",
        ..get(
            "get-vanilla-query-order-key-case",
            "/",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        )
    },
    Vector {
        query: "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        ..get(
            "get-vanilla-query-unreserved",
            "/",
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        )
    },
    Vector {
        query: "\u{1234}=bar",
        ..get(
            "get-vanilla-utf8-query",
            "/",
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        )
    },
    // The same request as it travels on the wire: the query is decoded before re-encoding.
    Vector {
        query: "%E1%88%B4=bar",
        ..get(
            "get-vanilla-utf8-query (wire form)",
            "/",
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        )
    },
    Vector {
        headers: &[
            ("My-Header1", "value2"),
            ("My-Header1", "value2"),
            ("My-Header1", "value1"),
        ],
        signed_headers: MY_HEADER,
        ..get(
            "get-header-key-duplicate",
            "/",
            "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        )
    },
    Vector {
        headers: &[
            ("My-Header1", "value4"),
            ("My-Header1", "value1"),
            ("My-Header1", "value3"),
            ("My-Header1", "value2"),
        ],
        signed_headers: MY_HEADER,
        ..get(
            "get-header-value-order",
            "/",
            "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
        )
    },
    Vector {
        headers: &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
        signed_headers: "host;my-header1;my-header2;x-amz-date",
        ..get(
            "get-header-value-trim",
            "/",
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        )
    },
    get(
        "get-unreserved",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    get(
        "get-utf8",
        "/\u{1234}",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
    // normalize-path/*
    get(
        "get-space",
        "/example space/",
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    ),
    get("get-relative", "/example/..", VANILLA_GET),
    get("get-relative-relative", "/example1/example2/../..", VANILLA_GET),
    get("get-slash", "//", VANILLA_GET),
    get("get-slash-dot-slash", "/./", VANILLA_GET),
    get(
        "get-slash-pointless-dot",
        "/./example",
        "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
    ),
    get(
        "get-slashes",
        "//example//",
        "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    ),
    Vector {
        method: "POST",
        ..get("post-vanilla", "/", VANILLA_POST)
    },
    Vector {
        method: "POST",
        query: "Param1=value1",
        ..get(
            "post-vanilla-query",
            "/",
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        )
    },
    Vector {
        method: "POST",
        query: "@#$%^&+=/,?><`\";:\\|][{}",
        ..get(
            "post-vanilla-query-nonunreserved",
            "/",
            "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e",
        )
    },
    Vector {
        method: "POST",
        headers: &[("My-Header1", "value1")],
        signed_headers: MY_HEADER,
        ..get(
            "post-header-key-sort",
            "/",
            "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
        )
    },
    Vector {
        method: "POST",
        headers: &[("My-Header1", "VALUE1")],
        signed_headers: MY_HEADER,
        ..get(
            "post-header-value-case",
            "/",
            "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        )
    },
    Vector {
        method: "POST",
        headers: &[("X-Amz-Security-Token", STS_TOKEN)],
        signed_headers: "host;x-amz-date;x-amz-security-token",
        ..get(
            "post-sts-header-before",
            "/",
            "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        )
    },
    // The token travels but is not signed.
    Vector {
        method: "POST",
        headers: &[("X-Amz-Security-Token", STS_TOKEN)],
        ..get("post-sts-header-after", "/", VANILLA_POST)
    },
    Vector {
        method: "POST",
        headers: &[("Content-Type", "application/x-www-form-urlencoded")],
        body: "Param1=value1",
        signed_headers: "content-type;host;x-amz-date",
        ..get(
            "post-x-www-form-urlencoded",
            "/",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        )
    },
    Vector {
        method: "POST",
        headers: &[(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf8",
        )],
        body: "Param1=value1",
        signed_headers: "content-type;host;x-amz-date",
        ..get(
            "post-x-www-form-urlencoded-parameters",
            "/",
            "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
        )
    },
];

fn suite_headers(v: &Vector) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
    headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
    for (name, value) in v.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn suite_authorization(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={SUITE_KEY_ID}/20150830/us-east-1/service/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

fn parts<'a>(v: &'a Vector, headers: &'a HeaderMap) -> RequestParts<'a> {
    RequestParts {
        method: v.method,
        path: v.path,
        query: v.query,
        headers,
        authority: None,
        body: v.body.as_bytes(),
    }
}

/// Verifies the vector as published, then with its signature's last digit changed.
fn check(v: &Vector) {
    let store = suite_store();
    let headers = suite_headers(v);
    let authorization = suite_authorization(v.signed_headers, v.signature);
    match verify(&store, &authorization, &parts(v, &headers), SUITE_TIME) {
        Ok(ok) => {
            assert_eq!(ok.entry.access_key_id, SUITE_KEY_ID, "{}", v.name);
            assert_eq!(ok.region, "us-east-1", "{}", v.name);
            assert_eq!(ok.service, "service", "{}", v.name);
        }
        Err(refused) => {
            let creq = canonical_request(
                &parts(v, &headers),
                &parse_authorization(&authorization).unwrap().signed_headers,
            );
            panic!(
                "{}: {:?}\ncanonical request:\n{}",
                v.name,
                refused.error,
                String::from_utf8_lossy(&creq.unwrap_or_default())
            );
        }
    }

    let mut tampered = v.signature.to_owned();
    let last = if tampered.ends_with('0') { "1" } else { "0" };
    tampered.replace_range(63.., last);
    let authorization = suite_authorization(v.signed_headers, &tampered);
    let refused = verify(&store, &authorization, &parts(v, &headers), SUITE_TIME).unwrap_err();
    assert_eq!(refused.error, AuthError::signature_mismatch(), "{}", v.name);
    assert!(refused.entry.is_some(), "{}", v.name);
}

#[test]
fn aws_sigv4_test_suite() {
    for v in SUITE {
        check(v);
    }
}

/// Intermediate values the suite publishes (`.creq` and `.sts` files).
#[test]
fn suite_canonical_requests_and_strings_to_sign() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "get-vanilla",
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        ),
        (
            "get-header-value-trim",
            "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
        ),
        (
            "get-space",
            "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
        ),
        (
            "get-header-value-order",
            "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
        ),
    ];
    for (name, creq, sts_hash) in cases {
        let v = SUITE.iter().find(|v| v.name == *name).unwrap();
        let headers = suite_headers(v);
        let signed: Vec<String> = v.signed_headers.split(';').map(str::to_owned).collect();
        let got = canonical_request(&parts(v, &headers), &signed).unwrap();
        assert_eq!(String::from_utf8(got.clone()).unwrap(), *creq, "{name}");
        let sts =
            string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", &got);
        assert_eq!(
            sts,
            format!(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{sts_hash}"
            ),
            "{name}"
        );
    }
}

/// The derived-key example from AWS's "Examples of how to derive a signing key" page.
#[test]
fn signing_key_derivation() {
    let key = signing_key(SUITE_SECRET, "20150830", "us-east-1", "iam").unwrap();
    assert_eq!(
        hex::encode(key.as_ref()),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
}

#[test]
fn path_normalization_and_encoding() {
    for (raw, expected) in [
        ("", "/"),
        ("/", "/"),
        ("//", "/"),
        ("/./", "/"),
        ("/example/..", "/"),
        ("/example1/example2/../..", "/"),
        ("/../a", "/a"),
        ("/./example", "/example"),
        ("//example//", "/example/"),
        ("/example/./a/../b", "/example/b"),
        ("/a/b/.", "/a/b/"),
        ("/example space/", "/example%20space/"),
        // Non-S3 services encode the wire path again.
        ("/example%20space/", "/example%2520space/"),
        ("/%E1%88%B4", "/%25E1%2588%25B4"),
        ("/a$b", "/a%24b"),
        ("/a-._~b", "/a-._~b"),
    ] {
        assert_eq!(canonical_uri(raw), expected, "{raw:?}");
    }
}

#[test]
fn query_canonicalization() {
    for (raw, expected) in [
        ("", ""),
        ("a=1", "a=1"),
        ("b=2&a=1", "a=1&b=2"),
        ("a=2&a=1&a=10", "a=1&a=10&a=2"),
        ("flag", "flag="),
        ("flag=", "flag="),
        ("a=1&&b=2&", "a=1&b=2"),
        ("k=a%20b", "k=a%20b"),
        ("k=a+b", "k=a%2Bb"),
        ("k=%7e%2f", "k=~%2F"),
        ("k=100%", "k=100%25"),
        ("Param-3=V3&Param=V2&%E1%88%B4=V1", "%E1%88%B4=V1&Param=V2&Param-3=V3"),
        ("a=x=y", "a=x%3Dy"),
    ] {
        assert_eq!(canonical_query(raw), expected, "{raw:?}");
    }
}

#[test]
fn header_value_trimming() {
    for (raw, expected) in [
        ("value", "value"),
        ("  value  ", "value"),
        ("a   b\t\tc", "a b c"),
        ("\t a \t", "a"),
        ("", ""),
        ("   ", ""),
    ] {
        let mut out = Vec::new();
        push_trimmed_value(&mut out, raw.as_bytes());
        assert_eq!(String::from_utf8(out).unwrap(), expected, "{raw:?}");
    }
}

fn incomplete_message(authorization: &str) -> String {
    match parse_authorization(authorization) {
        Err(AuthError::IncompleteSignature(message)) => message,
        other => panic!("{authorization:?} gave {other:?}"),
    }
}

#[test]
fn malformed_authorization_headers_are_incomplete() {
    let cred = "Credential=AKID/20150830/us-east-1/kms/aws4_request";
    for (header, fragment) in [
        ("AWS4-HMAC-SHA256", "Unsupported signing algorithm"),
        ("AWS4-HMAC-SHA512 Credential=x", "Unsupported signing algorithm"),
        ("AWS4-HMAC-SHA256Credential=x", "Unsupported signing algorithm"),
        (
            "AWS4-HMAC-SHA256 ",
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.",
        ),
        (
            &format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host"),
            "requires 'Signature' parameter.",
        ),
        (
            &format!("AWS4-HMAC-SHA256 {cred}, Signature=00"),
            "requires 'SignedHeaders' parameter.",
        ),
        (
            &format!("AWS4-HMAC-SHA256 {cred}, {cred}, SignedHeaders=host, Signature=00"),
            "more than one 'Credential'",
        ),
        (
            &format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host, Signature=00, Extra=1"),
            "unknown parameter",
        ),
        (
            &format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host, Signature"),
            "name=value",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms, SignedHeaders=host, Signature=00",
            "Credential must have the form",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms/aws4_request/x, SignedHeaders=host, Signature=00",
            "Credential must have the form",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms/aws5_request, SignedHeaders=host, Signature=00",
            "valid terminator: 'aws4_request', not 'aws5_request'",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00",
            "access key id",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/2015-08-30/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00",
            "valid date",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830//kms/aws4_request, SignedHeaders=host, Signature=00",
            "region and a service",
        ),
        (
            &format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=x-amz-date, Signature=00"),
            "'Host' or ':authority' must be a 'SignedHeader'",
        ),
        (
            &format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;;x-amz-date, Signature=00"),
            "empty or invalid header name",
        ),
        (
            &format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host, Signature="),
            "Signature must not be empty",
        ),
    ] {
        let message = incomplete_message(header);
        assert!(
            message.contains(fragment),
            "{header:?}: {message:?} lacks {fragment:?}"
        );
    }
}

#[test]
fn authorization_parsing() {
    let parsed = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms/aws4_request,SignedHeaders=Host;X-Amz-Date ,  Signature=abcd",
    )
    .unwrap();
    assert_eq!(
        parsed,
        ParsedAuthorization {
            access_key_id: "AKID",
            scope_date: "20150830",
            region: "us-east-1",
            service: "kms",
            signed_headers: vec!["host".to_owned(), "x-amz-date".to_owned()],
            signature: "abcd",
        }
    );
    assert_eq!(parsed.scope(), "20150830/us-east-1/kms/aws4_request");
}

#[test]
fn clock_window() {
    let now = datetime!(2015-08-30 12:46:00 UTC);
    let check = |request: OffsetDateTime, expected: Result<(), &str>| {
        let got = check_clock(request, now);
        match expected {
            Ok(()) => assert_eq!(got, Ok(()), "{request}"),
            Err(message) => {
                assert_eq!(got, Err(AuthError::InvalidSignature(message.to_owned())))
            }
        }
    };
    check(now, Ok(()));
    check(datetime!(2015-08-30 12:41:00 UTC), Ok(()));
    check(datetime!(2015-08-30 12:51:00 UTC), Ok(()));
    check(
        datetime!(2015-08-30 12:36:00 UTC),
        Err("Signature expired: 20150830T123600Z is now earlier than 20150830T124100Z (20150830T124600Z - 5 min.)"),
    );
    check(
        datetime!(2015-08-30 12:40:59 UTC),
        Err("Signature expired: 20150830T124059Z is now earlier than 20150830T124100Z (20150830T124600Z - 5 min.)"),
    );
    check(
        datetime!(2015-08-30 12:52:00 UTC),
        Err("Signature not yet current: 20150830T125200Z is still later than 20150830T125100Z (20150830T124600Z + 5 min.)"),
    );
}

#[test]
fn request_time_headers() {
    let with = |pairs: &[(&'static str, &'static str)]| {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        request_time(&headers)
    };
    let expected = Ok((SUITE_TIME, "20150830T123600Z".to_owned()));
    assert_eq!(with(&[("x-amz-date", "20150830T123600Z")]), expected);
    assert_eq!(with(&[("date", "Sun, 30 Aug 2015 12:36:00 GMT")]), expected);
    assert_eq!(with(&[("date", "20150830T123600Z")]), expected);
    // x-amz-date wins over Date.
    assert_eq!(
        with(&[("x-amz-date", "20150830T123600Z"), ("date", "Mon, 31 Aug 2015 12:36:00 GMT")]),
        expected
    );
    for bad in [
        &[][..],
        &[("x-amz-date", "2015-08-30T12:36:00Z")],
        &[("x-amz-date", "20150830T123600")],
        &[("date", "yesterday")],
    ] {
        assert!(matches!(with(bad), Err(AuthError::IncompleteSignature(_))), "{bad:?}");
    }
}

/// The error (and whether the key was known) for a request that must be refused.
fn refusal(authorization: &str, p: &RequestParts<'_>) -> (AuthError, bool) {
    let store = suite_store();
    let refused = verify(&store, authorization, p, SUITE_TIME).unwrap_err();
    (refused.error, refused.entry.is_some())
}

/// Signs `v` with the verifier's own pieces, for cases the suite does not cover.
fn resign(v: &Vector, headers: &HeaderMap, scope_date: &str, amz_date: &str) -> String {
    let signed: Vec<String> = v.signed_headers.split(';').map(str::to_owned).collect();
    let creq = canonical_request(&parts(v, headers), &signed).unwrap();
    let scope = format!("{scope_date}/us-east-1/service/aws4_request");
    let sts = string_to_sign(amz_date, &scope, &creq);
    let key = signing_key(SUITE_SECRET, scope_date, "us-east-1", "service").unwrap();
    let sig = hex::encode(hmac(key.as_ref(), sts.as_bytes()).unwrap().as_ref());
    format!(
        "AWS4-HMAC-SHA256 Credential={SUITE_KEY_ID}/{scope}, SignedHeaders={}, Signature={sig}",
        v.signed_headers
    )
}

#[test]
fn scope_date_must_match_request_date() {
    let v = &SUITE[0];
    let headers = suite_headers(v);
    let authorization = resign(v, &headers, "20150831", "20150830T123600Z");
    let (error, known) = refusal(&authorization, &parts(v, &headers));
    assert_eq!(
        error,
        AuthError::InvalidSignature(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150831' != '20150830', from '20150830T123600Z'.".to_owned()
        )
    );
    assert!(known);
}

#[test]
fn signed_header_missing_from_request_fails() {
    let v = Vector { signed_headers: MY_HEADER, ..get("missing", "/", VANILLA_GET) };
    let headers = suite_headers(&v);
    let authorization = suite_authorization(MY_HEADER, VANILLA_GET);
    let (error, _) = refusal(&authorization, &parts(&v, &headers));
    assert_eq!(error, AuthError::signature_mismatch());
}

#[test]
fn host_from_authority_when_no_host_header() {
    let v = &SUITE[0];
    let mut headers = suite_headers(v);
    headers.remove("host");
    let authorization = suite_authorization(v.signed_headers, v.signature);
    let mut p = parts(v, &headers);
    p.authority = Some("example.amazonaws.com");
    assert!(verify(&suite_store(), &authorization, &p, SUITE_TIME).is_ok());
    p.authority = None;
    assert!(verify(&suite_store(), &authorization, &p, SUITE_TIME).is_err());
}

#[test]
fn content_sha256_header_must_match_body() {
    let v = Vector {
        method: "POST",
        body: "{}",
        signed_headers: "host;x-amz-content-sha256;x-amz-date",
        ..get("content-sha", "/", VANILLA_POST)
    };
    let body_hash = hex::encode(Sha256::digest(b"{}"));
    let mut headers = suite_headers(&v);
    headers.insert("x-amz-content-sha256", HeaderValue::from_str(&body_hash).unwrap());
    let authorization = resign(&v, &headers, "20150830", "20150830T123600Z");
    assert!(verify(&suite_store(), &authorization, &parts(&v, &headers), SUITE_TIME).is_ok());

    for wrong in [hex::encode(Sha256::digest(b"[]")), "UNSIGNED-PAYLOAD".to_owned()] {
        headers.insert("x-amz-content-sha256", HeaderValue::from_str(&wrong).unwrap());
        let (error, _) = refusal(&authorization, &parts(&v, &headers));
        assert_eq!(
            error,
            AuthError::InvalidSignature(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .to_owned()
            ),
            "{wrong}"
        );
    }
}

#[test]
fn malformed_signature_hex_is_a_mismatch() {
    let v = &SUITE[0];
    let headers = suite_headers(v);
    for sig in ["zz", "5fa00f", &format!("{VANILLA_GET}00")] {
        let authorization = suite_authorization(v.signed_headers, sig);
        let (error, _) = refusal(&authorization, &parts(v, &headers));
        assert_eq!(error, AuthError::signature_mismatch(), "{sig}");
    }
    // Upper-case hex of the right signature still verifies.
    let authorization = suite_authorization(v.signed_headers, &VANILLA_GET.to_uppercase());
    assert!(verify(&suite_store(), &authorization, &parts(v, &headers), SUITE_TIME).is_ok());
}
