//! Which sources may post webhooks: an allow-list of networks (`--allow-from`, with `8x8` naming
//! 8x8's published webhook addresses), and the proxies whose forwarding header is believed
//! (`--trusted-proxy`): exactly the one `--forwarded-header` names, never the other.

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

/// The one forwarding header a trusted proxy's word is read from (`--forwarded-header`). Only
/// one: a proxy writes one of them and passes the other through from its client unchanged (nginx
/// appends to `X-Forwarded-For` but forwards a client's `Forwarded` as sent), so reading both would
/// let the client name itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=` parameters.
    Forwarded,
}

impl std::str::FromStr for ForwardedHeader {
    type Err = AllowError;

    fn from_str(s: &str) -> Result<ForwardedHeader, AllowError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            _ => Err(AllowError::Header(s.to_string())),
        }
    }
}

impl std::fmt::Display for ForwardedHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllowError {
    #[error(
        "--forwarded-header `{0}` is not a forwarding header: write `x-forwarded-for` (nginx's \
         $proxy_add_x_forwarded_for) or `forwarded` (RFC 7239), the one your proxy writes"
    )]
    Header(String),
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
    /// The header a trusted proxy names the client in.
    header: ForwardedHeader,
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
        Ok(AllowList { allow, trusted, header: ForwardedHeader::default() })
    }

    /// The same list, believing a trusted proxy only in `header` (`--forwarded-header`).
    pub fn reading(self, header: ForwardedHeader) -> AllowList {
        AllowList { header, ..self }
    }

    /// True when every source may post webhooks.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty()
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy; then the right-most
    /// address of its forwarding header (`--forwarded-header`) that is not a trusted proxy (the one the first trusted
    /// proxy saw). `None` when a trusted proxy forwarded an address that cannot be read.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let chain = forwarded_for(headers, self.header);
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
        self.is_open()
            || client.map(|ip| ip.to_canonical()).is_some_and(|ip| self.allow.iter().any(|n| n.contains(&ip)))
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
        let ip = ip.to_canonical();
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

/// A network as written, an IPv4-mapped IPv6 one (`::ffff:127.0.0.1`, `::ffff:10.0.0.0/104`) as
/// its IPv4 form: peers are compared in their canonical form, where such an address is IPv4.
fn network(flag: &'static str, value: &str) -> Result<IpNet, AllowError> {
    let net = value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| AllowError::Network { flag, value: value.to_string() })?;
    Ok(match net {
        IpNet::V6(v6) => match (v6.network().to_ipv4_mapped(), v6.prefix_len().checked_sub(96)) {
            (Some(v4), Some(prefix)) => {
                ipnet::Ipv4Net::new(v4, prefix).map(IpNet::V4).unwrap_or(IpNet::V6(v6))
            }
            _ => IpNet::V6(v6),
        },
        v4 => v4,
    })
}

/// The addresses of `header`: `Forwarded` (RFC 7239, its `for=` parameters) or
/// `X-Forwarded-For`, never the other, left to right (at most `FORWARDED_HOPS_MAX`, the right-most kept); `None` for
/// an entry that is not an address (`unknown`, an obfuscated name, garbage).
fn forwarded_for(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
    };
    let hops: Vec<Option<IpAddr>> = match header {
        ForwardedHeader::XForwardedFor => {
            values("x-forwarded-for").iter().flat_map(|v| v.split(',')).map(|h| address(h.trim())).collect()
        }
        ForwardedHeader::Forwarded => values("forwarded")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| address(v.trim()))
            })
            .collect(),
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
        let f = a.clone().reading(ForwardedHeader::Forwarded);
        assert_eq!(f.client(ip("10.0.0.1"), &fwd), Some(ip("2001:db8:cafe::17")));
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(f.client(ip("10.0.0.1"), &unknown), None);
        assert!(!a.permits(None));
        assert_eq!(a.client(ip("10.0.0.1"), &HeaderMap::new()), Some(ip("10.0.0.1")));
        assert!(a.permits(Some(ip("198.51.100.77"))));
        assert!(!a.permits(Some(ip("127.0.0.1"))));
        assert!(AllowList::default().permits(None));
        assert_eq!(address("192.0.2.7:80"), Some(ip("192.0.2.7")));
        assert_eq!(a.client(ip("::ffff:203.0.113.5"), &xff), Some(ip("203.0.113.5")));
    }

    #[test]
    fn only_the_named_forwarding_header_is_read() {
        let a = AllowList::new(&["8x8".into()], &["127.0.0.1".into()]).unwrap();
        // nginx appends the real client to X-Forwarded-For and passes the client's Forwarded on.
        let spoofed =
            headers(&[("forwarded", "for=18.140.80.2"), ("x-forwarded-for", "18.140.80.2, 203.0.113.9")]);
        assert_eq!(
            a.client(ip("127.0.0.1"), &spoofed),
            Some(ip("203.0.113.9")),
            "the default reads XFF only"
        );
        assert!(!a.permits(a.client(ip("127.0.0.1"), &spoofed)));
        let only_forwarded = headers(&[("forwarded", "for=18.140.80.2")]);
        assert_eq!(a.client(ip("127.0.0.1"), &only_forwarded), Some(ip("127.0.0.1")), "Forwarded is ignored");
        let f = a.reading(ForwardedHeader::Forwarded);
        let spoofed = headers(&[("forwarded", "for=203.0.113.9"), ("x-forwarded-for", "18.140.80.2")]);
        assert_eq!(f.client(ip("127.0.0.1"), &spoofed), Some(ip("203.0.113.9")), "XFF is ignored");
        assert_eq!("Forwarded".parse::<ForwardedHeader>(), Ok(ForwardedHeader::Forwarded));
        assert_eq!("x-forwarded-for".parse::<ForwardedHeader>(), Ok(ForwardedHeader::XForwardedFor));
        let e = "x-real-ip".parse::<ForwardedHeader>().unwrap_err();
        assert!(
            e.to_string().starts_with("--forwarded-header `x-real-ip` is not a forwarding header"),
            "{e}"
        );
    }

    #[test]
    fn ipv4_mapped_entries_and_peers_match_their_ipv4_form() {
        let a = AllowList::new(&["::ffff:127.0.0.1".into(), "::ffff:10.0.0.0/104".into()], &[]).unwrap();
        assert!(a.permits(Some(ip("127.0.0.1"))));
        assert!(a.permits(Some(ip("::ffff:127.0.0.1"))));
        assert!(a.permits(Some(ip("10.9.8.7"))));
        assert!(!a.permits(Some(ip("127.0.0.2"))));
        assert!(!a.permits(Some(ip("11.0.0.1"))));
        let b = AllowList::new(&["127.0.0.1".into()], &["::ffff:10.0.0.1".into()]).unwrap();
        assert!(b.permits(Some(ip("::ffff:127.0.0.1"))));
        let xff = headers(&[("x-forwarded-for", "127.0.0.1")]);
        assert_eq!(b.client(ip("10.0.0.1"), &xff), Some(ip("127.0.0.1")), "a mapped proxy entry is trusted");
        let v6 = AllowList::new(&["2001:db8::/32".into()], &[]).unwrap();
        assert!(v6.permits(Some(ip("2001:db8::1"))));
    }

    #[test]
    fn a_bad_network_names_the_flag_and_the_value() {
        let e = AllowList::new(&["10.0.0.0/33".into()], &[]).unwrap_err();
        assert_eq!(e.to_string().split(':').next().unwrap(), "--allow-from `10.0.0.0/33` is not a network");
        let e = AllowList::new(&[], &["proxy.local".into()]).unwrap_err();
        assert!(e.to_string().starts_with("--trusted-proxy `proxy.local`"), "{e}");
    }
}
