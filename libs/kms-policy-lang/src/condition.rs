//! The Condition element: operators, set qualifiers, `IfExists`, typed values validated at
//! parse time, and their evaluation against a request context with AWS's rules for
//! missing keys, negation and multi-valued keys.

use std::net::IpAddr;

use serde_json::Value as Json;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

use crate::context::{normalize_key, RequestContext};
use crate::error::PolicyError;
use crate::pattern::{arn_match, glob_match, Template};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        matches!(
            (self, ordering),
            (Self::Eq, Equal)
                | (Self::Lt, Less)
                | (Self::Le, Less | Equal)
                | (Self::Gt, Greater)
                | (Self::Ge, Greater | Equal)
        )
    }
}

/// The positive form of an operator; negated operators are `!positive` per value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Qualifier {
    ForAnyValue,
    ForAllValues,
}

/// Base operator names (case-insensitive), their family and whether they negate.
const OPERATORS: &[(&str, Family, bool)] = &[
    ("StringEquals", Family::StringEquals, false),
    ("StringNotEquals", Family::StringEquals, true),
    ("StringEqualsIgnoreCase", Family::StringEqualsIgnoreCase, false),
    ("StringNotEqualsIgnoreCase", Family::StringEqualsIgnoreCase, true),
    ("StringLike", Family::StringLike, false),
    ("StringNotLike", Family::StringLike, true),
    ("NumericEquals", Family::Numeric(Cmp::Eq), false),
    ("NumericNotEquals", Family::Numeric(Cmp::Eq), true),
    ("NumericLessThan", Family::Numeric(Cmp::Lt), false),
    ("NumericLessThanEquals", Family::Numeric(Cmp::Le), false),
    ("NumericGreaterThan", Family::Numeric(Cmp::Gt), false),
    ("NumericGreaterThanEquals", Family::Numeric(Cmp::Ge), false),
    ("DateEquals", Family::Date(Cmp::Eq), false),
    ("DateNotEquals", Family::Date(Cmp::Eq), true),
    ("DateLessThan", Family::Date(Cmp::Lt), false),
    ("DateLessThanEquals", Family::Date(Cmp::Le), false),
    ("DateGreaterThan", Family::Date(Cmp::Gt), false),
    ("DateGreaterThanEquals", Family::Date(Cmp::Ge), false),
    ("Bool", Family::Bool, false),
    ("BinaryEquals", Family::Binary, false),
    ("IpAddress", Family::Ip, false),
    ("NotIpAddress", Family::Ip, true),
    ("ArnEquals", Family::Arn, false),
    ("ArnLike", Family::Arn, false),
    ("ArnNotEquals", Family::Arn, true),
    ("ArnNotLike", Family::Arn, true),
    ("Null", Family::Null, false),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Operator {
    family: Family,
    negated: bool,
    if_exists: bool,
    qualifier: Option<Qualifier>,
}

fn parse_operator(name: &str) -> Result<Operator, PolicyError> {
    let unsupported = || PolicyError::UnsupportedConditionOperator(name.to_owned());
    let (qualifier, rest) = match name.split_once(':') {
        Some((q, rest)) if q.eq_ignore_ascii_case("ForAnyValue") => {
            (Some(Qualifier::ForAnyValue), rest)
        }
        Some((q, rest)) if q.eq_ignore_ascii_case("ForAllValues") => {
            (Some(Qualifier::ForAllValues), rest)
        }
        Some(_) => return Err(unsupported()),
        None => (None, name),
    };
    let lower = rest.to_ascii_lowercase();
    let (base, if_exists) = match lower.strip_suffix("ifexists") {
        Some(base) => (base, true),
        None => (lower.as_str(), false),
    };
    let &(_, family, negated) = OPERATORS
        .iter()
        .find(|(op, _, _)| op.eq_ignore_ascii_case(base))
        .ok_or_else(unsupported)?;
    // AWS: Null tests existence itself, so neither IfExists nor a set qualifier applies.
    if family == Family::Null && (if_exists || qualifier.is_some()) {
        return Err(unsupported());
    }
    Ok(Operator { family, negated, if_exists, qualifier })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    /// The address as 128 bits; IPv4 in the low 32.
    bits: u128,
    prefix: u8,
    v6: bool,
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().ok()?;
        let (bits, width, v6) = match addr {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u8, false),
            IpAddr::V6(v6) => (u128::from(v6), 128u8, true),
        };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => width,
        };
        (prefix <= width).then_some(Self { bits, prefix, v6 })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let (bits, width, v6) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u32, false),
            IpAddr::V6(v6) => (u128::from(v6), 128u32, true),
        };
        if v6 != self.v6 {
            return false;
        }
        let host_bits = width - u32::from(self.prefix);
        let shift = |x: u128| x.checked_shr(host_bits).unwrap_or(0);
        shift(bits) == shift(self.bits)
    }
}

/// Seconds since the epoch (as i128 nanoseconds) for ISO 8601 text or epoch seconds.
pub(crate) fn parse_date(text: &str) -> Option<i128> {
    let text = text.trim();
    if !text.is_empty()
        && text.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
    {
        let secs: i64 = text.parse().ok()?;
        return Some(i128::from(secs) * 1_000_000_000);
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at.unix_timestamp_nanos());
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(at.unix_timestamp_nanos());
    }
    if let Ok(at) = PrimitiveDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(at.assume_utc().unix_timestamp_nanos());
    }
    if let Ok(day) = Date::parse(text, &Iso8601::DEFAULT) {
        return Some(
            PrimitiveDateTime::new(day, Time::MIDNIGHT).assume_utc().unix_timestamp_nanos(),
        );
    }
    None
}

fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    let valid = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    valid.then(|| text.parse::<f64>().ok()).flatten().filter(|n| n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Standard base64 (padding optional), as BinaryEquals values are written.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    // A single leftover sextet cannot encode a byte.
    (bits < 6).then_some(out)
}

#[derive(Clone, Debug, PartialEq)]
enum Values {
    Templates(Vec<Template>),
    Numbers(Vec<f64>),
    Dates(Vec<i128>),
    Bools(Vec<bool>),
    Bytes(Vec<Vec<u8>>),
    Cidrs(Vec<Cidr>),
}

/// One `operator: { key: values }` pair of a Condition block.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Condition {
    op: Operator,
    key: String,
    values: Values,
}

fn value_strings(json: &Json) -> Option<Vec<String>> {
    let one = |v: &Json| match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match json {
        Json::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        Json::Array(_) => None,
        other => one(other).map(|s| vec![s]),
    }
}

fn valid_key(key: &str) -> bool {
    match key.split_once(':') {
        Some((prefix, rest)) => {
            !prefix.is_empty()
                && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !rest.is_empty()
                && !rest.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Parses a Condition element. `variables` says whether `${...}` is substituted.
pub(crate) fn parse_conditions(
    json: &Json,
    variables: bool,
) -> Result<Vec<Condition>, PolicyError> {
    let Json::Object(block) = json else {
        return Err(PolicyError::InvalidElement { element: "Condition" });
    };
    let mut out = Vec::new();
    for (op_name, keys) in block {
        let op = parse_operator(op_name)?;
        let Json::Object(keys) = keys else {
            return Err(PolicyError::InvalidElement { element: "Condition" });
        };
        if keys.is_empty() {
            return Err(PolicyError::InvalidElement { element: "Condition" });
        }
        for (key, raw) in keys {
            if !valid_key(key) {
                return Err(PolicyError::InvalidConditionKey(key.clone()));
            }
            let invalid = |value: &str| PolicyError::InvalidConditionValue {
                operator: op_name.clone(),
                key: key.clone(),
                value: value.to_owned(),
            };
            let strings = value_strings(raw).ok_or_else(|| invalid(&raw.to_string()))?;
            fn all<T>(
                strings: &[String],
                parse: impl Fn(&str) -> Option<T>,
                invalid: impl Fn(&str) -> PolicyError,
            ) -> Result<Vec<T>, PolicyError> {
                strings.iter().map(|s| parse(s).ok_or_else(|| invalid(s))).collect()
            }
            let values = match op.family {
                Family::StringEquals
                | Family::StringEqualsIgnoreCase
                | Family::StringLike
                | Family::Arn => Values::Templates(
                    strings.iter().map(|s| Template::parse(s, variables)).collect(),
                ),
                Family::Numeric(_) => Values::Numbers(all(&strings, parse_number, invalid)?),
                Family::Date(_) => Values::Dates(all(&strings, parse_date, invalid)?),
                Family::Bool | Family::Null => Values::Bools(all(&strings, parse_bool, invalid)?),
                Family::Binary => Values::Bytes(all(&strings, decode_base64, invalid)?),
                Family::Ip => Values::Cidrs(all(&strings, Cidr::parse, invalid)?),
            };
            out.push(Condition { op, key: normalize_key(key), values });
        }
    }
    Ok(out)
}

impl Condition {
    /// Whether one request value matches any policy value under the positive operator.
    fn positive(&self, actual: &str, ctx: &RequestContext) -> bool {
        match (&self.values, self.op.family) {
            (Values::Templates(ts), Family::StringEquals) => {
                ts.iter().any(|t| t.literal(ctx).is_some_and(|v| v == actual))
            }
            (Values::Templates(ts), Family::StringEqualsIgnoreCase) => {
                let actual = actual.to_lowercase();
                ts.iter().any(|t| t.literal(ctx).is_some_and(|v| v.to_lowercase() == actual))
            }
            (Values::Templates(ts), Family::StringLike) => {
                ts.iter().any(|t| t.pattern(ctx).is_some_and(|p| glob_match(&p, actual, false)))
            }
            (Values::Templates(ts), Family::Arn) => {
                ts.iter().any(|t| t.pattern(ctx).is_some_and(|p| arn_match(&p, actual)))
            }
            (Values::Numbers(ns), Family::Numeric(cmp)) => parse_number(actual)
                .is_some_and(|a| ns.iter().any(|n| a.partial_cmp(n).is_some_and(|o| cmp.holds(o)))),
            (Values::Dates(ds), Family::Date(cmp)) => {
                parse_date(actual).is_some_and(|a| ds.iter().any(|d| cmp.holds(a.cmp(d))))
            }
            (Values::Bools(bs), Family::Bool) => {
                parse_bool(actual).is_some_and(|a| bs.contains(&a))
            }
            (Values::Bytes(bs), Family::Binary) => {
                decode_base64(actual).is_some_and(|a| bs.contains(&a))
            }
            (Values::Cidrs(cs), Family::Ip) => {
                actual.trim().parse::<IpAddr>().is_ok_and(|ip| cs.iter().any(|c| c.contains(ip)))
            }
            _ => false,
        }
    }

    fn value_ok(&self, actual: &str, ctx: &RequestContext) -> bool {
        self.positive(actual, ctx) != self.op.negated
    }

    /// AWS's rules: a missing key (or an empty multi-valued one) makes a positive operator
    /// false and a negated one true; `...IfExists` makes it true; `ForAllValues` is true
    /// and `ForAnyValue` false regardless of `IfExists` (observed AWS behaviour: the set
    /// qualifier decides). Present keys: without a qualifier, positive operators need some
    /// request value to match and negated ones need no request value to match the
    /// positive form; `ForAnyValue` needs one request value that passes, `ForAllValues`
    /// needs every request value to pass.
    pub(crate) fn evaluate(&self, ctx: &RequestContext) -> bool {
        let actual = ctx.lookup(&self.key);
        if self.op.family == Family::Null {
            let Values::Bools(expect_null) = &self.values else { return false };
            return expect_null.iter().any(|null| *null == actual.is_none());
        }
        let Some(actual) = actual else {
            return match self.op.qualifier {
                Some(Qualifier::ForAllValues) => true,
                Some(Qualifier::ForAnyValue) => false,
                None => self.op.if_exists || self.op.negated,
            };
        };
        match self.op.qualifier {
            None => {
                let any_positive = actual.iter().any(|a| self.positive(a, ctx));
                any_positive != self.op.negated
            }
            Some(Qualifier::ForAnyValue) => actual.iter().any(|a| self.value_ok(a, ctx)),
            Some(Qualifier::ForAllValues) => actual.iter().all(|a| self.value_ok(a, ctx)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_parse() {
        for name in [
            "StringEquals",
            "stringequals",
            "ForAnyValue:StringLike",
            "ForAllValues:StringNotEqualsIfExists",
            "DateGreaterThanEqualsIfExists",
            "NotIpAddressIfExists",
            "ArnNotLike",
            "BinaryEquals",
            "Null",
            "BoolIfExists",
        ] {
            assert!(parse_operator(name).is_ok(), "{name}");
        }
        for name in [
            "StringEqualz",
            "ForSomeValues:StringLike",
            "NullIfExists",
            "ForAnyValue:Null",
            "",
            "IfExists",
        ] {
            assert_eq!(
                parse_operator(name),
                Err(PolicyError::UnsupportedConditionOperator(name.to_owned())),
                "{name}"
            );
        }
    }

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains(ip("203.0.113.200")));
        assert!(!c.contains(ip("203.0.114.1")));
        assert!(!c.contains(ip("2001:db8::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.1.2.3").unwrap().contains(ip("10.1.2.3")));
        assert!(!Cidr::parse("10.1.2.3").unwrap().contains(ip("10.1.2.4")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
        for bad in ["10.0.0.0/33", "2001:db8::/129", "10.0.0/8", "x", "10.0.0.0/", "10.0.0.0/-1"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_and_base64() {
        let base = parse_date("2023-01-01T00:00:00Z").unwrap();
        assert_eq!(parse_date("1672531200"), Some(base));
        assert_eq!(parse_date("2023-01-01"), Some(base));
        assert_eq!(parse_date("2023-01-01T01:00:00+01:00"), Some(base));
        assert_eq!(parse_date("2023-01-01T00:00:00"), Some(base));
        assert_eq!(parse_date("2023-01-01T00:00:00.000Z"), Some(base));
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(decode_base64("QmluYXJ5VmFsdWU="), Some(b"BinaryValue".to_vec()));
        assert_eq!(decode_base64("QQ"), Some(b"A".to_vec()));
        assert_eq!(decode_base64("Q"), None);
        assert_eq!(decode_base64("a b"), None);
    }
}
