//! Metadata persistence in sled and the operations on it. Trees:
//! - `keys`: key id → `KeyRecord` (protobuf), tags inside the record;
//! - `key_index`: `<account>/<region>/<key id>` → empty, for ListKeys in stable order;
//! - `aliases`: `<account>/<region>/<alias name>` → `AliasEntry` (protobuf).
//!
//! Writes are serialised by one lock (read-modify-write of a record must not interleave)
//! and flushed before the caller is answered. Every change of a key record is announced
//! on `kms.v1.changes.<account>.<key id>` and every alias change on
//! `kms.v1.changes.<account>.alias` after the flush and before the reply (one NATS
//! connection, so in that order), so gateways drop the key records they cache; key
//! creation is not announced (nothing can have cached a key that did not exist).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use kms_bus::{key_from_wire, key_to_wire};
use std::sync::Arc;

use kms_core::schedule::{self, Due};
use kms_core::{
    alias_arn, key_arn, Clock, ErrorCode, KeyRef, KmsError, KmsResult, StateChange, Usage,
};
use kms_proto::v1::{self as wire, change_key_state_request::Change};
use prost::Message;
use sled::Transactional;
use tokio::sync::Mutex;

pub(crate) struct MetadataStore {
    db: sled::Db,
    keys: sled::Tree,
    key_index: sled::Tree,
    aliases: sled::Tree,
    /// Alias names by target key id (for `kms:ResourceAliases`), derived from `aliases`
    /// at open and kept in step by every alias write.
    aliases_of_key: std::sync::RwLock<HashMap<String, BTreeSet<String>>>,
    write_lock: Mutex<()>,
    clock: Arc<dyn Clock>,
    /// Where changes are announced; `None` in unit tests of the store alone.
    announcer: Option<async_nats::Client>,
}

fn internal(e: impl std::fmt::Display) -> KmsError {
    tracing::error!(error = %e, "metadata store failure");
    KmsError::internal()
}

fn caller(c: &Option<wire::CallerContext>) -> KmsResult<&wire::CallerContext> {
    c.as_ref().ok_or_else(|| KmsError::validation("missing caller context"))
}

fn scope_prefix(c: &wire::CallerContext) -> String {
    format!("{}/{}/", c.account, c.region)
}

impl MetadataStore {
    pub(crate) fn open(dir: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let db = kms_sled_guard::open(dir)
            .map_err(|e| anyhow::anyhow!("opening metadata store at {}: {e}", dir.display()))?;
        let aliases = db.open_tree("aliases")?;
        let mut aliases_of_key: HashMap<String, BTreeSet<String>> = HashMap::new();
        for entry in &aliases {
            let (_, v) = entry?;
            let alias = wire::AliasEntry::decode(v.as_ref())?;
            aliases_of_key.entry(alias.target_key_id).or_default().insert(alias.alias_name);
        }
        Ok(Self {
            keys: db.open_tree("keys")?,
            key_index: db.open_tree("key_index")?,
            aliases,
            aliases_of_key: std::sync::RwLock::new(aliases_of_key),
            db,
            write_lock: Mutex::new(()),
            clock,
            announcer: None,
        })
    }

    /// Records that `alias_name` now points at `to` (and no longer at `from`).
    fn move_alias(&self, alias_name: &str, from: Option<&str>, to: Option<&str>) {
        let mut map =
            self.aliases_of_key.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(from) = from {
            if let Some(names) = map.get_mut(from) {
                names.remove(alias_name);
                if names.is_empty() {
                    map.remove(from);
                }
            }
        }
        if let Some(to) = to {
            map.entry(to.to_owned()).or_default().insert(alias_name.to_owned());
        }
    }

    /// A key record as ResolveKey answers it: with its alias names.
    fn with_alias_names(&self, mut key: wire::KeyRecord) -> wire::KeyRecord {
        let map = self.aliases_of_key.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        key.alias_names =
            map.get(&key.key_id).map(|n| n.iter().cloned().collect()).unwrap_or_default();
        key
    }

    /// Announces changes through `client` from now on.
    pub(crate) fn with_announcer(mut self, client: async_nats::Client) -> Self {
        self.announcer = Some(client);
        self
    }

    /// Tells gateways that `what` (a key id, or `alias`) of `account` changed. A failure
    /// is logged, not returned: the change is stored, and caches expire on their own.
    async fn announce(&self, account: &str, what: &str) {
        let Some(client) = &self.announcer else { return };
        if let Err(e) =
            client.publish(format!("kms.v1.changes.{account}.{what}"), Vec::new().into()).await
        {
            tracing::warn!(error = %e, account, what, "change announcement failed");
        }
    }

    async fn flush(&self) -> KmsResult<()> {
        kms_sled_guard::flush_async(&self.db).await.map_err(internal)?;
        Ok(())
    }

    fn load_key(&self, key_id: &str) -> KmsResult<Option<wire::KeyRecord>> {
        match self.keys.get(key_id.as_bytes()).map_err(internal)? {
            Some(bytes) => Ok(Some(wire::KeyRecord::decode(bytes.as_ref()).map_err(internal)?)),
            None => Ok(None),
        }
    }

    /// The key `key_id` if it lives in the caller's account and region.
    fn scoped_key(&self, c: &wire::CallerContext, key_id: &str) -> KmsResult<wire::KeyRecord> {
        match self.load_key(key_id)? {
            Some(k) if k.account == c.account && k.region == c.region => Ok(k),
            _ => Err(KmsError::key_not_found(&key_arn(&c.region, &c.account, key_id))),
        }
    }

    pub(crate) fn save_key(&self, k: &wire::KeyRecord) -> KmsResult<()> {
        self.keys.insert(k.key_id.as_bytes(), k.encode_to_vec()).map_err(internal)?;
        Ok(())
    }

    pub(crate) async fn create_key(
        &self,
        r: wire::CreateKeyRequest,
    ) -> KmsResult<wire::KeyResponse> {
        let c = caller(&r.caller)?;
        let mut key = r.key.ok_or_else(|| KmsError::validation("missing key"))?;
        key_from_wire(&key)?;
        key.tags.sort_by(|a, b| a.key.cmp(&b.key));
        key.creation_date_ms = self.clock.now_ms();
        if key.account != c.account || key.region != c.region {
            return Err(KmsError::validation(
                "a key is created in the caller's account and region",
            ));
        }
        let _guard = self.write_lock.lock().await;
        if self.load_key(&key.key_id)?.is_some() {
            return Err(KmsError::new(ErrorCode::AlreadyExists, "The key already exists"));
        }
        let index = format!("{}{}", scope_prefix(c), key.key_id);
        let managed_alias = match r.managed_alias.as_str() {
            "" => None,
            name if name.starts_with("alias/aws/") => {
                // Two first uses may race: the alias decides which key is the managed one.
                if let Some(existing) = self.load_alias(c, name)? {
                    let key = self.scoped_key(c, &existing.target_key_id)?;
                    return Ok(wire::KeyResponse { key: Some(key) });
                }
                let now = key.creation_date_ms;
                Some((
                    Self::alias_key(c, name),
                    wire::AliasEntry {
                        alias_name: name.to_owned(),
                        alias_arn: alias_arn(&c.region, &c.account, name),
                        target_key_id: key.key_id.clone(),
                        creation_date_ms: now,
                        last_updated_date_ms: now,
                    }
                    .encode_to_vec(),
                ))
            }
            _ => return Err(KmsError::validation("a managed key's alias begins with alias/aws/")),
        };
        kms_sled_guard::exclusively(|| {
            (&self.keys, &self.key_index, &self.aliases)
            .transaction(|(keys, index_tree, aliases)| {
                keys.insert(key.key_id.as_bytes(), key.encode_to_vec())?;
                index_tree.insert(index.as_bytes(), &[])?;
                if let Some((alias_key, alias)) = &managed_alias {
                    aliases.insert(alias_key.as_bytes(), alias.clone())?;
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<std::convert::Infallible>>(
                    (),
                )
            })
        })
        .map_err(|e: sled::transaction::TransactionError<std::convert::Infallible>| {
            internal(format!("{e:?}"))
        })?;
        self.flush().await?;
        if managed_alias.is_some() {
            self.move_alias(&r.managed_alias, None, Some(&key.key_id));
        }
        Ok(wire::KeyResponse { key: Some(key) })
    }

    pub(crate) fn resolve_key(&self, r: wire::ResolveKeyRequest) -> KmsResult<wire::KeyResponse> {
        let c = caller(&r.caller)?;
        let key = if r.from_ciphertext {
            // A ciphertext names its key by id; it may be any account's key of the region,
            // and authorization decides whether the caller may use it.
            match self.load_key(&r.key_ref)? {
                Some(k) if k.region == c.region => k,
                _ => return Err(KmsError::key_not_found(&r.key_ref)),
            }
        } else {
            self.resolve(c, &r.key_ref, r.cross_account)?
        };
        Ok(wire::KeyResponse { key: Some(self.with_alias_names(key)) })
    }

    fn resolve(
        &self,
        c: &wire::CallerContext,
        key_ref: &str,
        cross_account: bool,
    ) -> KmsResult<wire::KeyRecord> {
        let parsed = KeyRef::parse(key_ref)?;
        let mut scope = c.clone();
        if let Some((account, region)) = parsed.pinned_scope() {
            if region != c.region || (account != c.account && !cross_account) {
                // Another region's key, or another account's where the operation cannot
                // cross accounts: indistinguishable from absent.
                return Err(match &parsed {
                    KeyRef::AliasArn { .. } => alias_not_found(key_ref),
                    _ => KmsError::key_not_found(key_ref),
                });
            }
            account.clone_into(&mut scope.account);
        }
        match parsed {
            KeyRef::KeyId(id) | KeyRef::KeyArn { key_id: id, .. } => self.scoped_key(&scope, &id),
            KeyRef::AliasName(name) | KeyRef::AliasArn { alias_name: name, .. } => {
                let alias = self.load_alias(&scope, &name)?.ok_or_else(|| {
                    alias_not_found(&alias_arn(&scope.region, &scope.account, &name))
                })?;
                self.scoped_key(&scope, &alias.target_key_id)
            }
        }
    }

    pub(crate) fn list_keys(&self, r: wire::ListKeysRequest) -> KmsResult<wire::ListKeysResponse> {
        let c = caller(&r.caller)?;
        let prefix = scope_prefix(c);
        let start = if r.marker.is_empty() {
            prefix.clone()
        } else {
            if uuid::Uuid::parse_str(&r.marker).is_err() {
                return Err(invalid_marker());
            }
            format!("{prefix}{}\u{0}", r.marker)
        };
        let limit = usize::try_from(r.limit.max(1)).unwrap_or(100);
        let mut keys = Vec::new();
        let mut next_marker = String::new();
        for entry in self.key_index.range(start.as_bytes()..) {
            let (k, _) = entry.map_err(internal)?;
            let Some(key_id) = std::str::from_utf8(&k).ok().and_then(|s| s.strip_prefix(&prefix))
            else {
                break;
            };
            if keys.len() == limit {
                next_marker =
                    keys.last().map(|e: &wire::KeyListEntry| e.key_id.clone()).unwrap_or_default();
                break;
            }
            keys.push(wire::KeyListEntry {
                key_id: key_id.to_owned(),
                arn: key_arn(&c.region, &c.account, key_id),
            });
        }
        Ok(wire::ListKeysResponse { keys, next_marker })
    }

    pub(crate) async fn change_key_state(
        &self,
        r: wire::ChangeKeyStateRequest,
    ) -> KmsResult<wire::KeyResponse> {
        let c = caller(&r.caller)?;
        let change = match r.change {
            Some(Change::Enable(_)) => StateChange::Enable,
            Some(Change::Disable(_)) => StateChange::Disable,
            Some(Change::ScheduleDeletionDays(days)) => {
                StateChange::ScheduleDeletion { days, now_ms: self.clock.now_ms() }
            }
            Some(Change::CancelDeletion(_)) => StateChange::CancelDeletion,
            None => return Err(KmsError::validation("missing state change")),
        };
        let _guard = self.write_lock.lock().await;
        let mut stored = self.scoped_key(c, &r.key_id)?;
        let mut key = key_from_wire(&stored)?;
        key.apply(change)?;
        key_to_wire(&key, &mut stored);
        self.save_key(&stored)?;
        self.flush().await?;
        self.announce(&stored.account, &stored.key_id).await;
        Ok(wire::KeyResponse { key: Some(stored) })
    }

    pub(crate) async fn update_description(
        &self,
        r: wire::UpdateDescriptionRequest,
    ) -> KmsResult<wire::KeyResponse> {
        let c = caller(&r.caller)?;
        let _guard = self.write_lock.lock().await;
        let mut stored = self.scoped_key(c, &r.key_id)?;
        key_from_wire(&stored)?.check_usable(Usage::Modify)?;
        stored.description = r.description;
        self.save_key(&stored)?;
        self.flush().await?;
        self.announce(&stored.account, &stored.key_id).await;
        Ok(wire::KeyResponse { key: Some(stored) })
    }

    fn alias_key(c: &wire::CallerContext, name: &str) -> String {
        format!("{}{name}", scope_prefix(c))
    }

    fn load_alias(
        &self,
        c: &wire::CallerContext,
        name: &str,
    ) -> KmsResult<Option<wire::AliasEntry>> {
        match self.aliases.get(Self::alias_key(c, name).as_bytes()).map_err(internal)? {
            Some(bytes) => Ok(Some(wire::AliasEntry::decode(bytes.as_ref()).map_err(internal)?)),
            None => Ok(None),
        }
    }

    /// The target of an alias must be a key of the caller that is not pending deletion.
    fn alias_target(&self, c: &wire::CallerContext, key_id: &str) -> KmsResult<wire::KeyRecord> {
        let key = self.scoped_key(c, key_id)?;
        key_from_wire(&key)?.check_usable(Usage::Modify)?;
        Ok(key)
    }

    pub(crate) async fn create_alias(
        &self,
        r: wire::AliasRequest,
    ) -> KmsResult<wire::AliasResponse> {
        let c = caller(&r.caller)?;
        kms_core::validate::alias_name(&r.alias_name)?;
        let _guard = self.write_lock.lock().await;
        self.alias_target(c, &r.target_key_id)?;
        let arn = alias_arn(&c.region, &c.account, &r.alias_name);
        if self.load_alias(c, &r.alias_name)?.is_some() {
            return Err(KmsError::new(
                ErrorCode::AlreadyExists,
                format!("An alias with the name {arn} already exists"),
            ));
        }
        let now = self.clock.now_ms();
        let alias = wire::AliasEntry {
            alias_name: r.alias_name.clone(),
            alias_arn: arn,
            target_key_id: r.target_key_id,
            creation_date_ms: now,
            last_updated_date_ms: now,
        };
        self.aliases
            .insert(Self::alias_key(c, &r.alias_name).as_bytes(), alias.encode_to_vec())
            .map_err(internal)?;
        self.flush().await?;
        self.move_alias(&alias.alias_name, None, Some(&alias.target_key_id));
        self.announce(&c.account, "alias").await;
        Ok(wire::AliasResponse { alias: Some(alias) })
    }

    pub(crate) async fn update_alias(
        &self,
        r: wire::AliasRequest,
    ) -> KmsResult<wire::AliasResponse> {
        let c = caller(&r.caller)?;
        let _guard = self.write_lock.lock().await;
        let mut alias = self
            .load_alias(c, &r.alias_name)?
            .ok_or_else(|| alias_not_found(&alias_arn(&c.region, &c.account, &r.alias_name)))?;
        self.alias_target(c, &r.target_key_id)?;
        let previous = std::mem::replace(&mut alias.target_key_id, r.target_key_id);
        alias.last_updated_date_ms = self.clock.now_ms();
        self.aliases
            .insert(Self::alias_key(c, &r.alias_name).as_bytes(), alias.encode_to_vec())
            .map_err(internal)?;
        self.flush().await?;
        self.move_alias(&alias.alias_name, Some(&previous), Some(&alias.target_key_id));
        self.announce(&c.account, "alias").await;
        Ok(wire::AliasResponse { alias: Some(alias) })
    }

    pub(crate) async fn delete_alias(
        &self,
        r: wire::AliasRequest,
    ) -> KmsResult<wire::AliasResponse> {
        let c = caller(&r.caller)?;
        let _guard = self.write_lock.lock().await;
        let alias = self
            .load_alias(c, &r.alias_name)?
            .ok_or_else(|| alias_not_found(&alias_arn(&c.region, &c.account, &r.alias_name)))?;
        self.aliases.remove(Self::alias_key(c, &r.alias_name).as_bytes()).map_err(internal)?;
        self.flush().await?;
        self.move_alias(&alias.alias_name, Some(&alias.target_key_id), None);
        self.announce(&c.account, "alias").await;
        Ok(wire::AliasResponse { alias: Some(alias) })
    }

    pub(crate) fn list_aliases(
        &self,
        r: wire::ListAliasesRequest,
    ) -> KmsResult<wire::ListAliasesResponse> {
        let c = caller(&r.caller)?;
        if !r.key_id.is_empty() {
            self.scoped_key(c, &r.key_id)?;
        }
        let prefix = scope_prefix(c);
        let start = if r.marker.is_empty() {
            prefix.clone()
        } else {
            if kms_core::validate::alias_name(&r.marker).is_err() {
                return Err(invalid_marker());
            }
            format!("{prefix}{}\u{0}", r.marker)
        };
        let limit = usize::try_from(r.limit.max(1)).unwrap_or(50);
        let mut aliases: Vec<wire::AliasEntry> = Vec::new();
        let mut next_marker = String::new();
        for entry in self.aliases.range(start.as_bytes()..) {
            let (k, v) = entry.map_err(internal)?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let alias = wire::AliasEntry::decode(v.as_ref()).map_err(internal)?;
            if !r.key_id.is_empty() && alias.target_key_id != r.key_id {
                continue;
            }
            if aliases.len() == limit {
                next_marker = aliases.last().map(|a| a.alias_name.clone()).unwrap_or_default();
                break;
            }
            aliases.push(alias);
        }
        Ok(wire::ListAliasesResponse { aliases, next_marker })
    }

    pub(crate) async fn tag_resource(&self, r: wire::TagResourceRequest) -> KmsResult<wire::Empty> {
        let c = caller(&r.caller)?;
        kms_core::validate::tags(r.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())))?;
        let _guard = self.write_lock.lock().await;
        let mut stored = self.scoped_key(c, &r.key_id)?;
        key_from_wire(&stored)?.check_usable(Usage::Modify)?;
        for tag in r.tags {
            match stored.tags.iter_mut().find(|t| t.key == tag.key) {
                Some(existing) => existing.value = tag.value,
                None => stored.tags.push(tag),
            }
        }
        if stored.tags.len() > kms_core::validate::MAX_TAGS_PER_KEY {
            return Err(KmsError::new(
                ErrorCode::LimitExceeded,
                format!("A key may have at most {} tags", kms_core::validate::MAX_TAGS_PER_KEY),
            ));
        }
        stored.tags.sort_by(|a, b| a.key.cmp(&b.key));
        self.save_key(&stored)?;
        self.flush().await?;
        self.announce(&stored.account, &stored.key_id).await;
        Ok(wire::Empty {})
    }

    pub(crate) async fn untag_resource(
        &self,
        r: wire::UntagResourceRequest,
    ) -> KmsResult<wire::Empty> {
        let c = caller(&r.caller)?;
        let _guard = self.write_lock.lock().await;
        let mut stored = self.scoped_key(c, &r.key_id)?;
        key_from_wire(&stored)?.check_usable(Usage::Modify)?;
        stored.tags.retain(|t| !r.tag_keys.contains(&t.key));
        self.save_key(&stored)?;
        self.flush().await?;
        self.announce(&stored.account, &stored.key_id).await;
        Ok(wire::Empty {})
    }

    pub(crate) fn list_resource_tags(
        &self,
        r: wire::ListTagsRequest,
    ) -> KmsResult<wire::ListTagsResponse> {
        let c = caller(&r.caller)?;
        let stored = self.scoped_key(c, &r.key_id)?;
        let limit = usize::try_from(r.limit.max(1)).unwrap_or(50);
        let start = if r.marker.is_empty() {
            0
        } else {
            stored
                .tags
                .iter()
                .position(|t| t.key == r.marker)
                .map(|i| i + 1)
                .ok_or_else(invalid_marker)?
        };
        let page: Vec<wire::Tag> = stored.tags.iter().skip(start).take(limit).cloned().collect();
        let next_marker = if start + page.len() < stored.tags.len() {
            page.last().map(|t| t.key.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(wire::ListTagsResponse { tags: page, next_marker })
    }

    pub(crate) async fn set_key_rotation(
        &self,
        r: wire::SetKeyRotationRequest,
    ) -> KmsResult<wire::KeyResponse> {
        let c = caller(&r.caller)?;
        let _guard = self.write_lock.lock().await;
        let mut stored = self.scoped_key(c, &r.key_id)?;
        let mut key = key_from_wire(&stored)?;
        schedule::check_rotation_supported(&key)?;
        schedule::check_rotation_state(&key)?;
        if r.enabled {
            let days = schedule::rotation_period_days(Some(i64::from(r.rotation_period_days)))?;
            key.rotation_enabled = true;
            key.rotation_period_days = Some(days);
            key.next_rotation_date_ms =
                Some(self.clock.now_ms() + i64::from(days) * schedule::DAY_MS);
        } else {
            key.rotation_enabled = false;
            key.rotation_period_days = None;
            key.next_rotation_date_ms = None;
        }
        key_to_wire(&key, &mut stored);
        self.save_key(&stored)?;
        self.flush().await?;
        self.announce(&stored.account, &stored.key_id).await;
        Ok(wire::KeyResponse { key: Some(stored) })
    }

    /// Makes new material current. Automatic rotations move the schedule on by one
    /// period; on-demand ones leave it as it is, as in AWS.
    pub(crate) async fn record_rotation(
        &self,
        r: wire::RecordRotationRequest,
    ) -> KmsResult<wire::KeyResponse> {
        let c = caller(&r.caller)?;
        let automatic = match r.rotation_type.as_str() {
            "AUTOMATIC" => true,
            "ON_DEMAND" => false,
            _ => return Err(KmsError::validation("rotation type is AUTOMATIC or ON_DEMAND")),
        };
        let _guard = self.write_lock.lock().await;
        let mut stored = self.scoped_key(c, &r.key_id)?;
        if r.material_version <= stored.current_material_version {
            // Already recorded (a retry): nothing changes.
            return Ok(wire::KeyResponse { key: Some(stored) });
        }
        let on_demand = stored.rotations.iter().filter(|e| e.rotation_type == "ON_DEMAND").count();
        if !automatic && on_demand >= schedule::MAX_ON_DEMAND_ROTATIONS {
            return Err(on_demand_limit());
        }
        let now = self.clock.now_ms();
        stored.current_material_version = r.material_version;
        stored.rotations.push(wire::RotationEntry {
            material_version: r.material_version,
            rotation_date_ms: now,
            rotation_type: r.rotation_type,
        });
        if automatic {
            let period = i64::from(
                stored.rotation_period_days.unwrap_or(schedule::DEFAULT_ROTATION_PERIOD_DAYS),
            );
            stored.next_rotation_date_ms = Some(now + period * schedule::DAY_MS);
        }
        self.save_key(&stored)?;
        self.flush().await?;
        self.announce(&stored.account, &stored.key_id).await;
        Ok(wire::KeyResponse { key: Some(stored) })
    }

    /// Records imported material arriving (the key becomes Enabled, from PendingImport)
    /// or going (deleted or expired: back to PendingImport).
    pub(crate) async fn set_imported_material(
        &self,
        r: wire::SetImportedMaterialRequest,
    ) -> KmsResult<wire::KeyResponse> {
        let c = caller(&r.caller)?;
        let _guard = self.write_lock.lock().await;
        let mut stored = self.scoped_key(c, &r.key_id)?;
        let mut key = key_from_wire(&stored)?;
        if key.origin != kms_core::Origin::External {
            return Err(KmsError::new(
                ErrorCode::UnsupportedOperation,
                format!("{} does not have imported key material.", key.arn),
            ));
        }
        key.check_usable(Usage::Modify)?;
        if r.present {
            if key.state == kms_core::KeyState::PendingImport {
                key.state = kms_core::KeyState::Enabled;
            }
            key.valid_to_ms = r.valid_to_ms;
            stored.expiration_model = r.expiration_model;
            key.current_material_version = 1;
        } else {
            key.state = kms_core::KeyState::PendingImport;
            key.valid_to_ms = None;
            stored.expiration_model = String::new();
        }
        key_to_wire(&key, &mut stored);
        self.save_key(&stored)?;
        self.flush().await?;
        self.announce(&stored.account, &stored.key_id).await;
        Ok(wire::KeyResponse { key: Some(stored) })
    }

    /// Keys for which time has made a transition due, with the transition.
    pub(crate) fn due(&self) -> KmsResult<Vec<(wire::KeyRecord, Due)>> {
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        for entry in self.keys.iter() {
            let (_, bytes) = entry.map_err(internal)?;
            let stored = wire::KeyRecord::decode(bytes.as_ref()).map_err(internal)?;
            if let Some(due) = schedule::due(&key_from_wire(&stored)?, now) {
                out.push((stored, due));
            }
        }
        Ok(out)
    }

    /// Removes a key whose deletion is complete, with its aliases, in one transaction.
    /// Only a key still pending deletion and due is removed.
    pub(crate) async fn remove_deleted_key(&self, key_id: &str) -> KmsResult<bool> {
        let _guard = self.write_lock.lock().await;
        let Some(stored) = self.load_key(key_id)? else { return Ok(false) };
        if schedule::due(&key_from_wire(&stored)?, self.clock.now_ms()) != Some(Due::Delete) {
            return Ok(false);
        }
        let prefix = format!("{}/{}/", stored.account, stored.region);
        let mut alias_keys = Vec::new();
        for entry in self.aliases.scan_prefix(prefix.as_bytes()) {
            let (k, v) = entry.map_err(internal)?;
            if wire::AliasEntry::decode(v.as_ref()).map_err(internal)?.target_key_id == key_id {
                alias_keys.push(k);
            }
        }
        let index = format!("{prefix}{key_id}");
        kms_sled_guard::exclusively(|| {
            (&self.keys, &self.key_index, &self.aliases)
            .transaction(|(keys, index_tree, aliases)| {
                keys.remove(key_id.as_bytes())?;
                index_tree.remove(index.as_bytes())?;
                for k in &alias_keys {
                    aliases.remove(k.clone())?;
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<std::convert::Infallible>>(
                    (),
                )
            })
        })
        .map_err(|e: sled::transaction::TransactionError<std::convert::Infallible>| {
            internal(format!("{e:?}"))
        })?;
        self.flush().await?;
        self.aliases_of_key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key_id);
        self.announce(&stored.account, key_id).await;
        if !alias_keys.is_empty() {
            self.announce(&stored.account, "alias").await;
        }
        Ok(true)
    }
}

pub(crate) fn on_demand_limit() -> KmsError {
    KmsError::new(
        ErrorCode::LimitExceeded,
        format!(
            "A key may be rotated on demand at most {} times.",
            schedule::MAX_ON_DEMAND_ROTATIONS
        ),
    )
}

fn alias_not_found(alias_arn: &str) -> KmsError {
    KmsError::not_found(format!("Alias {alias_arn} is not found."))
}

fn invalid_marker() -> KmsError {
    KmsError::new(ErrorCode::InvalidMarker, "The marker is not valid for this request")
}

#[cfg(test)]
mod tests;
