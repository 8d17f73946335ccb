//! Key policy operations: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies. Documents are
//! validated here and in the policy service, which evaluates them on every call.

use kms_bus::policy as op;
use kms_core::{validate, KmsResult};
use kms_proto::v1 as wire;
use serde_json::json;

use super::{limit, Call, Output};
use crate::access::Access;
use crate::params::Params;

fn policy_name(p: &Params) -> KmsResult<String> {
    let name = p.opt_str("PolicyName")?.unwrap_or(validate::DEFAULT_POLICY_NAME);
    validate::policy_name(name)?;
    Ok(name.to_owned())
}

pub(super) async fn get_key_policy(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let name = policy_name(p)?;
    let key = call.resolve(key_ref, Access::to("kms:GetKeyPolicy")).await?;
    let policy = call
        .call::<op::GetPolicy>(&wire::GetPolicyRequest {
            caller: call.caller(),
            key_id: key.key_id,
            policy_name: name,
        })
        .await?;
    Ok(Output::new(json!({ "Policy": policy.document, "PolicyName": policy.policy_name })))
}

pub(super) async fn put_key_policy(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let name = policy_name(p)?;
    let document = p.str("Policy")?;
    let bypass = p.opt_bool("BypassPolicyLockoutSafetyCheck")?.unwrap_or(false);
    let access = Access::to("kms:PutKeyPolicy")
        .condition("kms:BypassPolicyLockoutSafetyCheck", bypass.to_string());
    let key = call.resolve(key_ref, access).await?;
    call.check_customer_managed(&key, "PutKeyPolicy")?;
    super::check_key_policy(call, document, &key.arn, bypass)?;
    call.call::<op::PutPolicy>(&wire::PutPolicyRequest {
        caller: call.caller(),
        key_id: key.key_id.clone(),
        policy_name: name,
        document: document.to_owned(),
    })
    .await?;
    call.changed_key(&key.key_id);
    Ok(Output::new(json!({})))
}

pub(super) async fn list_key_policies(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    limit(p, 100, 1000)?;
    let key = call.resolve(key_ref, Access::to("kms:ListKeyPolicies")).await?;
    let names = call
        .call::<op::ListPolicies>(&wire::ListPoliciesRequest {
            caller: call.caller(),
            key_id: key.key_id,
        })
        .await?;
    Ok(Output::new(json!({ "PolicyNames": names.policy_names, "Truncated": false })))
}
