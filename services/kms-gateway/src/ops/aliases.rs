//! Alias operations: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use kms_bus::metadata as op;
use kms_core::{alias_arn, validate, KmsResult};
use kms_proto::v1 as wire;
use serde_json::{json, Value};

use super::keys::paged;
use super::{epoch_seconds, limit, Call, Output};
use crate::access::Access;
use crate::params::Params;

async fn alias_request(
    call: &Call<'_>,
    p: &Params,
    action: &'static str,
    with_target: bool,
) -> KmsResult<wire::AliasRequest> {
    let alias_name = p.str("AliasName")?;
    validate::alias_name(alias_name)?;
    let target_key_id = if with_target {
        let target =
            call.resolve_key_only(p.str("TargetKeyId")?, "TargetKeyId", Access::to(action)).await?;
        // Only AWS points aliases at its managed keys.
        call.check_customer_managed(&target, "CreateAlias")?;
        target.key_id
    } else {
        // DeleteAlias: the key the alias points to must allow it. (A reserved
        // `alias/aws/` name is never looked up here: that would create the managed key.)
        let existing = if alias_name.starts_with("alias/aws/") {
            None
        } else {
            call.lookup(alias_name, false).await.ok()
        };
        if let Some(key) = existing {
            call.authorize(Some(&key), Access::to(action)).await?;
        }
        String::new()
    };
    call.touch(&alias_arn(&call.caller.region, &call.caller.account, alias_name));
    Ok(wire::AliasRequest {
        caller: call.caller(),
        alias_name: alias_name.to_owned(),
        target_key_id,
    })
}

pub(super) async fn create_alias(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let request = alias_request(call, p, "kms:CreateAlias", true).await?;
    call.call::<op::CreateAlias>(&request).await?;
    Ok(Output::new(json!({})))
}

pub(super) async fn update_alias(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let request = alias_request(call, p, "kms:UpdateAlias", true).await?;
    call.call::<op::UpdateAlias>(&request).await?;
    Ok(Output::new(json!({})))
}

pub(super) async fn delete_alias(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let request = alias_request(call, p, "kms:DeleteAlias", false).await?;
    let deleted = call.call::<op::DeleteAlias>(&request).await?;
    if let Some(alias) = deleted.alias {
        call.touch(&kms_core::key_arn(
            &call.caller.region,
            &call.caller.account,
            &alias.target_key_id,
        ));
    }
    Ok(Output::new(json!({})))
}

pub(super) async fn list_aliases(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let limit = limit(p, 50, 100)?;
    call.authorize(None, Access::to("kms:ListAliases")).await?;
    let key_id = match p.opt_str("KeyId")? {
        Some(key_ref) => call.lookup(key_ref, false).await?.key_id,
        None => String::new(),
    };
    let page = call
        .call::<op::ListAliases>(&wire::ListAliasesRequest {
            caller: call.caller(),
            key_id,
            limit,
            marker: p.opt_str("Marker")?.unwrap_or_default().to_owned(),
        })
        .await?;
    let aliases: Vec<Value> = page
        .aliases
        .iter()
        .map(|a| {
            json!({
                "AliasName": a.alias_name,
                "AliasArn": a.alias_arn,
                "TargetKeyId": a.target_key_id,
                "CreationDate": epoch_seconds(a.creation_date_ms),
                "LastUpdatedDate": epoch_seconds(a.last_updated_date_ms),
            })
        })
        .collect();
    Ok(Output::new(paged(json!({ "Aliases": aliases }), page.next_marker)))
}
