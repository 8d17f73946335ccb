//! Parsing and validating a policy document into statements that can be evaluated, with
//! the checks AWS makes before it accepts a key policy (PutKeyPolicy, CreateKey) or an
//! identity policy.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json};

use crate::condition::{parse_conditions, Condition};
use crate::error::PolicyError;
use crate::pattern::{compile_glob, Template, Tok};

/// The most a key policy may weigh, in bytes (AWS's limit, also applied to identity
/// policies here).
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

/// Which kind of document is parsed: key policies must name principals, identity
/// policies must not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// A key policy (resource-based): every statement has `Principal` or `NotPrincipal`.
    Key,
    /// An IAM identity policy attached to the caller: no principal element.
    Identity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// One entry of a Principal / NotPrincipal element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PrincipalEntry {
    /// `"Principal": "*"`: everyone, service principals included.
    Everyone,
    /// `{"AWS": "*"}`: every AWS account principal (not service principals).
    AnyAws,
    /// `{"AWS": "<acct>"}` or `arn:<p>:iam::<acct>:root`: the account, delegating to IAM.
    Account(String),
    /// A user or federated-user ARN, or an assumed-role session ARN: matched exactly.
    Exact(String),
    /// A role ARN: matches the role and its sessions.
    Role { arn: String, account: String, name: String },
    /// `{"Service": "s3.amazonaws.com"}`.
    Service(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Principals {
    /// Identity policies.
    Implicit,
    Principal(Vec<PrincipalEntry>),
    NotPrincipal(Vec<PrincipalEntry>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Statement {
    pub(crate) index: usize,
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) principals: Principals,
    /// Lowercased action patterns; `negated` for NotAction.
    pub(crate) actions: Vec<Vec<Tok>>,
    pub(crate) not_action: bool,
    pub(crate) resources: Vec<Template>,
    pub(crate) not_resource: bool,
    pub(crate) conditions: Vec<Condition>,
}

/// A parsed, validated policy document.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    kind: PolicyKind,
    version: Option<String>,
    id: Option<String>,
    pub(crate) statements: Vec<Statement>,
}

impl Policy {
    /// Parses and validates `text` as a policy of `kind`.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge { size: text.len(), max: MAX_POLICY_BYTES });
        }
        let json: Json = serde_json::from_str(text).map_err(|_| PolicyError::InvalidJson)?;
        let Json::Object(doc) = json else { return Err(PolicyError::NotAnObject) };
        let mut version = None;
        let mut id = None;
        let mut statements_json = None;
        for (name, value) in &doc {
            match name.as_str() {
                "Version" => match value {
                    Json::String(v) if v == "2012-10-17" || v == "2008-10-17" => {
                        version = Some(v.clone());
                    }
                    Json::String(v) => return Err(PolicyError::UnsupportedVersion(v.clone())),
                    other => return Err(PolicyError::UnsupportedVersion(other.to_string())),
                },
                "Id" => match value {
                    Json::String(v) => id = Some(v.clone()),
                    _ => return Err(PolicyError::InvalidElement { element: "Id" }),
                },
                "Statement" => statements_json = Some(value),
                other => return Err(PolicyError::UnsupportedElement(other.to_owned())),
            }
        }
        let variables = version.as_deref() == Some("2012-10-17");
        let items: Vec<&Json> = match statements_json {
            None => return Err(PolicyError::MissingStatement),
            Some(Json::Array(items)) if items.is_empty() => {
                return Err(PolicyError::MissingStatement)
            }
            Some(Json::Array(items)) => items.iter().collect(),
            Some(one @ Json::Object(_)) => vec![one],
            Some(_) => return Err(PolicyError::InvalidElement { element: "Statement" }),
        };
        let mut sids = BTreeSet::new();
        let mut statements = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let Json::Object(fields) = item else {
                return Err(PolicyError::InvalidElement { element: "Statement" });
            };
            let statement = parse_statement(index, fields, kind, variables)?;
            if let Some(sid) = &statement.sid {
                if !sids.insert(sid.clone()) {
                    return Err(PolicyError::DuplicateSid(sid.clone()));
                }
            }
            statements.push(statement);
        }
        Ok(Self { kind, version, id, statements })
    }

    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// `Version`, when the document has one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// `Id`, when the document has one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }
}

fn strings(value: &Json) -> Option<Vec<&str>> {
    match value {
        Json::String(s) => Some(vec![s.as_str()]),
        Json::Array(items) if !items.is_empty() => {
            items.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>()
        }
        _ => None,
    }
}

fn parse_statement(
    index: usize,
    fields: &Map<String, Json>,
    kind: PolicyKind,
    variables: bool,
) -> Result<Statement, PolicyError> {
    const KNOWN: [&str; 9] = [
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    ];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(PolicyError::UnsupportedElement(unknown.clone()));
    }
    let sid = match fields.get("Sid") {
        None => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(_) => return Err(PolicyError::InvalidElement { element: "Sid" }),
    };
    let effect = match fields.get("Effect") {
        None => return Err(PolicyError::MissingEffect),
        Some(Json::String(e)) if e == "Allow" => Effect::Allow,
        Some(Json::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(PolicyError::InvalidEffect(
                other.as_str().map_or_else(|| other.to_string(), str::to_owned),
            ))
        }
    };
    let principals = match (kind, fields.get("Principal"), fields.get("NotPrincipal")) {
        (PolicyKind::Identity, None, None) => Principals::Implicit,
        (PolicyKind::Identity, _, _) => return Err(PolicyError::PrincipalInIdentityPolicy),
        (PolicyKind::Key, Some(_), Some(_)) => {
            return Err(PolicyError::ConflictingElements("Principal", "NotPrincipal"))
        }
        (PolicyKind::Key, None, None) => return Err(PolicyError::MissingPrincipal),
        (PolicyKind::Key, Some(p), None) => Principals::Principal(parse_principals(p)?),
        (PolicyKind::Key, None, Some(p)) => Principals::NotPrincipal(parse_principals(p)?),
    };
    let (actions, not_action) = match (fields.get("Action"), fields.get("NotAction")) {
        (Some(_), Some(_)) => return Err(PolicyError::ConflictingElements("Action", "NotAction")),
        (None, None) => return Err(PolicyError::MissingAction),
        (Some(a), None) => (parse_actions(a)?, false),
        (None, Some(a)) => (parse_actions(a)?, true),
    };
    let (resources, not_resource) = match (fields.get("Resource"), fields.get("NotResource")) {
        (Some(_), Some(_)) => {
            return Err(PolicyError::ConflictingElements("Resource", "NotResource"))
        }
        (None, None) => return Err(PolicyError::MissingResource),
        (Some(r), None) => (parse_resources(r, variables)?, false),
        (None, Some(r)) => (parse_resources(r, variables)?, true),
    };
    let conditions = match fields.get("Condition") {
        None => Vec::new(),
        Some(c) => parse_conditions(c, variables)?,
    };
    Ok(Statement {
        index,
        sid,
        effect,
        principals,
        actions,
        not_action,
        resources,
        not_resource,
        conditions,
    })
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

const PARTITIONS: [&str; 5] = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"];

fn valid_name_path(s: &str) -> bool {
    !s.is_empty()
        && !s.ends_with('/')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
}

/// An `AWS` principal value: `*`, an account ID, or a root/user/role/session ARN.
fn parse_aws_principal(value: &str) -> Option<PrincipalEntry> {
    if value == "*" {
        return Some(PrincipalEntry::AnyAws);
    }
    if is_account_id(value) {
        return Some(PrincipalEntry::Account(value.to_owned()));
    }
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
        return None;
    };
    if *prefix != "arn"
        || !PARTITIONS.contains(partition)
        || !region.is_empty()
        || !is_account_id(account)
        || value.contains(['*', '?'])
    {
        return None;
    }
    match (*service, *resource) {
        ("iam", "root") => Some(PrincipalEntry::Account((*account).to_owned())),
        ("iam", r) => {
            if let Some(path) = r.strip_prefix("user/") {
                valid_name_path(path).then(|| PrincipalEntry::Exact(value.to_owned()))
            } else if let Some(path) = r.strip_prefix("role/") {
                let name = path.rsplit('/').next().unwrap_or_default();
                valid_name_path(path).then(|| PrincipalEntry::Role {
                    arn: value.to_owned(),
                    account: (*account).to_owned(),
                    name: name.to_owned(),
                })
            } else {
                None
            }
        }
        ("sts", r) => {
            let mut segments = r.split('/');
            match (segments.next(), segments.next(), segments.next(), segments.next()) {
                (Some("assumed-role"), Some(role), Some(session), None)
                    if valid_name_path(role) && valid_name_path(session) =>
                {
                    Some(PrincipalEntry::Exact(value.to_owned()))
                }
                (Some("federated-user"), Some(name), None, None) if valid_name_path(name) => {
                    Some(PrincipalEntry::Exact(value.to_owned()))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn parse_service_principal(value: &str) -> Option<PrincipalEntry> {
    let valid = value.contains('.')
        && !value.starts_with('.')
        && !value.ends_with('.')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    valid.then(|| PrincipalEntry::Service(value.to_ascii_lowercase()))
}

fn parse_principals(value: &Json) -> Result<Vec<PrincipalEntry>, PolicyError> {
    match value {
        Json::String(s) if s == "*" => Ok(vec![PrincipalEntry::Everyone]),
        Json::Object(map) if !map.is_empty() => {
            let mut out = Vec::new();
            for (kind, values) in map {
                let parse: fn(&str) -> Option<PrincipalEntry> = match kind.as_str() {
                    "AWS" => parse_aws_principal,
                    "Service" => parse_service_principal,
                    _ => return Err(PolicyError::InvalidPrincipal),
                };
                for v in strings(values).ok_or(PolicyError::InvalidPrincipal)? {
                    out.push(parse(v).ok_or(PolicyError::InvalidPrincipal)?);
                }
            }
            Ok(out)
        }
        _ => Err(PolicyError::InvalidPrincipal),
    }
}

fn parse_actions(value: &Json) -> Result<Vec<Vec<Tok>>, PolicyError> {
    let list = strings(value).ok_or(PolicyError::InvalidElement { element: "Action" })?;
    list.into_iter()
        .map(|action| {
            let valid = action == "*"
                || action.split_once(':').is_some_and(|(service, name)| {
                    !service.is_empty()
                        && service.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !name.is_empty()
                        && name.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'*' | b'?' | b'_' | b'-')
                        })
                });
            if valid {
                Ok(compile_glob(&action.to_lowercase()))
            } else {
                Err(PolicyError::InvalidAction(action.to_owned()))
            }
        })
        .collect()
}

fn parse_resources(value: &Json, variables: bool) -> Result<Vec<Template>, PolicyError> {
    let list = strings(value).ok_or(PolicyError::InvalidElement { element: "Resource" })?;
    list.into_iter()
        .map(|resource| {
            let valid = resource == "*"
                || (resource.starts_with("arn:") && resource.splitn(6, ':').count() == 6);
            if valid {
                Ok(Template::parse(resource, variables))
            } else {
                Err(PolicyError::InvalidResource(resource.to_owned()))
            }
        })
        .collect()
}
