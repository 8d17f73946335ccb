//! JWT bearer-token verification against the configured issuers.
//!
//! The issuer is chosen by the token's unverified `iss`; everything after that is verified
//! with that issuer's key and algorithm only. `exp` and `nbf` are checked here against the
//! injected clock (not by `jsonwebtoken`, which reads the system clock), with 60 s leeway.

use std::collections::HashSet;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{AuthError, AuthFailure};
use crate::identity::{is_account_id, is_iam_name, parse_principal_arn, AuthMethod, Identity};
use crate::store::{CredentialStore, PreparedIssuer};

/// Clock leeway for `exp` and `nbf`, in seconds.
pub(crate) const LEEWAY_SECONDS: i64 = 60;

type Claims = Map<String, Value>;

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidToken(reason.into())
}

/// The token's claims, unverified: only used to choose the issuer.
fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    let mut validation = Validation::default();
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&[]), &validation)
        .map_err(|_| invalid("the token is not a well-formed JWT"))?;
    match data.claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        _ => Err(invalid("the token has no string 'iss' claim")),
    }
}

/// Verifies signature, algorithm, `iss`, `aud` and the presence of `exp`.
fn verified_claims(issuer: &PreparedIssuer, token: &str) -> Result<Claims, AuthError> {
    let entry = &issuer.entry;
    let mut validation = Validation::new(entry.algorithm.to_jsonwebtoken());
    validation.set_issuer(&[&entry.issuer]);
    validation.set_audience(&[&entry.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    // Time claims are checked against the injected clock by `check_times`.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    jsonwebtoken::decode::<Claims>(token, &issuer.key, &validation).map(|data| data.claims).map_err(
        |e| match e.kind() {
            ErrorKind::InvalidSignature => invalid("the token signature does not verify"),
            ErrorKind::InvalidAlgorithm => invalid("the token algorithm is not the issuer's"),
            ErrorKind::InvalidAudience => invalid("the token audience is not accepted"),
            ErrorKind::InvalidIssuer => invalid("the token issuer is not accepted"),
            ErrorKind::MissingRequiredClaim(claim) => {
                invalid(format!("the token has no valid '{claim}' claim"))
            }
            _ => invalid("the token is not a well-formed JWT"),
        },
    )
}

fn numeric_claim(claims: &Claims, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            // Fractional NumericDate values are allowed; whole seconds are enough here.
            .or_else(|| value.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| invalid(format!("the token's '{name}' claim is not a number"))),
    }
}

fn check_times(claims: &Claims, now: OffsetDateTime) -> Result<(), AuthError> {
    let now = now.unix_timestamp();
    let exp =
        numeric_claim(claims, "exp")?.ok_or_else(|| invalid("the token has no 'exp' claim"))?;
    if exp.saturating_add(LEEWAY_SECONDS) < now {
        return Err(AuthError::ExpiredToken(
            "The security token included in the request is expired".to_owned(),
        ));
    }
    if let Some(nbf) = numeric_claim(claims, "nbf")? {
        if nbf.saturating_sub(LEEWAY_SECONDS) > now {
            return Err(invalid("the token is not yet valid ('nbf' is in the future)"));
        }
    }
    Ok(())
}

fn string_claim<'c>(claims: &'c Claims, name: &str) -> Result<Option<&'c str>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("the token's '{name}' claim is not a string"))),
    }
}

fn identity_from_claims(issuer: &PreparedIssuer, claims: &Claims) -> Result<Identity, AuthError> {
    let entry = &issuer.entry;
    let account_id = string_claim(claims, &entry.account_claim)?
        .ok_or_else(|| invalid(format!("the token has no '{}' claim", entry.account_claim)))?;
    if !is_account_id(account_id) {
        return Err(invalid(format!(
            "the token's '{}' claim is not a 12-digit account id",
            entry.account_claim
        )));
    }
    let principal = string_claim(claims, &entry.principal_claim)?
        .ok_or_else(|| invalid(format!("the token has no '{}' claim", entry.principal_claim)))?;
    let (principal_arn, user_name) = if principal.starts_with("arn:") {
        let arn = parse_principal_arn(principal).map_err(|_| {
            invalid(format!(
                "the token's '{}' claim is not a valid IAM principal ARN",
                entry.principal_claim
            ))
        })?;
        if arn.account_id != account_id {
            return Err(invalid(format!(
                "the token's '{}' ARN is not in the token's account",
                entry.principal_claim
            )));
        }
        (principal.to_owned(), arn.user_name.to_owned())
    } else {
        if !is_iam_name(principal) {
            return Err(invalid(format!(
                "the token's '{}' claim is not a valid IAM user name",
                entry.principal_claim
            )));
        }
        (format!("arn:aws:iam::{account_id}:user/{principal}"), principal.to_owned())
    };
    let region = string_claim(claims, &entry.region_claim)?.map(str::to_owned);
    let principal_tags = match claims.get("principal_tags") {
        None | Some(Value::Null) => std::collections::BTreeMap::new(),
        Some(Value::Object(tags)) => tags
            .iter()
            .map(|(k, v)| match v {
                Value::String(v) => Ok((k.clone(), v.clone())),
                _ => Err(invalid("the token's 'principal_tags' values must be strings".to_owned())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(invalid("the token's 'principal_tags' claim is not an object".to_owned()))
        }
    };
    Ok(Identity {
        account_id: account_id.to_owned(),
        principal_arn,
        user_name,
        identity_type: "WebIdentityUser".to_owned(),
        access_key_id: None,
        region,
        service: None,
        method: AuthMethod::Jwt { issuer: entry.issuer.clone() },
        principal_tags,
        session: None,
    })
}

/// Verifies a bearer token and derives the caller's identity.
pub(crate) fn verify(
    store: &CredentialStore,
    token: &str,
    now: OffsetDateTime,
) -> Result<Identity, AuthFailure> {
    let iss = unverified_issuer(token)?;
    let issuer = store.issuer(&iss).ok_or(AuthError::UnrecognizedClient)?;
    let claims = verified_claims(issuer, token)?;
    // The signature is good from here on, so a refused token still names its subject.
    let identity = identity_from_claims(issuer, &claims);
    if let Err(error) = check_times(&claims, now) {
        return Err(AuthFailure { error, identity: identity.ok().map(Box::new) });
    }
    Ok(identity?)
}

#[cfg(test)]
mod tests;
