//! The caller's address for `sourceIPAddress` and `aws:SourceIp`. Behind a load balancer
//! or ingress the TCP peer is the proxy, so the gateway reads `X-Forwarded-For` — but only
//! from configured trusted proxies: anyone else could write any address there. The chain
//! is read from the right, skipping trusted proxies; the first untrusted address is the
//! client.

use std::net::IpAddr;

/// An address block such as `10.0.0.0/8` or `fd00::/8` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: u128,
    prefix: u32,
    v6: bool,
}

fn bits(ip: IpAddr) -> (u128, u32, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32, false),
        IpAddr::V6(v6) => (u128::from(v6), 128, true),
    }
}

fn mask(value: u128, prefix: u32, width: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        value >> (width - prefix) << (width - prefix)
    }
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u32>().ok()?)),
            None => (text.trim(), None),
        };
        let (value, width, v6) = bits(addr.parse().ok()?);
        let prefix = prefix.unwrap_or(width);
        (prefix <= width).then(|| Self { network: mask(value, prefix, width), prefix, v6 })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (value, width, v6) = bits(ip);
        v6 == self.v6 && mask(value, self.prefix, width) == self.network
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// rightmost address of `X-Forwarded-For` that is not itself a trusted proxy (a malformed
/// entry ends the walk at the last trusted hop).
pub(crate) fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or_default().rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.1.2.3")) && !net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::ffff:10.1.2.3")), "families never match");
        assert!(Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.7")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.9")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        for bad in ["", "10.0.0.0/33", "nonsense", "10.0.0.0/x"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let xff = Some("198.51.100.7, 10.0.0.5");
        assert_eq!(client_ip(ip("10.0.0.9"), xff, &trusted), ip("198.51.100.7"));
        assert_eq!(
            client_ip(ip("203.0.113.1"), xff, &trusted),
            ip("203.0.113.1"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_ip(ip("10.0.0.9"), Some("1.2.3.4, 198.51.100.7"), &trusted),
            ip("198.51.100.7"),
            "a spoofed left part is never reached"
        );
        assert_eq!(client_ip(ip("10.0.0.9"), None, &trusted), ip("10.0.0.9"));
        assert_eq!(client_ip(ip("10.0.0.9"), Some("garbage"), &trusted), ip("10.0.0.9"));
        assert_eq!(client_ip(ip("10.0.0.9"), xff, &[]), ip("10.0.0.9"), "nothing trusted");
    }
}
