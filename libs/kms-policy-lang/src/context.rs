//! The request context: who is calling, what action on which key, and the condition keys
//! (`kms:*`, `aws:*`) a policy may test. Built once per call by the policy service.

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// What kind of principal is calling. Decides which principal ARNs in a policy name it
/// and the value of `aws:PrincipalType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalType {
    /// An IAM user: `arn:aws:iam::<acct>:user/<path/>name`.
    User,
    /// An IAM role named by its role ARN (when the caller knows only the role).
    Role,
    /// The account root user: `arn:aws:iam::<acct>:root`.
    Root,
    /// A role session: `arn:aws:sts::<acct>:assumed-role/<role>/<session>`.
    AssumedRole,
    /// An AWS service principal calling directly; the principal "ARN" is the service
    /// principal name, e.g. `s3.amazonaws.com`.
    Service,
    /// A web-identity federated session (an assumed-role session of a role assumed with
    /// `AssumeRoleWithWebIdentity`).
    WebIdentity,
}

impl PrincipalType {
    /// The type an IAM-style principal ARN names (anything not an ARN is a service
    /// principal such as `s3.amazonaws.com`).
    pub fn of_arn(principal: &str) -> Self {
        if !principal.starts_with("arn:") {
            Self::Service
        } else if principal.ends_with(":root") {
            Self::Root
        } else if principal.contains(":assumed-role/") {
            Self::AssumedRole
        } else if principal.contains(":role/") {
            Self::Role
        } else {
            Self::User
        }
    }
}

impl PrincipalType {
    /// The `aws:PrincipalType` value AWS puts in the request context.
    fn aws_value(self) -> Option<&'static str> {
        match self {
            Self::User => Some("User"),
            Self::Root => Some("Account"),
            Self::Role | Self::AssumedRole | Self::WebIdentity => Some("AssumedRole"),
            Self::Service => None,
        }
    }
}

/// Normalises a condition-key name: names are case-insensitive, so they are lowercased,
/// except the context key after `kms:EncryptionContext:`, which KMS compares
/// case-sensitively (the prefix itself is case-insensitive).
pub(crate) fn normalize_key(name: &str) -> String {
    const EC: &str = "kms:encryptioncontext:";
    match name.get(..EC.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(EC) => format!("{EC}{}", &name[EC.len()..]),
        _ => name.to_lowercase(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Value {
    values: Vec<String>,
    multi: bool,
}

/// Everything about one KMS call that policies can test. Build it with
/// [`RequestContext::builder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    principal_arn: String,
    principal_account: Option<String>,
    principal_type: PrincipalType,
    role_arn: Option<String>,
    action: String,
    resource_arn: String,
    resource_account: String,
    resource_description: Option<String>,
    keys: BTreeMap<String, Value>,
}

/// The account field of an ARN (`arn:partition:service:region:account:resource`).
pub(crate) fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some(_), Some(_), Some(account), Some(_)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    (!account.is_empty()).then_some(account)
}

impl RequestContext {
    /// Starts a context for `principal_arn` (of kind `principal_type`) calling `action`
    /// (e.g. `kms:Decrypt`) on `resource_arn` (the key ARN).
    pub fn builder(
        principal_arn: impl Into<String>,
        principal_type: PrincipalType,
        action: impl Into<String>,
        resource_arn: impl Into<String>,
    ) -> RequestContextBuilder {
        RequestContextBuilder {
            ctx: Self {
                principal_arn: principal_arn.into(),
                principal_account: None,
                principal_type,
                role_arn: None,
                action: action.into(),
                resource_arn: resource_arn.into(),
                resource_account: String::new(),
                resource_description: None,
                keys: BTreeMap::new(),
            },
            username: None,
            current_time: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn empty() -> Self {
        Self::builder("", PrincipalType::Service, "", "").build()
    }

    /// The same request for another action (e.g. checking `kms:PutKeyPolicy`, or both
    /// `kms:ReEncryptFrom` and `kms:ReEncryptTo`).
    #[must_use]
    pub fn with_action(&self, action: impl Into<String>) -> Self {
        Self { action: action.into(), ..self.clone() }
    }

    pub fn principal_arn(&self) -> &str {
        &self.principal_arn
    }

    pub fn principal_account(&self) -> Option<&str> {
        self.principal_account.as_deref()
    }

    pub fn principal_type(&self) -> PrincipalType {
        self.principal_type
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    pub fn resource_arn(&self) -> &str {
        &self.resource_arn
    }

    pub fn resource_account(&self) -> &str {
        &self.resource_account
    }

    /// The values of a condition key (name matched as policies match it), if present.
    pub fn values(&self, key: &str) -> Option<&[String]> {
        self.keys.get(&normalize_key(key)).map(|v| v.values.as_slice())
    }

    pub(crate) fn role_arn(&self) -> Option<&str> {
        self.role_arn.as_deref()
    }

    pub(crate) fn resource_description(&self) -> Option<&str> {
        self.resource_description.as_deref()
    }

    /// Values of a normalised key; `None` when absent or an empty multi-valued key.
    pub(crate) fn lookup(&self, normalized: &str) -> Option<&[String]> {
        self.keys.get(normalized).map(|v| v.values.as_slice()).filter(|v| !v.is_empty())
    }

    /// A single-valued key's value, as policy variables need: multi-valued keys never
    /// substitute.
    pub(crate) fn single(&self, normalized: &str) -> Option<&str> {
        match self.keys.get(normalized) {
            Some(Value { values, multi: false }) => values.first().map(String::as_str),
            _ => None,
        }
    }
}

/// Fills a [`RequestContext`]. Keys set explicitly win over the ones derived in
/// [`build`](Self::build).
#[derive(Clone, Debug)]
#[must_use]
pub struct RequestContextBuilder {
    ctx: RequestContext,
    username: Option<String>,
    current_time: Option<OffsetDateTime>,
}

impl RequestContextBuilder {
    /// The caller's account; derived from the principal ARN when not set.
    pub fn principal_account(mut self, account: impl Into<String>) -> Self {
        self.ctx.principal_account = Some(account.into());
        self
    }

    /// The key's account; derived from the resource ARN when not set.
    pub fn resource_account(mut self, account: impl Into<String>) -> Self {
        self.ctx.resource_account = account.into();
        self
    }

    /// For an assumed-role caller, the ARN of its role (with its path), which the
    /// session ARN does not carry. Used for principal matching and `aws:PrincipalArn`.
    pub fn role_arn(mut self, arn: impl Into<String>) -> Self {
        self.ctx.role_arn = Some(arn.into());
        self
    }

    /// `aws:username` (IAM users only); derived from a user ARN when not set.
    pub fn username(mut self, name: impl Into<String>) -> Self {
        self.username = Some(name.into());
        self
    }

    /// `aws:userid`.
    pub fn user_id(self, id: impl Into<String>) -> Self {
        self.condition("aws:userid", id)
    }

    /// What access-denied messages say instead of `resource: <key ARN>`, e.g. `the
    /// resource associated with this ciphertext` for Decrypt.
    pub fn resource_description(mut self, description: impl Into<String>) -> Self {
        self.ctx.resource_description = Some(description.into());
        self
    }

    /// A single-valued condition key, e.g. `kms:ViaService`.
    pub fn condition(mut self, key: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.ctx.keys.insert(
            normalize_key(key.as_ref()),
            Value { values: vec![value.into()], multi: false },
        );
        self
    }

    /// A multi-valued condition key, e.g. `kms:GrantOperations`; may be empty.
    pub fn condition_values<I, S>(mut self, key: impl AsRef<str>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values = values.into_iter().map(Into::into).collect();
        self.ctx.keys.insert(normalize_key(key.as_ref()), Value { values, multi: true });
        self
    }

    /// The request's encryption context: sets `kms:EncryptionContext:<k>` for every pair
    /// and `kms:EncryptionContextKeys` (multi-valued, possibly empty).
    pub fn encryption_context<I, K, V>(mut self, pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut keys = Vec::new();
        for (k, v) in pairs {
            let k = k.into();
            self = self.condition(format!("kms:EncryptionContext:{k}"), v);
            keys.push(k);
        }
        self.condition_values("kms:EncryptionContextKeys", keys)
    }

    /// `aws:SourceIp`.
    pub fn source_ip(self, ip: impl Into<String>) -> Self {
        self.condition("aws:SourceIp", ip)
    }

    /// `aws:SecureTransport`.
    pub fn secure_transport(self, secure: bool) -> Self {
        self.condition("aws:SecureTransport", secure.to_string())
    }

    /// `aws:CurrentTime` and `aws:EpochTime`; the clock's now when not set.
    pub fn current_time(mut self, at: OffsetDateTime) -> Self {
        self.current_time = Some(at);
        self
    }

    /// `aws:PrincipalTag/<key>`.
    pub fn principal_tag(self, key: &str, value: impl Into<String>) -> Self {
        self.condition(format!("aws:PrincipalTag/{key}"), value)
    }

    /// `aws:ResourceTag/<key>`.
    pub fn resource_tag(self, key: &str, value: impl Into<String>) -> Self {
        self.condition(format!("aws:ResourceTag/{key}"), value)
    }

    /// `aws:RequestTag/<key>`, also added to `aws:TagKeys`.
    pub fn request_tag(mut self, key: &str, value: impl Into<String>) -> Self {
        let entry = self
            .ctx
            .keys
            .entry(normalize_key("aws:TagKeys"))
            .or_insert(Value { values: Vec::new(), multi: true });
        entry.values.push(key.to_owned());
        self.condition(format!("aws:RequestTag/{key}"), value)
    }

    /// Derives what was not set: the accounts from the ARNs, `aws:PrincipalArn`,
    /// `aws:PrincipalAccount`, `aws:PrincipalType`, `aws:username`,
    /// `aws:PrincipalServiceName`, `kms:CallerAccount`, `aws:CurrentTime`, `aws:EpochTime`.
    pub fn build(self) -> RequestContext {
        let Self { mut ctx, username, current_time } = self;
        if ctx.principal_account.is_none() && ctx.principal_type != PrincipalType::Service {
            ctx.principal_account = arn_account(&ctx.principal_arn).map(str::to_owned);
        }
        if ctx.resource_account.is_empty() {
            ctx.resource_account = arn_account(&ctx.resource_arn).unwrap_or_default().to_owned();
        }
        let mut derived: Vec<(&str, String)> = Vec::new();
        match ctx.principal_type {
            PrincipalType::Service => {
                derived.push(("aws:PrincipalServiceName", ctx.principal_arn.clone()));
            }
            kind => {
                let principal_arn = match (&ctx.role_arn, kind) {
                    (Some(role), PrincipalType::AssumedRole | PrincipalType::WebIdentity) => {
                        role.clone()
                    }
                    (None, PrincipalType::AssumedRole | PrincipalType::WebIdentity) => {
                        session_role_arn(&ctx.principal_arn)
                            .unwrap_or_else(|| ctx.principal_arn.clone())
                    }
                    _ => ctx.principal_arn.clone(),
                };
                derived.push(("aws:PrincipalArn", principal_arn));
                if let Some(account) = &ctx.principal_account {
                    derived.push(("aws:PrincipalAccount", account.clone()));
                    derived.push(("kms:CallerAccount", account.clone()));
                }
                if let Some(value) = kind.aws_value() {
                    derived.push(("aws:PrincipalType", value.to_owned()));
                }
            }
        }
        let username = username.or_else(|| {
            (ctx.principal_type == PrincipalType::User)
                .then(|| ctx.principal_arn.rsplit('/').next().unwrap_or_default().to_owned())
        });
        if let Some(name) = username {
            derived.push(("aws:username", name));
        }
        let now = current_time.unwrap_or_else(OffsetDateTime::now_utc);
        if let Ok(text) = now.format(&Rfc3339) {
            derived.push(("aws:CurrentTime", text));
        }
        derived.push(("aws:EpochTime", now.unix_timestamp().to_string()));
        for (key, value) in derived {
            ctx.keys
                .entry(normalize_key(key))
                .or_insert(Value { values: vec![value], multi: false });
        }
        ctx
    }
}

/// `arn:aws:sts::<acct>:assumed-role/<role>/<session>` → `arn:aws:iam::<acct>:role/<role>`
/// (without the role's path, which the session ARN does not carry); `None` for any other
/// ARN. The role is whose identity policies apply to the session.
pub fn session_role_arn(session_arn: &str) -> Option<String> {
    let parsed = SessionArn::parse(session_arn)?;
    Some(format!("arn:{}:iam::{}:role/{}", parsed.partition, parsed.account, parsed.role))
}

/// The parts of an assumed-role session ARN.
pub(crate) struct SessionArn<'a> {
    pub(crate) partition: &'a str,
    pub(crate) account: &'a str,
    pub(crate) role: &'a str,
}

impl<'a> SessionArn<'a> {
    pub(crate) fn parse(arn: &'a str) -> Option<Self> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, _region, account, resource] = parts.as_slice() else {
            return None;
        };
        if *prefix != "arn" || *service != "sts" {
            return None;
        }
        let mut segments = resource.splitn(3, '/');
        let (Some("assumed-role"), Some(role), Some(_session)) =
            (segments.next(), segments.next(), segments.next())
        else {
            return None;
        };
        Some(Self { partition, account, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn session_roles() {
        assert_eq!(
            session_role_arn("arn:aws:sts::111122223333:assumed-role/App/pod-1").as_deref(),
            Some("arn:aws:iam::111122223333:role/App")
        );
        assert_eq!(session_role_arn("arn:aws:iam::111122223333:role/App"), None);
        assert_eq!(session_role_arn("arn:aws:iam::111122223333:user/dev"), None);
        assert_eq!(session_role_arn("arn:aws:sts::111122223333:assumed-role/App"), None);
    }

    #[test]
    fn key_normalisation() {
        assert_eq!(normalize_key("AWS:SourceIP"), "aws:sourceip");
        assert_eq!(
            normalize_key("KMS:encryptionContext:Department"),
            "kms:encryptioncontext:Department"
        );
        assert_eq!(normalize_key("kms:EncryptionContextKeys"), "kms:encryptioncontextkeys");
    }

    #[test]
    fn derived_keys() {
        let ctx = RequestContext::builder(
            "arn:aws:sts::111122223333:assumed-role/App/s1",
            PrincipalType::AssumedRole,
            "kms:Decrypt",
            "arn:aws:kms:us-east-1:444455556666:key/k",
        )
        .current_time(datetime!(2024-05-01 12:00 UTC))
        .build();
        assert_eq!(ctx.principal_account(), Some("111122223333"));
        assert_eq!(ctx.resource_account(), "444455556666");
        assert_eq!(
            ctx.values("aws:principalarn"),
            Some(&["arn:aws:iam::111122223333:role/App".to_owned()][..])
        );
        assert_eq!(ctx.values("kms:CallerAccount"), Some(&["111122223333".to_owned()][..]));
        assert_eq!(ctx.values("aws:PrincipalType"), Some(&["AssumedRole".to_owned()][..]));
        assert_eq!(ctx.values("aws:CurrentTime"), Some(&["2024-05-01T12:00:00Z".to_owned()][..]));
        assert_eq!(ctx.values("aws:username"), None);

        let user = RequestContext::builder(
            "arn:aws:iam::111122223333:user/dev/alice",
            PrincipalType::User,
            "kms:Decrypt",
            "arn:aws:kms:us-east-1:111122223333:key/k",
        )
        .condition("aws:PrincipalArn", "override")
        .build();
        assert_eq!(user.values("aws:username"), Some(&["alice".to_owned()][..]));
        assert_eq!(user.values("aws:PrincipalArn"), Some(&["override".to_owned()][..]));
    }
}
