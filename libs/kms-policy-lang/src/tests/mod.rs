//! Data-driven tests of the whole crate through its public surface: helpers that build a
//! request and summarise a decision as a short string, so each case is one table row.

mod authz;
mod conditions;
mod malformed;
mod seeds;
mod semantics;

use time::macros::datetime;

use crate::{
    authorize, evaluate_policy, AllowBasis, AuthzDecision, AuthzRequest, Decision, DenyReason,
    GrantAllowance, Policy, PolicyKind, PolicySource, PrincipalType, RequestContext,
    RequestContextBuilder, StatementRef,
};

pub(super) const ACCT: &str = "123456789012";
pub(super) const OTHER: &str = "999999999999";
pub(super) const KEY: &str =
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// Adds request details to a case's builder.
pub(super) type Extra = fn(RequestContextBuilder) -> RequestContextBuilder;

pub(super) fn plain(b: RequestContextBuilder) -> RequestContextBuilder {
    b
}

/// The principal type a test principal string implies.
fn infer(principal: &str) -> PrincipalType {
    PrincipalType::of_arn(principal)
}

/// A call by `principal` (type inferred) of `action` on [`KEY`] at a fixed time.
pub(super) fn call(principal: &str, action: &str) -> RequestContextBuilder {
    RequestContext::builder(principal, infer(principal), action, KEY)
        .current_time(datetime!(2024-06-01 12:00 UTC))
}

pub(super) fn user(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

pub(super) fn root(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

pub(super) fn session(account: &str, role: &str, name: &str) -> String {
    format!("arn:aws:sts::{account}:assumed-role/{role}/{name}")
}

fn name(s: &StatementRef) -> String {
    s.sid.clone().unwrap_or_else(|| format!("#{}", s.index))
}

/// `allow:<sid>`, `account:<sid>` (allowed through the account root), `deny:<sid>`,
/// `none`; a statement without Sid shows as `#<index>`.
pub(super) fn summary(d: &Decision) -> String {
    match d {
        Decision::ExplicitDeny { statement } => format!("deny:{}", name(statement)),
        Decision::Allow { statement, scope: crate::AllowScope::Principal } => {
            format!("allow:{}", name(statement))
        }
        Decision::Allow { statement, scope: crate::AllowScope::Account } => {
            format!("account:{}", name(statement))
        }
        Decision::NoMatch => "none".to_owned(),
    }
}

pub(super) fn parse(policy: &str, kind: PolicyKind) -> Policy {
    match Policy::parse(policy, kind) {
        Ok(p) => p,
        Err(e) => panic!("policy does not parse: {e}\n{policy}"),
    }
}

/// Evaluates one key policy against one request.
pub(super) fn check(policy: &str, b: RequestContextBuilder, want: &str) {
    check_kind(policy, PolicyKind::Key, b, want);
}

pub(super) fn check_kind(policy: &str, kind: PolicyKind, b: RequestContextBuilder, want: &str) {
    let ctx = b.build();
    let got = summary(&evaluate_policy(&parse(policy, kind), &ctx));
    assert_eq!(
        got,
        want,
        "{} calling {} (keys {:?})\n{policy}",
        ctx.principal_arn(),
        ctx.action(),
        ctx.values("kms:ViaService")
    );
}

/// Every row: (principal, action, extra request details, expected summary).
pub(super) fn check_all(policy: &str, kind: PolicyKind, cases: &[(&str, &str, Extra, &str)]) {
    for (principal, action, extra, want) in cases {
        check_kind(policy, kind, extra(call(principal, action)), want);
    }
}

/// `allow:key:<sid>`, `allow:root:<sid>`, `allow:both:<key sid>+<i>:<sid>`,
/// `allow:grant:<id|->`, `deny:key:<sid>`, `deny:id<i>:<sid>`, `deny:no-resource`,
/// `deny:no-identity`.
pub(super) fn authz_summary(d: &AuthzDecision) -> String {
    match d {
        AuthzDecision::Allowed(AllowBasis::KeyPolicy { statement }) => {
            format!("allow:key:{}", name(statement))
        }
        AuthzDecision::Allowed(AllowBasis::AccountRoot { statement }) => {
            format!("allow:root:{}", name(statement))
        }
        AuthzDecision::Allowed(AllowBasis::KeyPolicyAndIdentityPolicy {
            key_statement,
            identity_policy,
            identity_statement,
        }) => format!(
            "allow:both:{}+{identity_policy}:{}",
            name(key_statement),
            name(identity_statement)
        ),
        AuthzDecision::Allowed(AllowBasis::Grant { grant_id }) => {
            format!("allow:grant:{}", grant_id.as_deref().unwrap_or("-"))
        }
        AuthzDecision::Denied(DenyReason::ExplicitDeny { source, statement }) => match source {
            PolicySource::KeyPolicy => format!("deny:key:{}", name(statement)),
            PolicySource::IdentityPolicy(i) => format!("deny:id{i}:{}", name(statement)),
        },
        AuthzDecision::Denied(DenyReason::NoResourceBasedAllow) => "deny:no-resource".to_owned(),
        AuthzDecision::Denied(DenyReason::NoIdentityBasedAllow) => "deny:no-identity".to_owned(),
    }
}

pub(super) fn authz(
    key_policy: &str,
    identity: &[&str],
    grant: &GrantAllowance,
    b: RequestContextBuilder,
) -> AuthzDecision {
    let ctx = b.build();
    let key_policy = parse(key_policy, PolicyKind::Key);
    let identity: Vec<Policy> = identity.iter().map(|p| parse(p, PolicyKind::Identity)).collect();
    authorize(&AuthzRequest {
        context: &ctx,
        key_policy: &key_policy,
        identity_policies: &identity,
        grant,
    })
}

/// Every row: (principal, action, identity policies, grant?, expected summary).
pub(super) fn authz_all(key_policy: &str, cases: &[(&str, &str, &[&str], bool, &str)]) {
    for (principal, action, identity, grant, want) in cases {
        let grant = if *grant {
            GrantAllowance::Allowed { grant_id: Some("g1".to_owned()) }
        } else {
            GrantAllowance::None
        };
        let got = authz_summary(&authz(key_policy, identity, &grant, call(principal, action)));
        assert_eq!(&got, want, "{principal} calling {action} with {identity:?}\n{key_policy}");
    }
}
