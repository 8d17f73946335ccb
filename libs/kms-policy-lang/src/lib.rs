//! The AWS IAM policy language as KMS uses it: parse and validate key policies and
//! identity policies, and decide a KMS call against them — the key policy, the caller's
//! identity policies and grants — the way AWS does, with AWS's error and access-denied
//! wording. Pure and synchronous so the policy service stays thin and every rule is unit
//! tested here.
//!
//! ```text
//! let policy = Policy::parse(text, PolicyKind::Key)?;            // MalformedPolicyDocument
//! let ctx = RequestContext::builder(arn, PrincipalType::User, "kms:Decrypt", key_arn)
//!     .encryption_context([("Department", "Finance")]).build();
//! let decision = authorize(&AuthzRequest { context: &ctx, key_policy: &policy,
//!     identity_policies: &[], grant: &GrantAllowance::None });
//! ```
//!
//! AWS behaviours followed where the documentation is subtle:
//!
//! - **Documents.** At most 32768 bytes. `Version` is `2012-10-17` or `2008-10-17` or
//!   absent; policy variables are only substituted under `2012-10-17` (elsewhere `${..}`
//!   is literal text). `Statement` is an object or a non-empty array; `Sid`s are unique.
//!   Unknown elements are refused. Key policies need exactly one of
//!   `Principal`/`NotPrincipal`; identity policies must have neither.
//! - **Actions** match case-insensitively with `*`/`?`. **Resources** match the whole ARN
//!   case-sensitively with `*`/`?` (`*` is the key itself in a key policy).
//! - **Principals.** `"*"` is everyone including service principals; `{"AWS":"*"}` every
//!   AWS principal but not services. An account ID or `arn:aws:iam::<acct>:root` names the
//!   *account*: in an Allow it delegates to IAM ([`AllowScope::Account`]); in a Deny it
//!   covers every principal of the account. A role ARN also matches the role's sessions
//!   (by role ARN when the caller gave one, else by account and role name, as session
//!   ARNs carry no path). `NotPrincipal` excludes a caller only when every identity of it
//!   is listed — account, role and session — as AWS evaluates it.
//! - **Condition keys** are case-insensitive, except the part after
//!   `kms:EncryptionContext:`, which is case-sensitive (the prefix is not), as KMS
//!   documents. Condition *operators* are accepted case-insensitively.
//! - **Missing keys.** A positive operator on a missing key is false, a negated one
//!   (`StringNotEquals`, `NotIpAddress`, `ArnNotLike`, ...) true; `...IfExists` is true;
//!   `ForAllValues:` is true and `ForAnyValue:` false on a missing *or empty*
//!   multi-valued key — even with `IfExists`, as AWS behaves in practice. `Null` tests
//!   existence (an empty multi-valued key counts as absent).
//! - **Multiple values.** Values of one key are OR'ed (NOR for negated operators); keys
//!   and operators are AND'ed. A multi-valued request key without a set qualifier passes a
//!   positive operator when any of its values matches, a negated one when none does.
//! - **Policy variables** `${aws:username}`, `${aws:userid}`, `${aws:PrincipalTag/k}` (any
//!   single-valued key) and `${key, 'default'}`, in Resource and in String/ARN condition
//!   values; `${*}`, `${?}`, `${$}` are literal characters. A variable whose key is missing
//!   (or multi-valued) makes that one value match nothing.
//! - **ArnEquals** behaves like **ArnLike** (both take wildcards, compared per ARN part).
//!   Dates are ISO 8601 (with or without offset; no offset means UTC; date-only is
//!   midnight UTC) or epoch seconds. `IpAddress` takes v4/v6 CIDRs or bare addresses;
//!   families never match each other. `BinaryEquals` compares decoded base64 bytes (the
//!   request value is base64 too).
//! - **Authorization** ([`authorize`]): explicit deny anywhere wins (over grants too);
//!   same-account principals named by the key policy need nothing else; cross-account
//!   ones also need their identity policy; an account-root statement lets the root user
//!   in and delegates everyone else to identity policies; grants allow, across accounts
//!   too.

mod condition;
mod context;
mod error;
mod eval;
mod grant;
mod pattern;
mod policy;

#[cfg(test)]
mod tests;

pub use context::{session_role_arn, PrincipalType, RequestContext, RequestContextBuilder};
pub use error::PolicyError;
pub use eval::{
    authorize, default_key_policy, evaluate_policy, lockout_safety_check, AllowBasis, AllowScope,
    AuthzDecision, AuthzRequest, Decision, DenyReason, GrantAllowance, PolicySource, StatementRef,
};
pub use grant::{
    grant_allows, grant_id_of_token, grant_operation, grant_token, grantee_is_account, is_grant_id,
    operations_for_key, GrantConstraint, GrantTerms, GRANT_OPERATIONS,
};
pub use policy::{Policy, PolicyKind, MAX_POLICY_BYTES};
