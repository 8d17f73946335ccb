//! `Authorize`: the decision before every KMS call. Loads what the decision needs — the
//! key policy, the caller's identity policies, the key's grants — and lets
//! `kms-policy-lang` decide as AWS does. A refusal is `AccessDeniedException` with AWS's
//! wording (who, which action, which resource, and why).

use kms_core::{ErrorCode, KmsError, KmsResult};
use kms_policy_lang::{
    authorize, evaluate_policy, grant_allows, grantee_is_account, session_role_arn, AuthzDecision,
    AuthzRequest, Decision, DenyReason, GrantAllowance, GrantTerms, Policy, PolicyKind,
    PolicySource, PrincipalType, RequestContext,
};
use kms_proto::v1 as wire;

use crate::grants::constraint_of;
use crate::store::{caller, internal, Store};

fn denied(decision: &AuthzDecision, ctx: &RequestContext) -> KmsError {
    KmsError::new(ErrorCode::AccessDenied, decision.access_denied_message(ctx))
}

fn context_of(r: &wire::AuthorizeRequest, c: &wire::CallerContext) -> RequestContext {
    let resource = if r.key_arn.is_empty() { "*" } else { r.key_arn.as_str() };
    let resource_account = if r.key_account.is_empty() { &c.account } else { &r.key_account };
    let mut builder = RequestContext::builder(
        c.principal.as_str(),
        PrincipalType::of_arn(&c.principal),
        r.action.as_str(),
        resource,
    )
    .principal_account(c.account.as_str())
    .resource_account(resource_account.as_str())
    .current_time(time::OffsetDateTime::now_utc())
    .encryption_context(r.encryption_context.iter().map(|e| (e.key.as_str(), e.value.as_str())));
    for condition in &r.conditions {
        builder = match (condition.multi_valued, condition.values.as_slice()) {
            (false, [single]) => builder.condition(&condition.key, single.as_str()),
            (_, values) => {
                builder.condition_values(&condition.key, values.iter().map(String::as_str))
            }
        };
    }
    if !r.resource_description.is_empty() {
        builder = builder.resource_description(r.resource_description.as_str());
    }
    builder.build()
}

impl Store {
    /// The caller's identity policies, and whether any of them tests the time. A role
    /// session has its role's, as in IAM.
    fn caller_identity_policies(&self, principal: &str) -> KmsResult<(Vec<Policy>, bool)> {
        let role = session_role_arn(principal);
        let documents = self.identity_policies_of(role.as_deref().unwrap_or(principal))?;
        let timed = documents.iter().any(|d| tests_time(d));
        let policies = documents
            .iter()
            .map(|doc| Policy::parse(doc, PolicyKind::Identity).map_err(internal))
            .collect::<KmsResult<_>>()?;
        Ok((policies, timed))
    }

    pub(crate) fn authorize(
        &self,
        r: &wire::AuthorizeRequest,
    ) -> KmsResult<wire::AuthorizeResponse> {
        let c = caller(&r.caller)?;
        let ctx = context_of(r, c);
        let (identity_policies, identity_timed) = self.caller_identity_policies(&c.principal)?;
        if r.key_id.is_empty() {
            return identity_only(&ctx, &identity_policies).map(|()| wire::AuthorizeResponse {
                grant_id: String::new(),
                cacheable: !identity_timed,
            });
        }
        let Some(document) = self.key_policy(&r.key_id)? else {
            return Err(denied(&AuthzDecision::Denied(DenyReason::NoResourceBasedAllow), &ctx));
        };
        let key_policy = Policy::parse(&document, PolicyKind::Key).map_err(internal)?;
        let cacheable = !identity_timed && !tests_time(&document);
        let request_context =
            r.encryption_context.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        // A grant naming the caller applies as it is; one naming the caller's account
        // applies only as far as the caller's identity policies allow the operation.
        let grants = self.grants_of_key(&r.key_id)?;
        let allows = |g: &wire::Grant, grantee: &str| {
            let constraint = constraint_of(g);
            let terms = GrantTerms {
                grantee_principal: grantee,
                operations: &g.operations,
                constraint: &constraint,
            };
            grant_allows(&terms, &c.principal, &r.action, &request_context)
        };
        let grant = grants
            .iter()
            .find(|g| allows(g, &g.grantee_principal))
            .or_else(|| {
                grants.iter().find(|g| {
                    grantee_is_account(&g.grantee_principal, &c.account)
                        && allows(g, &c.principal)
                        && identity_only(&ctx, &identity_policies).is_ok()
                })
            })
            .map_or(GrantAllowance::None, |g| GrantAllowance::Allowed {
                grant_id: Some(g.grant_id.clone()),
            });
        let decision = authorize(&AuthzRequest {
            context: &ctx,
            key_policy: &key_policy,
            identity_policies: &identity_policies,
            grant: &grant,
        });
        match decision {
            AuthzDecision::Allowed(kms_policy_lang::AllowBasis::Grant { grant_id }) => {
                Ok(wire::AuthorizeResponse { grant_id: grant_id.unwrap_or_default(), cacheable })
            }
            AuthzDecision::Allowed(_) => {
                Ok(wire::AuthorizeResponse { grant_id: String::new(), cacheable })
            }
            AuthzDecision::Denied(_) => Err(denied(&decision, &ctx)),
        }
    }
}

/// Actions on no key (CreateKey, ListKeys, ListAliases, GenerateRandom, ...): only the
/// caller's identity policies decide; the account root may do everything.
fn identity_only(ctx: &RequestContext, policies: &[Policy]) -> KmsResult<()> {
    let mut allowed = ctx.principal_type() == PrincipalType::Root;
    for (index, policy) in policies.iter().enumerate() {
        match evaluate_policy(policy, ctx) {
            Decision::ExplicitDeny { statement } => {
                let decision = AuthzDecision::Denied(DenyReason::ExplicitDeny {
                    source: PolicySource::IdentityPolicy(index),
                    statement,
                });
                return Err(denied(&decision, ctx));
            }
            Decision::Allow { .. } => allowed = true,
            Decision::NoMatch => {}
        }
    }
    if allowed {
        Ok(())
    } else {
        Err(denied(&AuthzDecision::Denied(DenyReason::NoIdentityBasedAllow), ctx))
    }
}

/// Whether a policy document tests the time of the request, which makes its decisions
/// unfit for caching.
fn tests_time(document: &str) -> bool {
    let lower = document.to_ascii_lowercase();
    lower.contains("aws:currenttime") || lower.contains("aws:epochtime")
}
