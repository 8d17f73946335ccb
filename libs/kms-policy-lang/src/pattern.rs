//! Wildcard patterns (`*`, `?`) and policy-variable templates (`${aws:username}`), shared by
//! the Action, Resource and Condition elements so every place matches the same way.

use crate::context::{normalize_key, RequestContext};

/// One token of a wildcard pattern. Characters that came from a policy variable or an
/// escape (`${*}`) are `Lit`, so a user name containing `*` never becomes a wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char),
    /// `*`: any run of characters, including none.
    Star,
    /// `?`: exactly one character.
    One,
}

/// Compiles raw text in which `*` and `?` are wildcards.
pub(crate) fn compile_glob(text: &str) -> Vec<Tok> {
    text.chars()
        .map(|c| match c {
            '*' => Tok::Star,
            '?' => Tok::One,
            c => Tok::Lit(c),
        })
        .collect()
}

/// Whole-string wildcard match; `fold` lowercases both sides first (action names).
pub(crate) fn glob_match(pattern: &[Tok], text: &str, fold: bool) -> bool {
    let text: Vec<char> = if fold {
        text.chars().flat_map(char::to_lowercase).collect()
    } else {
        text.chars().collect()
    };
    let pattern: Vec<Tok> = if fold {
        pattern
            .iter()
            .flat_map(|t| match t {
                Tok::Lit(c) => c.to_lowercase().map(Tok::Lit).collect::<Vec<_>>(),
                other => vec![other.clone()],
            })
            .collect()
    } else {
        pattern.to_vec()
    };
    match_chars(&pattern, &text)
}

/// Iterative wildcard matching with single-star backtracking: linear in practice, never
/// exponential, so a hostile policy cannot make evaluation slow.
fn match_chars(pattern: &[Tok], text: &[char]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Tok::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Lit(c)) if text.get(t) == Some(c) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|tok| *tok == Tok::Star)
}

/// ARN matching as ArnLike/ArnEquals do it: the six colon-separated parts are compared
/// separately (the sixth keeps any further colons), each with wildcards, case-sensitively.
/// A pattern that is exactly `*` matches anything.
pub(crate) fn arn_match(pattern: &[Tok], arn: &str) -> bool {
    if pattern == [Tok::Star] {
        return true;
    }
    let pattern_parts = split_tokens(pattern);
    let arn_parts: Vec<&str> = arn.splitn(6, ':').collect();
    if pattern_parts.len() != 6 || arn_parts.len() != 6 {
        return false;
    }
    pattern_parts.iter().zip(arn_parts).all(|(pat, part)| glob_match(pat, part, false))
}

fn split_tokens(pattern: &[Tok]) -> Vec<Vec<Tok>> {
    let mut parts: Vec<Vec<Tok>> = vec![Vec::new()];
    for tok in pattern {
        if *tok == Tok::Lit(':') && parts.len() < 6 {
            parts.push(Vec::new());
        } else if let Some(last) = parts.last_mut() {
            last.push(tok.clone());
        }
    }
    parts
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Policy text; `*` and `?` in it are wildcards for the Like operators.
    Text(String),
    /// `${key}` or `${key, 'default'}`; `key` is normalised like a condition key.
    Var { key: String, default: Option<String> },
    /// `${*}`, `${?}`, `${$}`: the character itself, never a wildcard.
    Escaped(char),
}

/// A policy value that may contain policy variables. Variables are only recognised in
/// policies with `"Version": "2012-10-17"`; in older documents `${...}` is plain text, as
/// in AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub(crate) fn parse(text: &str, variables: bool) -> Self {
        if !variables {
            return Self { parts: vec![Part::Text(text.to_owned())] };
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else { break };
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let inner = &after[..end];
            parts.push(match inner {
                "*" => Part::Escaped('*'),
                "?" => Part::Escaped('?'),
                "$" => Part::Escaped('$'),
                _ => {
                    let (key, default) = match inner.split_once(',') {
                        Some((key, default)) => {
                            let default = default.trim();
                            let default = default
                                .strip_prefix('\'')
                                .and_then(|d| d.strip_suffix('\''))
                                .unwrap_or(default);
                            (key.trim(), Some(default.to_owned()))
                        }
                        None => (inner.trim(), None),
                    };
                    Part::Var { key: normalize_key(key), default }
                }
            });
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Self { parts }
    }

    /// The raw text when the template has no variables or escapes.
    #[cfg(test)]
    pub(crate) fn as_plain(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Text(text)] => Some(text),
            [] => Some(""),
            _ => None,
        }
    }

    fn variable(key: &str, default: Option<&String>, ctx: &RequestContext) -> Option<String> {
        match ctx.single(key) {
            Some(value) => Some(value.to_owned()),
            None => default.cloned(),
        }
    }

    /// The value with variables substituted, every character literal (StringEquals,
    /// NumericEquals...). `None` when a variable's key is missing from the request: such
    /// a value matches nothing.
    pub(crate) fn literal(&self, ctx: &RequestContext) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Escaped(c) => out.push(*c),
                Part::Var { key, default } => {
                    out.push_str(&Self::variable(key, default.as_ref(), ctx)?);
                }
            }
        }
        Some(out)
    }

    /// The value as a wildcard pattern: `*`/`?` written in the policy are wildcards,
    /// substituted and escaped characters are literal. `None` when a variable is missing.
    pub(crate) fn pattern(&self, ctx: &RequestContext) -> Option<Vec<Tok>> {
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.extend(compile_glob(text)),
                Part::Escaped(c) => out.push(Tok::Lit(*c)),
                Part::Var { key, default } => {
                    out.extend(Self::variable(key, default.as_ref(), ctx)?.chars().map(Tok::Lit));
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_basics() {
        let cases = [
            ("kms:*", "kms:Decrypt", true, true),
            ("kms:ReEncrypt*", "kms:ReEncryptFrom", true, true),
            ("kms:reencrypt*", "KMS:REENCRYPTTO", true, true),
            ("kms:ReEncrypt*", "kms:reencryptfrom", false, false),
            ("kms:GenerateDataKey*", "kms:GenerateDataKeyPairWithoutPlaintext", true, true),
            ("kms:GenerateDataKey*", "kms:Generate", true, false),
            ("a?c", "abc", false, true),
            ("a?c", "ac", false, false),
            ("*", "", false, true),
            ("", "", false, true),
            ("", "x", false, false),
            ("a*b*c", "aXXbYYc", false, true),
            ("a*b*c", "aXXbYY", false, false),
            ("**", "anything", false, true),
        ];
        for (pat, text, fold, want) in cases {
            assert_eq!(glob_match(&compile_glob(pat), text, fold), want, "{pat} vs {text}");
        }
    }

    #[test]
    fn arn_segments() {
        let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd";
        assert!(arn_match(&compile_glob("arn:aws:kms:*:111122223333:key/*"), key));
        assert!(arn_match(&compile_glob("arn:aws:kms:us-east-?:*:*"), key));
        assert!(!arn_match(&compile_glob("arn:aws:kms:*:444455556666:key/*"), key));
        assert!(!arn_match(&compile_glob("arn:aws:kms:*"), key));
        assert!(arn_match(&compile_glob("*"), key));
        assert!(!arn_match(&compile_glob("arn:aws:kms:us-east-1:111122223333:key/*"), "nonsense"));
        // The sixth part keeps its colons.
        assert!(arn_match(
            &compile_glob("arn:aws:logs:*:*:log-group:*"),
            "arn:aws:logs:r:1:log-group:x"
        ));
    }

    #[test]
    fn template_parsing() {
        let t = Template::parse("a${*}b${?}c${$}d", true);
        assert_eq!(t.pattern(&RequestContext::empty()), Some(compile_lits("a*b?c$d")));
        let t = Template::parse("${aws:username}", false);
        assert_eq!(t.as_plain(), Some("${aws:username}"));
        let t = Template::parse("x${unterminated", true);
        assert_eq!(t.as_plain(), Some("x${unterminated"));
        let t = Template::parse("${aws:username, 'nobody'}", true);
        assert_eq!(t.literal(&RequestContext::empty()).as_deref(), Some("nobody"));
        let t = Template::parse("${aws:username}", true);
        assert_eq!(t.literal(&RequestContext::empty()), None);
    }

    fn compile_lits(s: &str) -> Vec<Tok> {
        s.chars().map(Tok::Lit).collect()
    }
}
