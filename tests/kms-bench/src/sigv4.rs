//! AWS Signature Version 4 for awsJson1_1 `POST /` requests, as the SDKs sign them
//! (headers `content-type`, `host`, `x-amz-date`, `x-amz-target`). The payload hash is
//! computed once per prepared body and the signing key once per day, so signing costs
//! two small SHA-256 and one HMAC per request: the generator must not be what limits the
//! measurement.

use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Signs requests for one access key, region and service.
pub(crate) struct Signer {
    access_key: String,
    secret: String,
    region: String,
    service: String,
    /// (yyyymmdd, signing key) of the last day used.
    day_key: Mutex<(String, Vec<u8>)>,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    #[allow(clippy::expect_used, reason = "HMAC-SHA256 takes keys of every length")]
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

impl Signer {
    pub(crate) fn new(access_key: &str, secret: &str, region: &str, service: &str) -> Self {
        Self {
            access_key: access_key.to_owned(),
            secret: secret.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            day_key: Mutex::new((String::new(), Vec::new())),
        }
    }

    fn signing_key(&self, day: &str) -> Vec<u8> {
        let mut cached = self.day_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cached.0 != day {
            let k = hmac(format!("AWS4{}", self.secret).as_bytes(), day.as_bytes());
            let k = hmac(&k, self.region.as_bytes());
            let k = hmac(&k, self.service.as_bytes());
            let k = hmac(&k, b"aws4_request");
            *cached = (day.to_owned(), k);
        }
        cached.1.clone()
    }

    /// The `x-amz-date` and `authorization` header values of a request.
    pub(crate) fn sign(&self, host: &str, target: &str, payload_hash: &str) -> (String, String) {
        let now = time::OffsetDateTime::now_utc();
        let amz_date = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let day = &amz_date[..8];
        let canonical = format!(
            "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:{amz_date}\nx-amz-target:{target}\n\ncontent-type;host;x-amz-date;x-amz-target\n{payload_hash}"
        );
        let scope = format!("{day}/{}/{}/aws4_request", self.region, self.service);
        let to_sign =
            format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
        let signature = hex::encode(hmac(&self.signing_key(day), to_sign.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={signature}",
            self.access_key
        );
        (amz_date, authorization)
    }
}
