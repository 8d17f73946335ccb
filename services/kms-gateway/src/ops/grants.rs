//! Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant. The
//! gateway validates the request and authorizes it on the key (CreateGrant, ListGrants
//! and RevokeGrant by policy; RetireGrant by the grant itself, which the policy service
//! checks); the policy service stores grants and announces every change, so the decision
//! caches of all gateways forget what a revoked grant allowed.

use std::collections::BTreeMap;

use kms_bus::policy as op;
use kms_core::{validate, ErrorCode, KeyRef, KmsError, KmsResult, Usage};
use kms_policy_lang::{is_grant_id, operations_for_key, GRANT_OPERATIONS};
use kms_proto::v1 as wire;
use serde_json::{json, Map, Value};

use super::keys::paged;
use super::{context_entries, epoch_seconds, limit, Call, Output};
use crate::access::Access;
use crate::params::Params;

/// AWS's pattern for a grant name: 1–256 of `[a-zA-Z0-9:/_-]`.
fn check_name(name: &str) -> KmsResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(validate::constraint(
            "name",
            Some(name),
            "satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
        ))
    }
}

/// A principal as CreateGrant takes it: an IAM ARN or a service principal, 1–256 chars.
fn check_principal(member: &str, value: &str) -> KmsResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 256
        && value.chars().all(|c| c.is_ascii_graphic())
        && (value.starts_with("arn:aws:iam::")
            || value.starts_with("arn:aws:sts::")
            || value.ends_with(".amazonaws.com"));
    if ok {
        Ok(())
    } else {
        Err(validate::constraint(
            &crate::params::wire_field(member),
            Some(value),
            "be an IAM principal ARN (arn:aws:iam::<account>:user/<name>, role/<name>, root) \
             or an AWS service principal",
        ))
    }
}

/// `Constraints`: at most one of EncryptionContextEquals / EncryptionContextSubset, each
/// with at most 8 pairs and values of at most 384 characters.
fn constraints(p: &Params) -> KmsResult<Option<(&'static str, BTreeMap<String, String>)>> {
    let Some(raw) = p.raw().get("Constraints").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Value::Object(members) = raw else {
        return Err(KmsError::new(ErrorCode::Serialization, "Constraints must be an object"));
    };
    let mut found = None;
    for (member, value) in members {
        let kind = match member.as_str() {
            "EncryptionContextEquals" => "EncryptionContextEquals",
            "EncryptionContextSubset" => "EncryptionContextSubset",
            other => {
                return Err(KmsError::new(
                    ErrorCode::Serialization,
                    format!("Unknown member {other} of Constraints"),
                ))
            }
        };
        let Value::Object(map) = value else {
            return Err(KmsError::new(ErrorCode::Serialization, format!("{kind} must be a map")));
        };
        let mut pairs = BTreeMap::new();
        for (k, v) in map {
            let Value::String(v) = v else {
                return Err(KmsError::new(
                    ErrorCode::Serialization,
                    format!("{kind} values must be strings"),
                ));
            };
            if v.chars().count() > 384 {
                return Err(KmsError::validation(format!(
                    "{kind} values must be at most 384 characters"
                )));
            }
            pairs.insert(k.clone(), v.clone());
        }
        if pairs.len() > 8 {
            return Err(KmsError::validation(format!("{kind} has more than 8 pairs")));
        }
        if found.replace((kind, pairs)).is_some() {
            return Err(KmsError::validation(
                "Specify only one of EncryptionContextEquals and EncryptionContextSubset",
            ));
        }
    }
    Ok(found)
}

/// A key reference for the grant operations: key ID or key ARN (another account's key
/// by ARN), not an alias.
fn grant_key_ref(p: &Params) -> KmsResult<&str> {
    let key_ref = p.str("KeyId")?;
    if matches!(KeyRef::parse(key_ref)?, KeyRef::AliasName(_) | KeyRef::AliasArn { .. }) {
        return Err(KmsError::validation(format!(
            "KeyId must be a key ID or key ARN, not an alias: {key_ref}"
        )));
    }
    Ok(key_ref)
}

fn context_map(entries: &[wire::EncryptionContextEntry]) -> Map<String, Value> {
    entries.iter().map(|e| (e.key.clone(), json!(e.value))).collect()
}

/// A grant as ListGrants shows it.
fn grant_json(g: &wire::Grant) -> Value {
    let mut grant = json!({
        "KeyId": g.key_arn,
        "GrantId": g.grant_id,
        "CreationDate": epoch_seconds(g.creation_date_ms),
        "GranteePrincipal": g.grantee_principal,
        "IssuingAccount": format!("arn:aws:iam::{}:root", g.issuing_account),
        "Operations": g.operations,
    });
    if let Some(obj) = grant.as_object_mut() {
        if !g.name.is_empty() {
            obj.insert("Name".into(), json!(g.name));
        }
        if !g.retiring_principal.is_empty() {
            obj.insert("RetiringPrincipal".into(), json!(g.retiring_principal));
        }
        if g.has_constraint_equals {
            obj.insert(
                "Constraints".into(),
                json!({ "EncryptionContextEquals": context_map(&g.constraint_equals) }),
            );
        } else if g.has_constraint_subset {
            obj.insert(
                "Constraints".into(),
                json!({ "EncryptionContextSubset": context_map(&g.constraint_subset) }),
            );
        }
    }
    grant
}

fn dry_run(p: &Params) -> KmsResult<bool> {
    Ok(p.opt_bool("DryRun")?.unwrap_or(false))
}

fn dry_run_error() -> KmsError {
    KmsError::new(
        ErrorCode::DryRunOperation,
        "The request would have succeeded, but the DryRun option is set.",
    )
}

pub(super) async fn create_grant(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = grant_key_ref(p)?;
    let grantee = p.str("GranteePrincipal")?;
    check_principal("GranteePrincipal", grantee)?;
    let retiring = p.opt_str("RetiringPrincipal")?.unwrap_or_default();
    if !retiring.is_empty() {
        check_principal("RetiringPrincipal", retiring)?;
    }
    let operations = p.str_list("Operations")?.unwrap_or_default();
    if operations.is_empty() {
        return Err(validate::constraint(
            "operations",
            None,
            "have length greater than or equal to 1",
        ));
    }
    for operation in &operations {
        if !GRANT_OPERATIONS.contains(&operation.as_str()) {
            return Err(validate::constraint(
                "operations",
                Some(operation),
                &format!("satisfy enum value set: {GRANT_OPERATIONS:?}"),
            ));
        }
    }
    let name = p.opt_str("Name")?.unwrap_or_default();
    if !name.is_empty() {
        check_name(name)?;
    }
    let constraint = constraints(p)?;
    let mut access = Access::cross_account("kms:CreateGrant")
        .multi("kms:GrantOperations", operations.clone())
        .condition("kms:GranteePrincipal", grantee)
        .condition("kms:GrantIsForAWSResource", "false");
    if !retiring.is_empty() {
        access = access.condition("kms:RetiringPrincipal", retiring);
    }
    if let Some((kind, _)) = &constraint {
        access = access.condition("kms:GrantConstraintType", *kind);
    }
    let key = call.lookup(key_ref, true).await?;
    let parent_grant_id = call.authorize(Some(&key), access).await?;
    kms_bus::key_from_wire(&key)?.check_usable(Usage::Modify)?;
    let allowed = operations_for_key(&key.key_spec, &key.key_usage);
    if let Some(bad) = operations.iter().find(|o| !allowed.contains(&o.as_str())) {
        return Err(KmsError::validation(format!(
            "Grant operation {bad} is not valid for a key with KeySpec {} and KeyUsage {}",
            key.key_spec, key.key_usage
        )));
    }
    if constraint.is_some() && key.key_spec != "SYMMETRIC_DEFAULT" {
        return Err(KmsError::validation(
            "Encryption context grant constraints are supported only for symmetric encryption keys",
        ));
    }
    if dry_run(p)? {
        return Err(dry_run_error());
    }
    let (equals, subset) = match &constraint {
        Some(("EncryptionContextEquals", pairs)) => (Some(pairs), None),
        Some((_, pairs)) => (None, Some(pairs)),
        None => (None, None),
    };
    let grant = wire::Grant {
        key_id: key.key_id.clone(),
        key_arn: key.arn.clone(),
        key_account: key.account.clone(),
        name: name.to_owned(),
        grantee_principal: grantee.to_owned(),
        retiring_principal: retiring.to_owned(),
        operations,
        has_constraint_equals: equals.is_some(),
        constraint_equals: equals.map(context_entries).unwrap_or_default(),
        has_constraint_subset: subset.is_some(),
        constraint_subset: subset.map(context_entries).unwrap_or_default(),
        ..Default::default()
    };
    let created = call
        .call::<op::CreateGrant>(&wire::CreateGrantRequest {
            caller: call.caller(),
            grant: Some(grant),
            parent_grant_id,
            key_is_aws_managed: key.key_manager == "AWS",
        })
        .await?;
    call.changed_key(&key.key_id);
    Ok(Output::recorded(
        json!({ "GrantToken": created.grant_token, "GrantId": created.grant_id }),
        json!({ "grantId": created.grant_id }),
    ))
}

pub(super) async fn list_grants(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let limit = limit(p, 50, 100)?;
    let key_ref = grant_key_ref(p)?;
    let grant_id = p.opt_str("GrantId")?.unwrap_or_default();
    if !grant_id.is_empty() && !is_grant_id(grant_id) {
        return Err(KmsError::new(ErrorCode::InvalidGrantId, "Invalid grant ID"));
    }
    let grantee = p.opt_str("GranteePrincipal")?.unwrap_or_default();
    let key = call.resolve(key_ref, Access::cross_account("kms:ListGrants")).await?;
    let page = call
        .call::<op::ListGrants>(&wire::ListGrantsRequest {
            caller: call.caller(),
            key_id: key.key_id,
            grant_id: grant_id.to_owned(),
            grantee_principal: grantee.to_owned(),
            limit,
            marker: p.opt_str("Marker")?.unwrap_or_default().to_owned(),
        })
        .await?;
    let grants: Vec<Value> = page.grants.iter().map(grant_json).collect();
    Ok(Output::new(paged(json!({ "Grants": grants }), page.next_marker)))
}

/// ListRetirableGrants: grants whose retiring principal is the one named. Authorized by
/// the caller's identity policies (the action is on no particular key).
pub(super) async fn list_retirable_grants(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let limit = limit(p, 50, 100)?;
    let retiring = p.str("RetiringPrincipal")?;
    check_principal("RetiringPrincipal", retiring)?;
    call.authorize(None, Access::to("kms:ListRetirableGrants")).await?;
    let page = call
        .call::<op::ListRetirableGrants>(&wire::ListRetirableGrantsRequest {
            caller: call.caller(),
            retiring_principal: retiring.to_owned(),
            limit,
            marker: p.opt_str("Marker")?.unwrap_or_default().to_owned(),
        })
        .await?;
    let grants: Vec<Value> = page.grants.iter().map(grant_json).collect();
    Ok(Output::new(paged(json!({ "Grants": grants }), page.next_marker)))
}

/// RetireGrant by GrantToken, or by KeyId and GrantId. Who may retire is the grant's
/// business (its retiring principal, a grantee allowed to, the account that created it);
/// the policy service decides.
pub(super) async fn retire_grant(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let token = p.opt_str("GrantToken")?.unwrap_or_default();
    let grant_id = p.opt_str("GrantId")?.unwrap_or_default();
    let key_ref = p.opt_str("KeyId")?.unwrap_or_default();
    if !token.is_empty() {
        validate::blob_length("grantToken", token.len(), 1, 8192)?;
    } else if grant_id.is_empty() || key_ref.is_empty() {
        return Err(KmsError::validation("Specify a GrantToken, or both a KeyId and a GrantId"));
    }
    let key_id = if key_ref.is_empty() {
        String::new()
    } else {
        call.lookup(grant_key_ref(p)?, true).await?.key_id
    };
    if dry_run(p)? {
        return Err(dry_run_error());
    }
    let retired = call
        .call::<op::RetireGrant>(&wire::RetireGrantRequest {
            caller: call.caller(),
            grant_token: token.to_owned(),
            key_id,
            grant_id: grant_id.to_owned(),
        })
        .await?;
    if let Some(grant) = retired.grant {
        call.touch(&grant.key_arn);
        call.changed_key(&grant.key_id);
    }
    Ok(Output::new(json!({})))
}

pub(super) async fn revoke_grant(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = grant_key_ref(p)?;
    let grant_id = p.str("GrantId")?;
    let key = call.resolve(key_ref, Access::cross_account("kms:RevokeGrant")).await?;
    if dry_run(p)? {
        return Err(dry_run_error());
    }
    call.call::<op::RevokeGrant>(&wire::RevokeGrantRequest {
        caller: call.caller(),
        key_id: key.key_id.clone(),
        grant_id: grant_id.to_owned(),
    })
    .await?;
    call.changed_key(&key.key_id);
    Ok(Output::new(json!({})))
}

/// `GrantTokens` on any operation: at most 10, each a token this service issued. Grants
/// take effect at once here, so a token adds nothing to the decision; it is checked so
/// that a malformed one fails as in AWS.
pub(super) fn check_grant_tokens(p: &Params) -> KmsResult<()> {
    let Some(tokens) = p.str_list("GrantTokens")? else { return Ok(()) };
    if tokens.len() > 10 {
        return Err(validate::constraint(
            "grantTokens",
            None,
            "have length less than or equal to 10",
        ));
    }
    for token in &tokens {
        validate::blob_length("grantTokens", token.len(), 1, 8192)?;
        if kms_policy_lang::grant_id_of_token(token).is_none() {
            return Err(KmsError::new(ErrorCode::InvalidGrantToken, "Invalid grant token"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(body: Value) -> Params {
        Params::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn constraint_shapes() {
        let none = params(json!({}));
        assert_eq!(constraints(&none).unwrap(), None);
        let subset = params(json!({"Constraints": {"EncryptionContextSubset": {"a": "1"}}}));
        let (kind, pairs) = constraints(&subset).unwrap().unwrap();
        assert_eq!(
            (kind, pairs.get("a").map(String::as_str)),
            ("EncryptionContextSubset", Some("1"))
        );
        let both = params(json!({"Constraints": {
            "EncryptionContextSubset": {"a": "1"}, "EncryptionContextEquals": {"a": "1"}}}));
        assert_eq!(constraints(&both).unwrap_err().code, ErrorCode::Validation);
        let nine: Map<String, Value> = (0..9).map(|i| (format!("k{i}"), json!("v"))).collect();
        let too_many = params(json!({"Constraints": {"EncryptionContextEquals": nine}}));
        assert_eq!(constraints(&too_many).unwrap_err().code, ErrorCode::Validation);
        let long =
            params(json!({"Constraints": {"EncryptionContextEquals": {"a": "x".repeat(385)}}}));
        assert_eq!(constraints(&long).unwrap_err().code, ErrorCode::Validation);
    }

    #[test]
    fn names_principals_and_tokens() {
        check_name("app-1:reader/x_y").unwrap();
        assert!(check_name("has space").is_err() && check_name(&"a".repeat(257)).is_err());
        check_principal("GranteePrincipal", "arn:aws:iam::111122223333:role/app").unwrap();
        check_principal("GranteePrincipal", "s3.amazonaws.com").unwrap();
        assert!(check_principal("GranteePrincipal", "bob").is_err());
        let token = kms_policy_lang::grant_token(&"a".repeat(64), &"b".repeat(32));
        check_grant_tokens(&params(json!({ "GrantTokens": [token] }))).unwrap();
        let bad = check_grant_tokens(&params(json!({ "GrantTokens": ["nope"] }))).unwrap_err();
        assert_eq!(bad.code, ErrorCode::InvalidGrantToken);
        let eleven = vec![token.clone(); 11];
        let many = check_grant_tokens(&params(json!({ "GrantTokens": eleven }))).unwrap_err();
        assert_eq!(many.code, ErrorCode::Validation);
    }
}
