//! Grants: CreateGrant (with idempotent names, the per-key limit and the rule that a grant
//! created through another grant is no broader than it), ListGrants, ListRetirableGrants,
//! RetireGrant and RevokeGrant. A grant takes effect the moment it is stored, so grant
//! tokens are only checked for shape.

use std::collections::BTreeMap;

use kms_core::{ErrorCode, KmsError, KmsResult};
use kms_policy_lang::{grant_id_of_token, grant_token, is_grant_id, GrantConstraint};
use kms_proto::v1 as wire;
use prost::Message;
use sled::Transactional;

use crate::store::{caller, internal, Store};
use crate::Service;

/// AWS's limit of grants per key.
pub(crate) const MAX_GRANTS_PER_KEY: usize = 50_000;

pub(crate) fn decode(bytes: &[u8]) -> KmsResult<wire::Grant> {
    wire::Grant::decode(bytes).map_err(internal)
}

fn entries(pairs: &[wire::EncryptionContextEntry]) -> BTreeMap<String, String> {
    pairs.iter().map(|e| (e.key.clone(), e.value.clone())).collect()
}

/// A stored grant's constraint in the policy language's terms.
pub(crate) fn constraint_of(grant: &wire::Grant) -> GrantConstraint {
    if grant.has_constraint_equals {
        GrantConstraint::Equals(entries(&grant.constraint_equals))
    } else if grant.has_constraint_subset {
        GrantConstraint::Subset(entries(&grant.constraint_subset))
    } else {
        GrantConstraint::None
    }
}

fn grant_key(key_id: &str, grant_id: &str) -> String {
    format!("{key_id}/{grant_id}")
}

fn retirable_key(g: &wire::Grant) -> String {
    format!("{}|{}", g.retiring_principal, grant_key(&g.key_id, &g.grant_id))
}

fn new_grant_id() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn new_token(grant_id: &str) -> String {
    grant_token(grant_id, &uuid::Uuid::new_v4().simple().to_string())
}

fn grant_not_found() -> KmsError {
    KmsError::not_found("Grant not found")
}

type TxError = sled::transaction::TransactionError<std::convert::Infallible>;
type TxResult =
    Result<(), sled::transaction::ConflictableTransactionError<std::convert::Infallible>>;

impl Store {
    /// Every grant of a key, oldest key order.
    pub(crate) fn grants_of_key(&self, key_id: &str) -> KmsResult<Vec<wire::Grant>> {
        let mut grants = Vec::new();
        for entry in self.grants.scan_prefix(format!("{key_id}/").as_bytes()) {
            let (_, v) = entry.map_err(internal)?;
            grants.push(decode(&v)?);
        }
        Ok(grants)
    }

    fn grant(&self, key_id: &str, grant_id: &str) -> KmsResult<Option<wire::Grant>> {
        match self.grants.get(grant_key(key_id, grant_id).as_bytes()).map_err(internal)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    fn insert_grant(&self, g: &wire::Grant) -> KmsResult<()> {
        let key = grant_key(&g.key_id, &g.grant_id);
        let bytes = g.encode_to_vec();
        kms_sled_guard::exclusively(|| {
            (&self.grants, &self.grant_ids, &self.retirable).transaction(
                |(grants, ids, retirable)| -> TxResult {
                    grants.insert(key.as_bytes(), bytes.as_slice())?;
                    ids.insert(g.grant_id.as_bytes(), g.key_id.as_bytes())?;
                    if !g.retiring_principal.is_empty() {
                        retirable.insert(retirable_key(g).as_bytes(), &[])?;
                    }
                    Ok(())
                },
            )
        })
        .map_err(|e: TxError| internal(format!("{e:?}")))
    }

    pub(crate) fn remove_grant(&self, g: &wire::Grant) -> KmsResult<()> {
        let key = grant_key(&g.key_id, &g.grant_id);
        kms_sled_guard::exclusively(|| {
            (&self.grants, &self.grant_ids, &self.retirable).transaction(
                |(grants, ids, retirable)| -> TxResult {
                    grants.remove(key.as_bytes())?;
                    ids.remove(g.grant_id.as_bytes())?;
                    if !g.retiring_principal.is_empty() {
                        retirable.remove(retirable_key(g).as_bytes())?;
                    }
                    Ok(())
                },
            )
        })
        .map_err(|e: TxError| internal(format!("{e:?}")))
    }

    pub(crate) fn list_grants(
        &self,
        r: &wire::ListGrantsRequest,
    ) -> KmsResult<wire::ListGrantsResponse> {
        let prefix = format!("{}/", r.key_id);
        let start = if r.marker.is_empty() {
            prefix.clone()
        } else if is_grant_id(&r.marker) {
            format!("{prefix}{}\u{0}", r.marker)
        } else {
            return Err(KmsError::new(ErrorCode::InvalidMarker, "Invalid marker"));
        };
        let limit = usize::try_from(r.limit.max(1)).unwrap_or(50);
        let mut grants: Vec<wire::Grant> = Vec::new();
        let mut next_marker = String::new();
        for entry in self.grants.range(start.as_bytes()..) {
            let (k, v) = entry.map_err(internal)?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let grant = decode(&v)?;
            if (!r.grant_id.is_empty() && grant.grant_id != r.grant_id)
                || (!r.grantee_principal.is_empty()
                    && grant.grantee_principal != r.grantee_principal)
            {
                continue;
            }
            if grants.len() == limit {
                next_marker = grants.last().map(|g| g.grant_id.clone()).unwrap_or_default();
                break;
            }
            grants.push(grant);
        }
        Ok(wire::ListGrantsResponse { grants, next_marker })
    }

    pub(crate) fn list_retirable_grants(
        &self,
        r: &wire::ListRetirableGrantsRequest,
    ) -> KmsResult<wire::ListGrantsResponse> {
        let prefix = format!("{}|", r.retiring_principal);
        let start = if r.marker.is_empty() {
            prefix.clone()
        } else if r.marker.split_once('/').is_some_and(|(_, id)| is_grant_id(id)) {
            format!("{prefix}{}\u{0}", r.marker)
        } else {
            return Err(KmsError::new(ErrorCode::InvalidMarker, "Invalid marker"));
        };
        let limit = usize::try_from(r.limit.max(1)).unwrap_or(50);
        let mut grants: Vec<wire::Grant> = Vec::new();
        let mut next_marker = String::new();
        for entry in self.retirable.range(start.as_bytes()..) {
            let (k, _) = entry.map_err(internal)?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let Some(v) = self.grants.get(key.as_bytes()).map_err(internal)? else { continue };
            if grants.len() == limit {
                next_marker =
                    grants.last().map(|g| grant_key(&g.key_id, &g.grant_id)).unwrap_or_default();
                break;
            }
            grants.push(decode(&v)?);
        }
        Ok(wire::ListGrantsResponse { grants, next_marker })
    }

    /// The grant a RetireGrant request names, by token or by key and grant id.
    fn grant_to_retire(&self, r: &wire::RetireGrantRequest) -> KmsResult<wire::Grant> {
        let grant_id = if r.grant_token.is_empty() {
            if !is_grant_id(&r.grant_id) {
                return Err(KmsError::new(ErrorCode::InvalidGrantId, "Invalid grant ID"));
            }
            r.grant_id.clone()
        } else {
            grant_id_of_token(&r.grant_token)
                .ok_or_else(|| KmsError::new(ErrorCode::InvalidGrantToken, "Invalid grant token"))?
                .to_owned()
        };
        let key_id = match self.grant_ids.get(grant_id.as_bytes()).map_err(internal)? {
            Some(k) => String::from_utf8(k.to_vec()).map_err(internal)?,
            None => return Err(grant_not_found()),
        };
        if !r.key_id.is_empty() && r.key_id != key_id {
            return Err(grant_not_found());
        }
        self.grant(&key_id, &grant_id)?.ok_or_else(grant_not_found)
    }
}

/// Whether a new grant is identical to a stored one, for CreateGrant's idempotent `Name`.
fn same_terms(a: &wire::Grant, b: &wire::Grant) -> bool {
    let ops = |g: &wire::Grant| {
        let mut o = g.operations.clone();
        o.sort();
        o
    };
    a.name == b.name
        && a.grantee_principal == b.grantee_principal
        && a.retiring_principal == b.retiring_principal
        && ops(a) == ops(b)
        && constraint_of(a) == constraint_of(b)
}

impl Service {
    pub(crate) async fn create_grant(
        &self,
        r: wire::CreateGrantRequest,
    ) -> KmsResult<wire::CreateGrantResponse> {
        let c = caller(&r.caller)?;
        let mut grant = r.grant.ok_or_else(|| KmsError::validation("missing grant"))?;
        let store = &self.store;
        let guard = store.write_lock.lock().await;
        if !r.parent_grant_id.is_empty() {
            let parent = store.grant(&grant.key_id, &r.parent_grant_id)?.ok_or_else(|| {
                KmsError::new(ErrorCode::AccessDenied, "The grant that allowed this call is gone")
            })?;
            let broader_ops = grant.operations.iter().any(|o| !parent.operations.contains(o));
            if broader_ops || !constraint_of(&grant).at_least_as_strict_as(&constraint_of(&parent))
            {
                return Err(KmsError::new(
                    ErrorCode::AccessDenied,
                    format!(
                        "User: {} is not authorized to perform: kms:CreateGrant on resource: {} \
                         because a grant may create only grants with the same or fewer \
                         operations and an equally strict or stricter constraint",
                        c.principal, grant.key_arn
                    ),
                ));
            }
        }
        let existing = store.grants_of_key(&grant.key_id)?;
        if !grant.name.is_empty() {
            if let Some(same) = existing.iter().find(|g| same_terms(g, &grant)) {
                return Ok(wire::CreateGrantResponse {
                    grant_id: same.grant_id.clone(),
                    grant_token: new_token(&same.grant_id),
                });
            }
        }
        if existing.len() >= MAX_GRANTS_PER_KEY {
            return Err(KmsError::new(
                ErrorCode::LimitExceeded,
                format!("Grant limit of {MAX_GRANTS_PER_KEY} exceeded for key {}", grant.key_arn),
            ));
        }
        grant.grant_id = new_grant_id();
        grant.creation_date_ms = kms_core::Clock::now_ms(&kms_core::SystemClock);
        grant.issuing_principal = c.principal.clone();
        grant.issuing_account = c.account.clone();
        store.insert_grant(&grant)?;
        drop(guard);
        store.flush().await?;
        self.announce(crate::key_change_subject(&grant.key_account, &grant.key_id)).await;
        Ok(wire::CreateGrantResponse {
            grant_token: new_token(&grant.grant_id),
            grant_id: grant.grant_id,
        })
    }

    /// RetireGrant: allowed for the grant's retiring principal, its grantee when the grant
    /// allows RetireGrant, and the root user of the account that created it.
    pub(crate) async fn retire_grant(
        &self,
        r: wire::RetireGrantRequest,
    ) -> KmsResult<wire::GrantRemovedResponse> {
        let c = caller(&r.caller)?;
        let _guard = self.store.write_lock.lock().await;
        let grant = self.store.grant_to_retire(&r)?;
        let principal = c.principal.as_str();
        let may_retire = principal == grant.retiring_principal
            || (principal == grant.grantee_principal
                && grant.operations.iter().any(|o| o == "RetireGrant"))
            || principal == format!("arn:aws:iam::{}:root", grant.issuing_account);
        if !may_retire {
            return Err(KmsError::new(
                ErrorCode::AccessDenied,
                format!(
                    "User: {principal} is not authorized to perform: kms:RetireGrant on resource: {} \
                     because it is neither the grant's retiring principal nor a grantee allowed \
                     to retire it",
                    grant.key_arn
                ),
            ));
        }
        self.store.remove_grant(&grant)?;
        self.store.flush().await?;
        self.announce(crate::key_change_subject(&grant.key_account, &grant.key_id)).await;
        Ok(wire::GrantRemovedResponse { grant: Some(grant) })
    }

    /// RevokeGrant; the gateway has already checked `kms:RevokeGrant` on the key.
    pub(crate) async fn revoke_grant(
        &self,
        r: wire::RevokeGrantRequest,
    ) -> KmsResult<wire::GrantRemovedResponse> {
        if !is_grant_id(&r.grant_id) {
            return Err(KmsError::new(ErrorCode::InvalidGrantId, "Invalid grant ID"));
        }
        let _guard = self.store.write_lock.lock().await;
        let grant = self.store.grant(&r.key_id, &r.grant_id)?.ok_or_else(grant_not_found)?;
        self.store.remove_grant(&grant)?;
        self.store.flush().await?;
        self.announce(crate::key_change_subject(&grant.key_account, &grant.key_id)).await;
        Ok(wire::GrantRemovedResponse { grant: Some(grant) })
    }
}
