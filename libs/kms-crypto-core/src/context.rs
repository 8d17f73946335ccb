//! Canonical encryption context: the bytes bound as additional authenticated data, so
//! that the same context in any order authenticates and any other context does not.

use std::collections::BTreeMap;

/// Length-prefixed, sorted by key (a `BTreeMap` iterates in key order): `u32 count`, then
/// for each pair `u32 len, key, u32 len, value`, all big-endian. Unambiguous, so no two
/// different contexts encode alike.
pub fn canonical_context(context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + context.len() * 16);
    push_len(&mut out, context.len());
    for (key, value) in context {
        push_len(&mut out, key.len());
        out.extend_from_slice(key.as_bytes());
        push_len(&mut out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    // Lengths are bounded far below u32::MAX by request validation.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn order_does_not_matter_but_content_does() {
        let a = canonical_context(&ctx(&[("a", "1"), ("b", "2")]));
        let b = canonical_context(&ctx(&[("b", "2"), ("a", "1")]));
        assert_eq!(a, b);
        let distinct = [
            ctx(&[]),
            ctx(&[("a", "1")]),
            ctx(&[("a", "12")]),
            ctx(&[("a1", "2")]),
            ctx(&[("a", "1"), ("b", "2")]),
            ctx(&[("a", "1b"), ("", "2")]),
        ];
        for (i, x) in distinct.iter().enumerate() {
            for (j, y) in distinct.iter().enumerate() {
                if i != j {
                    assert_ne!(canonical_context(x), canonical_context(y), "{x:?} vs {y:?}");
                }
            }
        }
    }

    #[test]
    fn encoding_is_stable() {
        assert_eq!(canonical_context(&ctx(&[])), [0, 0, 0, 0]);
        assert_eq!(
            canonical_context(&ctx(&[("k", "v")])),
            [0, 0, 0, 1, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v']
        );
    }
}
