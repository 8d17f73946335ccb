//! Who a request was authenticated as, and the IAM ARN rules used to derive it.

/// How a request was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// AWS Signature Version 4 with a static access key.
    SigV4,
    /// A JWT bearer token from a configured issuer.
    Jwt {
        /// The token's `iss`.
        issuer: String,
    },
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The 12-digit account the caller acts in.
    pub account_id: String,
    /// The caller's IAM ARN, e.g. `arn:aws:iam::111122223333:user/dev`.
    pub principal_arn: String,
    /// The last path part of the ARN (`dev` for `user/dev`, `root` for the root user).
    pub user_name: String,
    /// CloudTrail `userIdentity.type`: `IAMUser`, `AssumedRole`, `Root` or `WebIdentityUser`.
    pub identity_type: String,
    /// The access key id (SigV4 only).
    pub access_key_id: Option<String>,
    /// The SigV4 credential-scope region, or the JWT region claim when present.
    pub region: Option<String>,
    /// The SigV4 credential-scope service (the gateway checks it).
    pub service: Option<String>,
    /// How the caller was authenticated.
    pub method: AuthMethod,
    /// Tags of the principal (`aws:PrincipalTag/<key>` in policies): from the access
    /// key's entry in the credentials file, or a JWT's `principal_tags` claim.
    pub principal_tags: std::collections::BTreeMap<String, String>,
    /// For temporary credentials (a role session): what CloudTrail records as
    /// `userIdentity.sessionContext`. `None` for long-term keys and bearer tokens.
    pub session: Option<SessionContext>,
}

/// A role session behind temporary credentials, as CloudTrail describes it in
/// `userIdentity.sessionContext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    /// The role the session was issued for (`sessionIssuer.arn`), e.g.
    /// `arn:aws:iam::111122223333:role/app`.
    pub issuer_arn: String,
    /// The role's name (`sessionIssuer.userName`).
    pub issuer_name: String,
    /// The account of the role (`sessionIssuer.accountId`).
    pub issuer_account_id: String,
    /// When the session's credentials were issued, seconds since the Unix epoch
    /// (`attributes.creationDate`).
    pub created_at_epoch_s: i64,
    /// For a web-identity session, the token issuer (`webIdFederationData.federatedProvider`).
    pub federated_provider: Option<String>,
}

/// What an IAM principal ARN says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PrincipalArn<'a> {
    pub(crate) account_id: &'a str,
    /// CloudTrail `userIdentity.type` for a caller with a static key.
    pub(crate) identity_type: &'static str,
    pub(crate) user_name: &'a str,
}

pub(crate) fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

/// The IAM name character set: `[A-Za-z0-9+=,.@_-]`.
pub(crate) fn is_iam_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// Parses `arn:aws:iam::<12 digits>:root`, `...:user/[path/]name` or `...:role/[path/]name`.
pub(crate) fn parse_principal_arn(arn: &str) -> Result<PrincipalArn<'_>, &'static str> {
    let rest = arn.strip_prefix("arn:aws:iam::").ok_or("must start with \"arn:aws:iam::\"")?;
    let (account_id, resource) =
        rest.split_once(':').ok_or("must be arn:aws:iam::<account>:<resource>")?;
    if !is_account_id(account_id) {
        return Err("account must be 12 digits");
    }
    if resource == "root" {
        return Ok(PrincipalArn { account_id, identity_type: "Root", user_name: "root" });
    }
    let (identity_type, path) = if let Some(path) = resource.strip_prefix("user/") {
        ("IAMUser", path)
    } else if let Some(path) = resource.strip_prefix("role/") {
        ("AssumedRole", path)
    } else {
        return Err("resource must be root, user/NAME or role/NAME");
    };
    if !path.split('/').all(is_iam_name) {
        return Err("name and path parts must be non-empty IAM names ([A-Za-z0-9+=,.@_-])");
    }
    let user_name = path.rsplit('/').next().unwrap_or(path);
    Ok(PrincipalArn { account_id, identity_type, user_name })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(arn: &str, expected: Result<(&str, &str, &str), ()>) {
        let got = parse_principal_arn(arn)
            .map(|p| (p.account_id, p.identity_type, p.user_name))
            .map_err(|_| ());
        assert_eq!(got, expected, "{arn}");
    }

    #[test]
    fn principal_arns() {
        let ok = |a, t, u| Ok((a, t, u));
        check("arn:aws:iam::111122223333:user/dev", ok("111122223333", "IAMUser", "dev"));
        check(
            "arn:aws:iam::111122223333:user/division/team/dev",
            ok("111122223333", "IAMUser", "dev"),
        );
        check(
            "arn:aws:iam::000000000000:role/kms-operator",
            ok("000000000000", "AssumedRole", "kms-operator"),
        );
        check("arn:aws:iam::111122223333:root", ok("111122223333", "Root", "root"));
        check(
            "arn:aws:iam::111122223333:user/a.b+c=d,e@f_g-h",
            ok("111122223333", "IAMUser", "a.b+c=d,e@f_g-h"),
        );
        for bad in [
            "",
            "arn:aws:sts::111122223333:assumed-role/r/s",
            "arn:aws:iam::11112222333:user/dev",
            "arn:aws:iam::1111222233334:user/dev",
            "arn:aws:iam::11112222333x:user/dev",
            "arn:aws:iam::111122223333",
            "arn:aws:iam::111122223333:group/dev",
            "arn:aws:iam::111122223333:user/",
            "arn:aws:iam::111122223333:user//dev",
            "arn:aws:iam::111122223333:user/dev/",
            "arn:aws:iam::111122223333:user/de v",
            "arn:aws:iam::111122223333:user/dev:x",
        ] {
            check(bad, Err(()));
        }
    }

    #[test]
    fn account_ids() {
        assert!(is_account_id("000000000000"));
        assert!(is_account_id("111122223333"));
        assert!(!is_account_id("11112222333"));
        assert!(!is_account_id("1111222233334"));
        assert!(!is_account_id("11112222333a"));
        assert!(!is_account_id("١١١١٢٢٢٢٣٣٣٣"));
    }
}
