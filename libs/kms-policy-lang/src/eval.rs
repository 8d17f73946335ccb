//! Evaluation: one policy against a request ([`evaluate_policy`]), and the KMS
//! authorization decision combining the key policy, the caller's identity policies and
//! grants ([`authorize`]), with AWS's access-denied wording.

use std::fmt;

use crate::context::{PrincipalType, RequestContext, SessionArn};
use crate::pattern::glob_match;
use crate::policy::{Effect, Policy, PolicyKind, PrincipalEntry, Principals, Statement};

/// Which statement of a policy decided: its position and its `Sid`, if it has one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatementRef {
    /// Zero-based position in the document's `Statement` list.
    pub index: usize,
    pub sid: Option<String>,
}

impl fmt::Display for StatementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sid {
            Some(sid) => write!(f, "statement {} (Sid \"{sid}\")", self.index),
            None => write!(f, "statement {}", self.index),
        }
    }
}

/// How an allowing key-policy statement named the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllowScope {
    /// The principal itself (its ARN, its role, `*`, `{"AWS":"*"}`, a service, or
    /// NotPrincipal not listing it); identity policies' statements are always this.
    Principal,
    /// The caller's account (`arn:aws:iam::<acct>:root` or the bare account ID): the key
    /// policy delegates to the account's IAM policies.
    Account,
}

/// The outcome of one policy for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A matching Deny statement (the first in document order).
    ExplicitDeny { statement: StatementRef },
    /// A matching Allow statement and no matching Deny. A `Principal`-scope statement is
    /// preferred over an `Account`-scope one, then document order.
    Allow { statement: StatementRef, scope: AllowScope },
    /// Nothing matched: an implicit deny.
    NoMatch,
}

/// One identity of the caller as principals name it: AWS checks the account, the role
/// (for sessions), and the exact ARN.
enum Layer<'a> {
    Account(&'a str),
    Exact(&'a str),
    Role { account: &'a str, name: &'a str, arn: Option<&'a str> },
    Service(&'a str),
}

fn layers(ctx: &RequestContext) -> Vec<Layer<'_>> {
    let arn = ctx.principal_arn();
    let mut out = Vec::new();
    if ctx.principal_type() == PrincipalType::Service {
        out.push(Layer::Service(arn));
        return out;
    }
    if let Some(account) = ctx.principal_account() {
        out.push(Layer::Account(account));
    }
    match ctx.principal_type() {
        PrincipalType::Root | PrincipalType::Service => {}
        PrincipalType::User => out.push(Layer::Exact(arn)),
        PrincipalType::Role => {
            let name = arn.rsplit('/').next().unwrap_or_default();
            let account = ctx.principal_account().unwrap_or_default();
            out.push(Layer::Role { account, name, arn: Some(arn) });
        }
        PrincipalType::AssumedRole | PrincipalType::WebIdentity => {
            if let Some(session) = SessionArn::parse(arn) {
                out.push(Layer::Role {
                    account: session.account,
                    name: session.role,
                    arn: ctx.role_arn(),
                });
            }
            out.push(Layer::Exact(arn));
        }
    }
    out
}

fn entry_matches(entry: &PrincipalEntry, layer: &Layer<'_>) -> bool {
    match (entry, layer) {
        (PrincipalEntry::Everyone, _) => true,
        (PrincipalEntry::AnyAws, layer) => !matches!(layer, Layer::Service(_)),
        (PrincipalEntry::Account(a), Layer::Account(b)) => a == b,
        (PrincipalEntry::Exact(a), Layer::Exact(b)) => a == b,
        (
            PrincipalEntry::Role { arn, account, name },
            Layer::Role { account: a, name: n, arn: r },
        ) => match r {
            Some(role_arn) => role_arn == arn,
            None => account == a && name == n,
        },
        (PrincipalEntry::Service(a), Layer::Service(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

fn principal_scope(statement: &Statement, ctx: &RequestContext) -> Option<AllowScope> {
    match &statement.principals {
        Principals::Implicit => Some(AllowScope::Principal),
        Principals::Principal(entries) => {
            let layers = layers(ctx);
            let hit = |account_entries: bool| {
                entries
                    .iter()
                    .filter(|e| matches!(e, PrincipalEntry::Account(_)) == account_entries)
                    .any(|e| layers.iter().any(|l| entry_matches(e, l)))
            };
            if hit(false) {
                Some(AllowScope::Principal)
            } else if hit(true) {
                Some(AllowScope::Account)
            } else {
                None
            }
        }
        // AWS evaluates NotPrincipal against every identity of the caller: the statement
        // applies unless the account, the role and the session are all listed.
        Principals::NotPrincipal(entries) => {
            let layers = layers(ctx);
            let excluded = !layers.is_empty()
                && layers.iter().all(|l| entries.iter().any(|e| entry_matches(e, l)));
            (!excluded).then_some(AllowScope::Principal)
        }
    }
}

fn applies(statement: &Statement, ctx: &RequestContext) -> bool {
    let action_hit = statement.actions.iter().any(|p| glob_match(p, ctx.action(), true));
    if action_hit == statement.not_action {
        return false;
    }
    let resource_hit = statement
        .resources
        .iter()
        .any(|t| t.pattern(ctx).is_some_and(|p| glob_match(&p, ctx.resource_arn(), false)));
    if resource_hit == statement.not_resource {
        return false;
    }
    statement.conditions.iter().all(|c| c.evaluate(ctx))
}

fn reference(statement: &Statement) -> StatementRef {
    StatementRef { index: statement.index, sid: statement.sid.clone() }
}

/// Evaluates one policy: an explicit deny wins, then an allow, else no match. For key
/// policies a statement must also name the caller (see [`AllowScope`]); a Deny naming an
/// account applies to every principal of that account.
pub fn evaluate_policy(policy: &Policy, ctx: &RequestContext) -> Decision {
    let mut allow: Option<(StatementRef, AllowScope)> = None;
    for statement in &policy.statements {
        let Some(scope) = principal_scope(statement, ctx) else { continue };
        if !applies(statement, ctx) {
            continue;
        }
        match statement.effect {
            Effect::Deny => return Decision::ExplicitDeny { statement: reference(statement) },
            Effect::Allow => {
                let better = match &allow {
                    None => true,
                    Some((_, current)) => {
                        *current == AllowScope::Account && scope == AllowScope::Principal
                    }
                };
                if better {
                    allow = Some((reference(statement), scope));
                }
            }
        }
    }
    match allow {
        Some((statement, scope)) => Decision::Allow { statement, scope },
        None => Decision::NoMatch,
    }
}

/// Whether a grant for this key, principal and operation allows the call. The grant
/// store decides that (grantee, operations, constraints); this crate only combines it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GrantAllowance {
    #[default]
    None,
    /// An applicable grant allows the call; its ID when known.
    Allowed { grant_id: Option<String> },
}

/// Everything [`authorize`] needs for one KMS call.
#[derive(Clone, Copy, Debug)]
pub struct AuthzRequest<'a> {
    pub context: &'a RequestContext,
    /// The key's policy, parsed as [`PolicyKind::Key`]; any other kind is refused
    /// (`NoResourceBasedAllow`).
    pub key_policy: &'a Policy,
    /// The caller's identity policies, in the caller's account.
    pub identity_policies: &'a [Policy],
    pub grant: &'a GrantAllowance,
}

/// Where a deciding statement lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicySource {
    KeyPolicy,
    /// The identity policy at this position of [`AuthzRequest::identity_policies`].
    IdentityPolicy(usize),
}

/// Why a call is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowBasis {
    /// The key policy names the principal (or `*`) and the caller is in the key's account.
    KeyPolicy { statement: StatementRef },
    /// The key policy allows the account and the caller is that account's root user,
    /// whose permissions no identity policy needs to grant.
    AccountRoot { statement: StatementRef },
    /// Both sides: the key policy (delegating to the account, or naming a principal of
    /// another account) and an identity policy of the caller.
    KeyPolicyAndIdentityPolicy {
        key_statement: StatementRef,
        identity_policy: usize,
        identity_statement: StatementRef,
    },
    /// A grant.
    Grant { grant_id: Option<String> },
}

/// Why a call is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// A Deny statement matched; it overrides every allow and every grant.
    ExplicitDeny { source: PolicySource, statement: StatementRef },
    /// The key policy neither allows the principal nor delegates to its account.
    NoResourceBasedAllow,
    /// The key policy delegates to the account (or allows a principal of another
    /// account) but no identity policy of the caller allows the action.
    NoIdentityBasedAllow,
}

/// The KMS authorization decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthzDecision {
    Allowed(AllowBasis),
    Denied(DenyReason),
}

impl AuthzDecision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed(_))
    }

    /// The statement that decided, if a statement did (not for grants and implicit
    /// denies). For allows needing both sides, the key-policy statement.
    pub fn deciding_statement(&self) -> Option<(PolicySource, &StatementRef)> {
        match self {
            Self::Allowed(AllowBasis::KeyPolicy { statement })
            | Self::Allowed(AllowBasis::AccountRoot { statement }) => {
                Some((PolicySource::KeyPolicy, statement))
            }
            Self::Allowed(AllowBasis::KeyPolicyAndIdentityPolicy { key_statement, .. }) => {
                Some((PolicySource::KeyPolicy, key_statement))
            }
            Self::Denied(DenyReason::ExplicitDeny { source, statement }) => {
                Some((*source, statement))
            }
            Self::Allowed(AllowBasis::Grant { .. })
            | Self::Denied(DenyReason::NoResourceBasedAllow | DenyReason::NoIdentityBasedAllow) => {
                None
            }
        }
    }

    /// AWS's AccessDeniedException message for a denied call, e.g. `User:
    /// arn:aws:iam::111122223333:user/alice is not authorized to perform: kms:Decrypt on
    /// resource: arn:aws:kms:... because no resource-based policy allows the kms:Decrypt
    /// action`. The resource part is replaced by the context's resource description when
    /// set (`on the resource associated with this ciphertext`). Empty for an allowed call.
    pub fn access_denied_message(&self, ctx: &RequestContext) -> String {
        let Self::Denied(reason) = self else { return String::new() };
        let on = match ctx.resource_description() {
            Some(description) => description.to_owned(),
            None => format!("resource: {}", ctx.resource_arn()),
        };
        let why = match reason {
            DenyReason::ExplicitDeny { source: PolicySource::KeyPolicy, .. } => {
                "with an explicit deny in a resource-based policy".to_owned()
            }
            DenyReason::ExplicitDeny { source: PolicySource::IdentityPolicy(_), .. } => {
                "with an explicit deny in an identity-based policy".to_owned()
            }
            DenyReason::NoResourceBasedAllow => {
                format!("because no resource-based policy allows the {} action", ctx.action())
            }
            DenyReason::NoIdentityBasedAllow => {
                format!("because no identity-based policy allows the {} action", ctx.action())
            }
        };
        format!(
            "User: {} is not authorized to perform: {} on {on} {why}",
            ctx.principal_arn(),
            ctx.action()
        )
    }
}

/// Decides a KMS call as AWS does:
///
/// 1. an explicit Deny in the key policy or any identity policy refuses it (grants too);
/// 2. a key-policy statement naming the principal allows it, alone when the caller is in
///    the key's account, with an identity-policy allow when it is not (cross-account
///    access needs both sides);
/// 3. a key-policy statement naming the caller's account root allows the account's root
///    user outright and any other principal of that account whose identity policy allows
///    it (IAM delegation);
/// 4. an applicable grant allows it, also across accounts;
/// 5. otherwise it is refused, saying which side was missing.
pub fn authorize(request: &AuthzRequest<'_>) -> AuthzDecision {
    let ctx = request.context;
    // A document parsed without principals must never stand in for a key policy: that
    // would allow every caller. Fail closed.
    if request.key_policy.kind() != PolicyKind::Key {
        return AuthzDecision::Denied(DenyReason::NoResourceBasedAllow);
    }
    let key = evaluate_policy(request.key_policy, ctx);
    if let Decision::ExplicitDeny { statement } = key {
        return AuthzDecision::Denied(DenyReason::ExplicitDeny {
            source: PolicySource::KeyPolicy,
            statement,
        });
    }
    let mut identity_allow = None;
    for (index, policy) in request.identity_policies.iter().enumerate() {
        match evaluate_policy(policy, ctx) {
            Decision::ExplicitDeny { statement } => {
                return AuthzDecision::Denied(DenyReason::ExplicitDeny {
                    source: PolicySource::IdentityPolicy(index),
                    statement,
                });
            }
            Decision::Allow { statement, .. } if identity_allow.is_none() => {
                identity_allow = Some((index, statement));
            }
            Decision::Allow { .. } | Decision::NoMatch => {}
        }
    }
    let cross_account = ctx.principal_account().is_some_and(|a| a != ctx.resource_account());
    let is_root = ctx.principal_type() == PrincipalType::Root;
    let both = |key_statement: StatementRef, (identity_policy, identity_statement)| {
        AuthzDecision::Allowed(AllowBasis::KeyPolicyAndIdentityPolicy {
            key_statement,
            identity_policy,
            identity_statement,
        })
    };
    let key_allowed = !matches!(key, Decision::NoMatch);
    match key {
        Decision::Allow { statement, scope: AllowScope::Principal } => {
            if !cross_account {
                return AuthzDecision::Allowed(AllowBasis::KeyPolicy { statement });
            }
            if is_root {
                return AuthzDecision::Allowed(AllowBasis::AccountRoot { statement });
            }
            if let Some(identity) = identity_allow {
                return both(statement, identity);
            }
        }
        Decision::Allow { statement, scope: AllowScope::Account } => {
            if is_root {
                return AuthzDecision::Allowed(AllowBasis::AccountRoot { statement });
            }
            if let Some(identity) = identity_allow {
                return both(statement, identity);
            }
        }
        Decision::ExplicitDeny { .. } | Decision::NoMatch => {}
    }
    if let GrantAllowance::Allowed { grant_id } = request.grant {
        return AuthzDecision::Allowed(AllowBasis::Grant { grant_id: grant_id.clone() });
    }
    AuthzDecision::Denied(if key_allowed {
        DenyReason::NoIdentityBasedAllow
    } else {
        DenyReason::NoResourceBasedAllow
    })
}

/// AWS's lockout safety check for PutKeyPolicy and CreateKey: whether `new_key_policy`
/// still lets the caller make a later `kms:PutKeyPolicy` call. Like AWS it reads only the
/// key policy: a statement allowing the caller's account (IAM delegation) passes.
/// Refuse the request with `MalformedPolicyDocumentException` ("The new key policy will
/// not allow you to update the key policy in the future.") when this is false and
/// `BypassPolicyLockoutSafetyCheck` is not set.
pub fn lockout_safety_check(new_key_policy: &Policy, caller: &RequestContext) -> bool {
    let ctx = caller.with_action("kms:PutKeyPolicy");
    matches!(evaluate_policy(new_key_policy, &ctx), Decision::Allow { .. })
}

/// The key policy AWS gives a key created without one, formatted as GetKeyPolicy returns
/// it: the account root may do everything, delegating to IAM.
pub fn default_key_policy(account: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \
         \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \
         \"Principal\" : {{\n      \"AWS\" : \"arn:aws:iam::{account}:root\"\n    }},\n    \
         \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}
