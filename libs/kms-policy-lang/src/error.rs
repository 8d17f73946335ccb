//! Why a policy document was refused. Every variant maps to AWS's
//! `MalformedPolicyDocumentException`; the Display text is the message to return.

/// A policy document that is not valid for the requested [`PolicyKind`](crate::PolicyKind).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("The policy document exceeds the maximum length of {max} bytes: it is {size} bytes.")]
    TooLarge { size: usize, max: usize },
    #[error("The policy document is not valid JSON.")]
    InvalidJson,
    #[error("The policy document must be a JSON object.")]
    NotAnObject,
    #[error("The policy document contains an unsupported Version: {0}. Use 2012-10-17.")]
    UnsupportedVersion(String),
    #[error("The policy document contains an unsupported element: {0}.")]
    UnsupportedElement(String),
    #[error("The policy document contains an invalid {element} element.")]
    InvalidElement { element: &'static str },
    #[error("The policy document must contain at least one statement.")]
    MissingStatement,
    #[error("Statement IDs (SID) in a single policy must be unique: {0} is duplicated.")]
    DuplicateSid(String),
    #[error("Policy contains a statement with no Effect.")]
    MissingEffect,
    #[error(
        "Policy contains a statement with an invalid Effect: {0}. Effect must be Allow or Deny."
    )]
    InvalidEffect(String),
    #[error("Policy contains a statement with no Principal or NotPrincipal.")]
    MissingPrincipal,
    #[error("Policy contains a statement with one or more invalid principals.")]
    InvalidPrincipal,
    #[error("Identity-based policies cannot contain a Principal or NotPrincipal element.")]
    PrincipalInIdentityPolicy,
    #[error("Policy contains a statement with both {0} and {1}.")]
    ConflictingElements(&'static str, &'static str),
    #[error("Policy contains a statement with no Action or NotAction.")]
    MissingAction,
    #[error("Policy contains a statement with one or more invalid actions: {0}.")]
    InvalidAction(String),
    #[error("Policy contains a statement with no Resource or NotResource.")]
    MissingResource,
    #[error("Policy contains a statement with one or more invalid resources: {0}.")]
    InvalidResource(String),
    #[error("Policy contains a statement with an unsupported condition operator: {0}.")]
    UnsupportedConditionOperator(String),
    #[error("Policy contains a statement with an invalid condition key: {0}.")]
    InvalidConditionKey(String),
    #[error(
        "Policy contains a statement with an invalid value for condition operator {operator} \
         and key {key}: {value}."
    )]
    InvalidConditionValue { operator: String, key: String, value: String },
}
