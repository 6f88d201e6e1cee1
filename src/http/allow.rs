//! Which sources may post webhooks: an allow-list of networks (`--allow-from`, with `8x8` naming
//! 8x8's published webhook addresses), and the proxies whose `Forwarded` / `X-Forwarded-For` is
//! believed (`--trusted-proxy`).

use std::net::IpAddr;

use ipnet::IpNet;
use warp::http::HeaderMap;

/// The name `--allow-from` expands to 8x8's webhook source addresses.
pub const EIGHT_BY_EIGHT: &str = "8x8";
/// The addresses 8x8 Voice delivers webhooks from (Asia Pacific, Singapore), as published on
/// "Voice IP addresses" (8x8 Connect docs, /connect/docs/voice/voice-ip-addresses), "updated on
/// January 1st, 2026". Check that page when 8x8 announces a change.
pub const EIGHT_BY_EIGHT_ADDRESSES: &[&str] =
    &["18.140.80.2/32", "52.220.253.234/32", "54.255.116.8/32", "52.74.232.241/32"];
/// Most addresses read from one request's forwarding headers: a real chain has a few hops.
pub const FORWARDED_HOPS_MAX: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllowError {
    #[error(
        "{flag} `{value}` is not a network: write an address (192.0.2.7), a CIDR (192.0.2.0/24) or `8x8`"
    )]
    Network { flag: &'static str, value: String },
}

/// Who may post webhooks, and whose word on the client's address is taken.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    /// Empty: every source.
    allow: Vec<IpNet>,
    trusted: Vec<IpNet>,
}

impl AllowList {
    /// `allow_from` (`--allow-from`: addresses, CIDRs, `8x8`) and `trusted_proxies`
    /// (`--trusted-proxy`: addresses, CIDRs).
    pub fn new(allow_from: &[String], trusted_proxies: &[String]) -> Result<AllowList, AllowError> {
        let mut allow = Vec::new();
        for value in allow_from.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
            if value.eq_ignore_ascii_case(EIGHT_BY_EIGHT) {
                allow.extend(EIGHT_BY_EIGHT_ADDRESSES.iter().filter_map(|a| a.parse::<IpNet>().ok()));
            } else {
                allow.push(network("--allow-from", value)?);
            }
        }
        let trusted = trusted_proxies
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| network("--trusted-proxy", v))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { allow, trusted })
    }

    /// True when every source may post webhooks.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty()
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy; then the right-most
    /// address of its forwarding headers that is not a trusted proxy (the one the first trusted
    /// proxy saw). `None` when a trusted proxy forwarded an address that cannot be read.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let chain = forwarded_for(headers);
        let mut client = Some(peer);
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => client = Some(*ip),
                other => return *other,
            }
        }
        client
    }

    /// Whether webhooks from `client` are accepted.
    pub fn permits(&self, client: Option<IpAddr>) -> bool {
        self.is_open() || client.is_some_and(|ip| self.allow.iter().any(|n| n.contains(&ip)))
    }

    /// Whether a connection from `peer` is served at all: every peer when the list is open, else
    /// an allowed one or a trusted proxy (whose requests are then judged one by one); others are
    /// refused at accept, before they hold a connection slot.
    pub(crate) fn admits_peer(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.is_open() || self.permits(Some(peer)) || self.trusts(peer)
    }

    /// Whether `peer` is a `--trusted-proxy` (it carries many clients' connections).
    pub(crate) fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusts(peer.to_canonical())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

fn network(flag: &'static str, value: &str) -> Result<IpNet, AllowError> {
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| AllowError::Network { flag, value: value.to_string() })
}

/// The addresses of `Forwarded` (RFC 7239, its `for=` parameters) if present, else of
/// `X-Forwarded-For`, left to right (at most `FORWARDED_HOPS_MAX`, the right-most kept); `None` for
/// an entry that is not an address (`unknown`, an obfuscated name, garbage).
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
    };
    let forwarded = values("forwarded");
    let hops: Vec<Option<IpAddr>> = if forwarded.is_empty() {
        values("x-forwarded-for").iter().flat_map(|v| v.split(',')).map(|h| address(h.trim())).collect()
    } else {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| address(v.trim()))
            })
            .collect()
    };
    let skip = hops.len().saturating_sub(FORWARDED_HOPS_MAX);
    hops.into_iter().skip(skip).collect()
}

/// `192.0.2.7`, `192.0.2.7:8080`, `2001:db8::1`, `[2001:db8::1]:4711`, quoted or not.
fn address(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let host = match node.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => node.rsplit_once(':')?.0,
    };
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(warp::http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_count_only_from_a_trusted_proxy() {
        let a = AllowList::new(&["8x8".into(), "198.51.100.0/24".into()], &["10.0.0.0/8".into()]).unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 18.140.80.2, 10.1.1.1")]);
        assert_eq!(a.client(ip("10.0.0.1"), &xff), Some(ip("18.140.80.2")));
        assert!(a.permits(a.client(ip("10.0.0.1"), &xff)));
        assert_eq!(a.client(ip("203.0.113.1"), &xff), Some(ip("203.0.113.1")), "not a proxy: its peer");
        let fwd = headers(&[("forwarded", r#"for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https"#)]);
        assert_eq!(a.client(ip("10.0.0.1"), &fwd), Some(ip("2001:db8:cafe::17")));
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(a.client(ip("10.0.0.1"), &unknown), None);
        assert!(!a.permits(None));
        assert_eq!(a.client(ip("10.0.0.1"), &HeaderMap::new()), Some(ip("10.0.0.1")));
        assert!(a.permits(Some(ip("198.51.100.77"))));
        assert!(!a.permits(Some(ip("127.0.0.1"))));
        assert!(AllowList::default().permits(None));
        assert_eq!(address("192.0.2.7:80"), Some(ip("192.0.2.7")));
        assert_eq!(a.client(ip("::ffff:203.0.113.5"), &xff), Some(ip("203.0.113.5")));
    }

    #[test]
    fn a_bad_network_names_the_flag_and_the_value() {
        let e = AllowList::new(&["10.0.0.0/33".into()], &[]).unwrap_err();
        assert_eq!(e.to_string().split(':').next().unwrap(), "--allow-from `10.0.0.0/33` is not a network");
        let e = AllowList::new(&[], &["proxy.local".into()]).unwrap_err();
        assert!(e.to_string().starts_with("--trusted-proxy `proxy.local`"), "{e}");
    }
}
