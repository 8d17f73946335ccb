//! The admin API for identity policies (there is no IAM beside this service, so the
//! policies IAM would attach to users and roles live in the policy service). JSON over
//! the same endpoint, `X-Amz-Target: KmsAdmin_20261101.<Operation>`, SigV4 or JWT like
//! every call, audited like every call:
//!
//! - `PutPrincipalPolicy {PrincipalArn, PolicyName, PolicyDocument}`
//! - `GetPrincipalPolicy {PrincipalArn, PolicyName}` → `{PrincipalArn, PolicyName, PolicyDocument}`
//! - `DeletePrincipalPolicy {PrincipalArn, PolicyName}`
//! - `ListPrincipalPolicies {PrincipalArn}` → `{PolicyNames}`
//!
//! Who may: a platform administrator (configured in the credentials file) for any
//! account; otherwise principals of the same account whose identity policies allow the
//! IAM action (`iam:PutUserPolicy` / `iam:PutRolePolicy`, `iam:Get*Policy`,
//! `iam:Delete*Policy`, `iam:List*Policies`) — the account root always may. `kms:*`
//! does not include them, so a key user cannot widen its own rights.

use kms_bus::policy as op;
use kms_core::{ErrorCode, KmsError, KmsResult};
use kms_proto::v1 as wire;
use serde_json::json;

use super::{Call, Output};
use crate::access::Access;
use crate::params::Params;

/// The account a principal ARN belongs to (`arn:aws:iam::<account>:...`).
fn principal_account(arn: &str) -> KmsResult<&str> {
    arn.strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split_once(':'))
        .map(|(account, _)| account)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            KmsError::validation(format!("'{arn}' is not a user or role ARN of an account"))
        })
}

/// The IAM action for `verb` (Put, Get, Delete, List) on this principal's policies.
fn iam_action(verb: &str, principal: &str) -> &'static str {
    let role = principal.contains(":role/");
    match (verb, role) {
        ("Put", false) => "iam:PutUserPolicy",
        ("Put", true) => "iam:PutRolePolicy",
        ("Get", false) => "iam:GetUserPolicy",
        ("Get", true) => "iam:GetRolePolicy",
        ("Delete", false) => "iam:DeleteUserPolicy",
        ("Delete", true) => "iam:DeleteRolePolicy",
        (_, false) => "iam:ListUserPolicies",
        (_, true) => "iam:ListRolePolicies",
    }
}

async fn check_admin(
    call: &Call<'_>,
    verb: &str,
    principal: &str,
    is_admin: bool,
) -> KmsResult<()> {
    let account = principal_account(principal)?;
    if is_admin {
        return Ok(());
    }
    if account != call.caller.account {
        return Err(KmsError::new(
            ErrorCode::AccessDenied,
            format!(
                "User: {} is not authorized to manage the policies of {principal}: it belongs \
                 to another account",
                call.caller.principal
            ),
        ));
    }
    call.authorize(None, Access::to(iam_action(verb, principal))).await.map(|_| ())
}

/// Dispatches a `KmsAdmin_20261101.<name>` operation. `None` for an unknown name.
pub(crate) async fn dispatch(
    call: &Call<'_>,
    name: &str,
    p: &Params,
    is_admin: bool,
) -> Option<KmsResult<Output>> {
    let result = match name {
        "PutPrincipalPolicy" => put(call, p, is_admin).await,
        "GetPrincipalPolicy" => get(call, p, is_admin).await,
        "DeletePrincipalPolicy" => delete(call, p, is_admin).await,
        "ListPrincipalPolicies" => list(call, p, is_admin).await,
        _ => return None,
    };
    Some(result)
}

/// Identity policies change decisions about every key: this gateway forgets its cached
/// ones at once (the others hear the policy service's announcement).
fn forget_decisions(call: &Call<'_>) {
    call.decisions.forget_all();
}

async fn put(call: &Call<'_>, p: &Params, is_admin: bool) -> KmsResult<Output> {
    let principal = p.str("PrincipalArn")?;
    let name = p.str("PolicyName")?;
    let document = p.str("PolicyDocument")?;
    check_admin(call, "Put", principal, is_admin).await?;
    call.call::<op::PutIdentityPolicy>(&wire::PutIdentityPolicyRequest {
        caller: call.caller(),
        principal_arn: principal.to_owned(),
        policy_name: name.to_owned(),
        document: document.to_owned(),
    })
    .await?;
    forget_decisions(call);
    Ok(Output::new(json!({})))
}

fn policy_ref(call: &Call<'_>, principal: &str, name: &str) -> wire::IdentityPolicyRef {
    wire::IdentityPolicyRef {
        caller: call.caller(),
        principal_arn: principal.to_owned(),
        policy_name: name.to_owned(),
    }
}

async fn get(call: &Call<'_>, p: &Params, is_admin: bool) -> KmsResult<Output> {
    let principal = p.str("PrincipalArn")?;
    let name = p.str("PolicyName")?;
    check_admin(call, "Get", principal, is_admin).await?;
    let policy = call.call::<op::GetIdentityPolicy>(&policy_ref(call, principal, name)).await?;
    Ok(Output::new(json!({
        "PrincipalArn": policy.principal_arn,
        "PolicyName": policy.policy_name,
        "PolicyDocument": policy.document,
    })))
}

async fn delete(call: &Call<'_>, p: &Params, is_admin: bool) -> KmsResult<Output> {
    let principal = p.str("PrincipalArn")?;
    let name = p.str("PolicyName")?;
    check_admin(call, "Delete", principal, is_admin).await?;
    call.call::<op::DeleteIdentityPolicy>(&policy_ref(call, principal, name)).await?;
    forget_decisions(call);
    Ok(Output::new(json!({})))
}

async fn list(call: &Call<'_>, p: &Params, is_admin: bool) -> KmsResult<Output> {
    let principal = p.str("PrincipalArn")?;
    check_admin(call, "List", principal, is_admin).await?;
    let names = call
        .call::<op::ListIdentityPolicies>(&wire::ListIdentityPoliciesRequest {
            caller: call.caller(),
            principal_arn: principal.to_owned(),
        })
        .await?;
    Ok(Output::new(json!({ "PolicyNames": names.policy_names })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_accounts() {
        assert_eq!(iam_action("Put", "arn:aws:iam::111122223333:user/a"), "iam:PutUserPolicy");
        assert_eq!(iam_action("List", "arn:aws:iam::111122223333:role/r"), "iam:ListRolePolicies");
        assert_eq!(principal_account("arn:aws:iam::111122223333:user/a").unwrap(), "111122223333");
        assert!(principal_account("arn:aws:iam::1111:user/a").is_err());
        assert!(principal_account("alice").is_err());
    }
}
