//! CloudTrail's `LookupEvents`, so `aws cloudtrail lookup-events` reads this service's
//! audit log. Reading the audit log is a permission of its own, as in AWS: a tenant's
//! principal needs an identity policy that allows `cloudtrail:LookupEvents` (an auditor
//! role; the account root needs none) and then sees its own account's events only. A
//! configured admin principal (the platform operator) sees every account's, without a
//! policy: it belongs to no tenant.

use kms_bus::audit as op;
use kms_core::{KmsError, KmsResult};
use kms_proto::v1 as wire;
use serde_json::Value;

use crate::ops::{Call, Output};
use crate::params::Params;

pub(crate) enum LookupFailure {
    Kms(KmsError),
    /// CloudTrail's own error names (InvalidLookupAttributesException, ...).
    CloudTrail {
        code: String,
        message: String,
    },
}

impl From<KmsError> for LookupFailure {
    fn from(e: KmsError) -> Self {
        Self::Kms(e)
    }
}

fn epoch_ms(p: &Params, member: &str) -> KmsResult<Option<i64>> {
    #[allow(clippy::cast_possible_truncation, reason = "epoch milliseconds fit in i64")]
    Ok(p.opt_f64(member)?.map(|s| (s * 1000.0).round() as i64))
}

/// The IAM action that guards reading the audit log.
const LOOKUP_ACTION: &str = "cloudtrail:LookupEvents";

/// Asks the policy service whether the caller's identity policies allow `LookupEvents`
/// (key-less, like CreateKey: no key policy is involved). Not cached: this is no hot
/// path, and a revoked auditor must be refused at once.
async fn authorize_lookup(call: &Call<'_>) -> KmsResult<()> {
    let value = |key: &str, value: &str| wire::ConditionValues {
        key: key.to_owned(),
        values: vec![value.to_owned()],
        multi_valued: false,
    };
    let mut conditions =
        vec![value("aws:SourceIp", &call.source_ip), value("aws:SecureTransport", "false")];
    for (tag, tag_value) in call.principal_tags {
        conditions.push(value(&format!("aws:PrincipalTag/{tag}"), tag_value));
    }
    call.call::<kms_bus::policy::Authorize>(&wire::AuthorizeRequest {
        caller: Some(call.caller.clone()),
        action: LOOKUP_ACTION.to_owned(),
        conditions,
        ..wire::AuthorizeRequest::default()
    })
    .await?;
    Ok(())
}

pub(crate) async fn lookup_events(
    call: &Call<'_>,
    p: &Params,
    is_admin: bool,
) -> Result<Output, LookupFailure> {
    if !is_admin {
        authorize_lookup(call).await?;
    }
    let attributes = p.lookup_attributes()?;
    let max_results = match p.opt_i64("MaxResults")? {
        None => 0,
        Some(n) => u32::try_from(n).ok().filter(|n| (1..=50).contains(n)).ok_or_else(|| {
            LookupFailure::CloudTrail {
                code: "InvalidMaxResultsException".into(),
                message: "MaxResults must be between 1 and 50".into(),
            }
        })?,
    };
    if p.opt_str("EventCategory")? == Some("insight") {
        return Ok(Output { body: serde_json::json!({ "Events": [] }), response_elements: None });
    }
    let response = call
        .call::<op::LookupEvents>(&wire::LookupEventsRequest {
            caller: Some(call.caller.clone()),
            all_accounts: is_admin,
            attributes: attributes
                .into_iter()
                .map(|(key, value)| wire::LookupAttribute { key, value })
                .collect(),
            start_time_ms: epoch_ms(p, "StartTime")?,
            end_time_ms: epoch_ms(p, "EndTime")?,
            max_results,
            next_token: p.opt_str("NextToken")?.unwrap_or_default().to_owned(),
        })
        .await?;
    if !response.error_code.is_empty() {
        return Err(LookupFailure::CloudTrail {
            code: response.error_code,
            message: response.error_message,
        });
    }
    let body: Value =
        serde_json::from_str(&response.response_json).map_err(|_| KmsError::internal())?;
    Ok(Output { body, response_elements: None })
}
