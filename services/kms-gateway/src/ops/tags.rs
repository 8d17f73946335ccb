//! Tag operations: TagResource, UntagResource, ListResourceTags.

use kms_bus::metadata as op;
use kms_core::{validate, KmsResult, Usage};
use kms_proto::v1 as wire;
use serde_json::{json, Value};

use super::keys::paged;
use super::{limit, Call, Output};
use crate::access::Access;
use crate::params::Params;

pub(super) async fn tag_resource(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let tags = p.tags("Tags")?.ok_or_else(|| {
        KmsError::validation("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
    })?;
    validate::tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let mut access = Access::to("kms:TagResource")
        .multi("aws:TagKeys", tags.iter().map(|(k, _)| k.clone()).collect());
    for (k, v) in &tags {
        access = access.condition(&format!("aws:RequestTag/{k}"), v.clone());
    }
    let (key, domain) = call.usable(key_ref, Usage::Modify, access).await?;
    domain.check_customer_managed(&call.caller.principal, "TagResource")?;
    call.call::<op::TagResource>(&wire::TagResourceRequest {
        caller: call.caller(),
        key_id: key.key_id,
        tags: tags.into_iter().map(|(key, value)| wire::Tag { key, value }).collect(),
    })
    .await?;
    Ok(Output::new(json!({})))
}

use kms_core::KmsError;

pub(super) async fn untag_resource(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let tag_keys = p.str_list("TagKeys")?.ok_or_else(|| {
        KmsError::validation("1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null")
    })?;
    let access = Access::to("kms:UntagResource").multi("aws:TagKeys", tag_keys.clone());
    let (key, domain) = call.usable(key_ref, Usage::Modify, access).await?;
    domain.check_customer_managed(&call.caller.principal, "UntagResource")?;
    call.call::<op::UntagResource>(&wire::UntagResourceRequest {
        caller: call.caller(),
        key_id: key.key_id,
        tag_keys,
    })
    .await?;
    Ok(Output::new(json!({})))
}

pub(super) async fn list_resource_tags(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let limit = limit(p, 50, 50)?;
    let key = call.resolve(p.str("KeyId")?, Access::to("kms:ListResourceTags")).await?;
    let page = call
        .call::<op::ListResourceTags>(&wire::ListTagsRequest {
            caller: call.caller(),
            key_id: key.key_id,
            limit,
            marker: p.opt_str("Marker")?.unwrap_or_default().to_owned(),
        })
        .await?;
    let tags: Vec<Value> =
        page.tags.iter().map(|t| json!({ "TagKey": t.key, "TagValue": t.value })).collect();
    Ok(Output::new(paged(json!({ "Tags": tags }), page.next_marker)))
}
