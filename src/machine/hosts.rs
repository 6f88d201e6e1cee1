//! The one host rule: where a script request may go, applied alike by the compiler (`check`, to
//! the URLs a machine writes), `simulate --live` and the node (`serve`: the URL, every address DNS
//! gives, every redirect hop). Pure: no DNS here; the node passes in what its resolver found.
//!
//! The rule, for a request to `HOST:PORT` at address `A`:
//! 1. When the machine's `allow_hosts` or the node's `--script-allow` lists anything, `HOST:PORT`
//!    must be listed in one of them (an entry without a port lists every port).
//! 2. A public `A` needs nothing more. Cloud metadata, link-local, unspecified, multicast and
//!    broadcast addresses are never called. An IPv6 address that carries a request to an IPv4
//!    host (mapped, NAT64, RFC 8215, SIIT, IPv4-compatible, 6to4, Teredo) is ranged as that host.
//! 3. Any other `A` (loopback, private, carrier-grade NAT, documentation, reserved) is called
//!    only when an entry names `HOST` with exactly `PORT`: an entry of either list when `HOST` is
//!    that address itself (`127.0.0.1:8090`) or `localhost`; an entry of `--script-allow` when a
//!    DNS name resolves to it (the operator vouches for the node's DNS, a machine file cannot).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most `allow_hosts` entries in one machine: a machine calls a handful of APIs.
pub const ALLOW_HOSTS_MAX: usize = 64;

/// One `allow_hosts` (or `--script-allow`) entry: a host name or IP address, and a port or any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lowercase name, or the IP address as text (IPv6 without brackets).
    host: String,
    /// `None`: any port.
    port: Option<u16>,
}

impl AllowedHost {
    /// Parses `HOST` or `HOST:PORT` (`[::1]:8090` for IPv6); no scheme, path or credentials.
    pub fn parse(entry: &str) -> Result<AllowedHost, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("an empty host".into());
        }
        if entry.contains("://") || entry.contains(['/', '@', '?', '#']) {
            return Err(format!("`{entry}` is not a host: write `HOST` or `HOST:PORT`, no scheme or path"));
        }
        let url = url::Url::parse(&format!("http://{entry}/"))
            .map_err(|e| format!("`{entry}` is not a host: {e}"))?;
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(format!("`{entry}` is not a host")),
        };
        // `url` drops the scheme's default port: `host:80` is written with its port, so keep it.
        let port = match url.port() {
            Some(p) => Some(p),
            None if entry.ends_with(":80") => Some(80),
            None => None,
        };
        Ok(AllowedHost { host, port })
    }

    /// Whether this entry allows `host` (as `host_text` gives it) on `port`.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }

    /// Whether this entry names `host`, on whatever port.
    pub fn names(&self, host: &str) -> bool {
        self.host == host
    }

    /// The host as entries compare it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port it lists, when it lists one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The address, when the entry is an IP address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip(), self.port) {
            (Some(IpAddr::V6(ip)), Some(p)) => write!(f, "[{ip}]:{p}"),
            (_, Some(p)) => write!(f, "{}:{p}", self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

/// A URL's host as `AllowedHost` compares it: lowercase name, or the IP address (IPv6 without
/// brackets).
pub fn host_text(host: &url::Host<&str>) -> String {
    match host {
        url::Host::Domain(d) => d.to_ascii_lowercase(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    }
}

/// An address range scripts do not reach unless the host is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Cloud instance metadata (credentials): never reached, listed or not.
    Metadata,
    Loopback,
    /// RFC 1918, IPv6 unique local (and the old site-local).
    Private,
    LinkLocal,
    /// RFC 6598 carrier-grade NAT.
    SharedCgnat,
    Unspecified,
    Multicast,
    Broadcast,
    Documentation,
    /// Benchmarking, IETF protocol assignments, "this network", future use.
    Reserved,
}

impl Range {
    /// Whether a host listed exactly may be called at an address of this range: never cloud
    /// metadata and its link-local neighbours, nor addresses no API listens on.
    pub fn may_be_listed(self) -> bool {
        !matches!(
            self,
            Range::Metadata | Range::LinkLocal | Range::Unspecified | Range::Multicast | Range::Broadcast
        )
    }
}

/// The two lists a request is checked against: the machine's `allow_hosts` and the node's
/// `--script-allow` (empty for `check` without the flag).
#[derive(Debug, Clone, Copy)]
pub struct Lists<'a> {
    pub machine: &'a [AllowedHost],
    pub node: &'a [AllowedHost],
}

/// Why the host rule refuses a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Rule 1: the lists name other hosts (or this host on other ports).
    NotListed,
    /// Rule 2: an address scripts never call.
    Never(Range),
    /// Rule 3: a non-public address no entry names exactly; `by_dns`: reached through a DNS name,
    /// which only `--script-allow` can vouch for.
    Unlisted { range: Range, addr: IpAddr, by_dns: bool },
    /// Rule 3, before DNS: `--script-allow` vouches for this name's private addresses on other
    /// ports only.
    OtherPorts,
}

impl Lists<'_> {
    /// Rule 1 and, when the host is an address (or `localhost`), rules 2 and 3: for a URL's `host`
    /// (as `host_text` gives it) and `port`, before any DNS.
    pub fn check_url(&self, host: &str, port: u16) -> Result<(), Refusal> {
        if let Some(range) = host.parse().ok().and_then(refused_range).filter(|r| !r.may_be_listed()) {
            return Err(Refusal::Never(range));
        }
        let listed = |l: &[AllowedHost]| l.iter().any(|h| h.allows(host, port));
        let lists = !self.machine.is_empty() || !self.node.is_empty();
        if lists && !listed(self.machine) && !listed(self.node) {
            return Err(Refusal::NotListed);
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => self.check_address(host, Some(port), ip),
            Err(_) if is_loopback_name(host) => {
                self.check_address(host, Some(port), IpAddr::from([127, 0, 0, 1]))
            }
            // A name is checked again at each address DNS gives (`check_resolved`), which knows no
            // port: a name whose private addresses the node vouches for is called on those ports.
            Err(_) => match self.node.iter().any(|h| h.names(host) && h.port.is_some()) {
                true if !self.node.iter().any(|h| h.names(host) && h.port == Some(port)) => {
                    Err(Refusal::OtherPorts)
                }
                _ => Ok(()),
            },
        }
    }

    /// Rules 2 and 3 for an address DNS gave for `host` (whose port `check_url` checked).
    pub fn check_resolved(&self, host: &str, addr: IpAddr) -> Result<(), Refusal> {
        self.check_address(host, None, addr)
    }

    fn check_address(&self, host: &str, port: Option<u16>, addr: IpAddr) -> Result<(), Refusal> {
        let Some(range) = refused_range(addr) else { return Ok(()) };
        if !range.may_be_listed() {
            return Err(Refusal::Never(range));
        }
        let exact = |l: &[AllowedHost]| {
            l.iter().any(|h| h.names(host) && h.port.is_some() && port.is_none_or(|p| h.port == Some(p)))
        };
        // The address is the host's own: the URL names it, or names `localhost`.
        let own = host.parse::<IpAddr>().is_ok_and(|ip| ip == addr)
            || (is_loopback_name(host) && range == Range::Loopback);
        if exact(self.node) || (own && exact(self.machine)) {
            Ok(())
        } else {
            Err(Refusal::Unlisted { range, addr, by_dns: !own })
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Range::Metadata => "a cloud metadata address",
            Range::Loopback => "a loopback address",
            Range::Private => "a private address",
            Range::LinkLocal => "a link-local address",
            Range::SharedCgnat => "a carrier-grade NAT address",
            Range::Unspecified => "the unspecified address",
            Range::Multicast => "a multicast address",
            Range::Broadcast => "the broadcast address",
            Range::Documentation => "a documentation address",
            Range::Reserved => "a reserved address",
        })
    }
}

/// Why an `allow_hosts` or `--script-allow` entry can never be used as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryProblem {
    /// An address the host rule never calls.
    Never(Range),
    /// A non-public address (or `localhost`) without a port: rule 3 calls it at a listed port only.
    NoPort(Range),
}

/// The problem of an entry, if it has one.
pub fn entry_problem(h: &AllowedHost) -> Option<EntryProblem> {
    let range =
        h.ip().and_then(refused_range).or_else(|| is_loopback_name(&h.host).then_some(Range::Loopback))?;
    if !range.may_be_listed() {
        Some(EntryProblem::Never(range))
    } else if h.port.is_none() {
        Some(EntryProblem::NoPort(range))
    } else {
        None
    }
}

impl EntryProblem {
    pub fn message(&self, h: &AllowedHost) -> String {
        match self {
            EntryProblem::Never(range) => format!("`{h}` is {range}: scripts never call it"),
            EntryProblem::NoPort(range) => {
                format!("`{h}` is {range}: it is called only at a port listed with it")
            }
        }
    }

    pub fn hint(&self, h: &AllowedHost) -> String {
        match self {
            EntryProblem::Never(Range::Metadata) => {
                "instance metadata holds the node's cloud credentials; call your API's own address".into()
            }
            EntryProblem::Never(_) => "no API listens there; call your API's own address".into(),
            EntryProblem::NoPort(_) => {
                let h = match h.ip() {
                    Some(IpAddr::V6(ip)) => format!("[{ip}]"),
                    _ => h.host.clone(),
                };
                format!("write `{h}:PORT` with the port your API listens on, e.g. `{h}:8090`")
            }
        }
    }
}

/// Cloud metadata services (AWS, GCP, Azure, OCI: 169.254.169.254; AWS ECS: 169.254.170.2;
/// Alibaba: 100.100.100.200) and Azure's WireServer (168.63.129.16, a public address that hands a
/// VM its configuration and certificates).
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
];
/// AWS's IPv6 metadata service, fd00:ec2::254.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// The range `ip` is in, if scripts must not reach it by default; `None` for a public address.
pub fn refused_range(ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(v4) => range_v4(v4),
        IpAddr::V6(v6) => range_v6(v6),
    }
}

fn range_v4(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, c, _] = ip.octets();
    let range = if METADATA_V4.contains(&ip) {
        Range::Metadata
    } else if ip.is_loopback() {
        Range::Loopback
    } else if ip.is_private() {
        Range::Private
    } else if ip.is_link_local() {
        Range::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        Range::SharedCgnat
    } else if ip.is_unspecified() {
        Range::Unspecified
    } else if ip.is_multicast() {
        Range::Multicast
    } else if ip.is_broadcast() {
        Range::Broadcast
    } else if ip.is_documentation() {
        Range::Documentation
    } else if a == 0 || a >= 240 || (a == 192 && b == 0 && c == 0) || (a == 198 && (18..20).contains(&b)) {
        Range::Reserved
    } else {
        return None;
    };
    Some(range)
}

/// The IPv4 address in two 16-bit segments.
fn v4_of(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// The IPv4 addresses an IPv6 address carries to an IPv4 host through a translator or a tunnel
/// (the host a request to it may end up at), with whether the form itself is one no public API
/// uses (so that it is refused even when the IPv4 address inside is public).
fn embedded_v4(ip: Ipv6Addr) -> Option<(Vec<Ipv4Addr>, bool)> {
    let s = ip.segments();
    match s {
        // IPv4-mapped (::ffff:a.b.c.d): the IPv4 host itself.
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some((vec![v4_of(hi, lo)], false)),
        // NAT64's well-known prefix (RFC 6052, 64:ff9b::/96).
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some((vec![v4_of(hi, lo)], false)),
        // SIIT's IPv4-translated (RFC 2765, ::ffff:0:a.b.c.d) and the deprecated IPv4-compatible
        // (::a.b.c.d, but not :: and ::1, ranged below).
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some((vec![v4_of(hi, lo)], true)),
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some((vec![v4_of(hi, lo)], true)),
        // RFC 8215's local-use NAT64 prefix 64:ff9b:1::/48: the operator picks where in it the
        // IPv4 address sits (RFC 6052's /48, /56, /64 or /96 layouts), so every layout counts.
        [0x64, 0xff9b, 1, ..] => {
            // Each layout: the octets of the IPv4 address, and where the zero suffix starts (bits
            // 64 to 71, octet 8, are zero in every layout).
            const LAYOUTS: [([usize; 4], usize); 4] =
                [([6, 7, 9, 10], 11), ([7, 9, 10, 11], 12), ([9, 10, 11, 12], 13), ([12, 13, 14, 15], 16)];
            let b = ip.octets();
            let hosts = LAYOUTS
                .iter()
                .filter(|(_, suffix)| b[8] == 0 && b[*suffix..].iter().all(|&o| o == 0))
                .map(|(o, _)| Ipv4Addr::new(b[o[0]], b[o[1]], b[o[2]], b[o[3]]))
                .collect();
            Some((hosts, true))
        }
        // 6to4 (RFC 3056, 2002:a.b.c.d::/48, deprecated by RFC 7526).
        [0x2002, hi, lo, ..] => Some((vec![v4_of(hi, lo)], true)),
        // Teredo (RFC 4380, 2001:0::/32): the server's address, and the client's, inverted.
        [0x2001, 0, server_hi, server_lo, _, _, client_hi, client_lo] => {
            Some((vec![v4_of(server_hi, server_lo), v4_of(!client_hi, !client_lo)], true))
        }
        _ => None,
    }
}

fn range_v6(ip: Ipv6Addr) -> Option<Range> {
    let s = ip.segments();
    // An address that reaches an IPv4 host is ranged as the worst host it may reach: metadata
    // first, then any other refused range; a translation or tunnel form no public API uses is
    // reserved even when the host inside is public.
    if let Some((hosts, odd)) = embedded_v4(ip) {
        let ranges: Vec<Range> = hosts.into_iter().filter_map(range_v4).collect();
        let worst = ranges.iter().find(|r| !r.may_be_listed()).or_else(|| ranges.first()).copied();
        return worst.or(odd.then_some(Range::Reserved));
    }
    let range = if ip == METADATA_V6 {
        Range::Metadata
    } else if ip.is_loopback() {
        Range::Loopback
    } else if ip.is_unspecified() {
        Range::Unspecified
    } else if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
        Range::Private
    } else if s[0] & 0xffc0 == 0xfe80 {
        Range::LinkLocal
    } else if ip.is_multicast() {
        Range::Multicast
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Range::Documentation
    } else {
        return None;
    };
    Some(range)
}

/// Whether a host name means this machine whatever DNS says (`localhost`, `*.localhost`).
pub fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host == "localhost" || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(ip: &str) -> Option<Range> {
        refused_range(ip.parse().unwrap())
    }

    #[test]
    fn ranges_scripts_do_not_reach() {
        assert_eq!(range("169.254.169.254"), Some(Range::Metadata));
        assert_eq!(range("fd00:ec2::254"), Some(Range::Metadata));
        assert_eq!(range("::ffff:169.254.169.254"), Some(Range::Metadata));
        assert_eq!(range("127.0.0.1"), Some(Range::Loopback));
        assert_eq!(range("::1"), Some(Range::Loopback));
        assert_eq!(range("10.1.2.3"), Some(Range::Private));
        assert_eq!(range("172.16.0.1"), Some(Range::Private));
        assert_eq!(range("192.168.1.1"), Some(Range::Private));
        assert_eq!(range("fd12::1"), Some(Range::Private));
        assert_eq!(range("169.254.1.1"), Some(Range::LinkLocal));
        assert_eq!(range("fe80::1"), Some(Range::LinkLocal));
        assert_eq!(range("100.64.0.1"), Some(Range::SharedCgnat));
        assert_eq!(range("0.0.0.0"), Some(Range::Unspecified));
        assert_eq!(range("::"), Some(Range::Unspecified));
        assert_eq!(range("224.0.0.1"), Some(Range::Multicast));
        assert_eq!(range("203.0.113.9"), Some(Range::Documentation));
        assert_eq!(range("2001:db8::1"), Some(Range::Documentation));
        assert_eq!(range("64:ff9b::7f00:1"), Some(Range::Loopback));
        assert_eq!(range("168.63.129.16"), Some(Range::Metadata), "Azure's WireServer");
        assert_eq!(range("93.184.216.34"), None);
        assert_eq!(range("2606:4700::1111"), None);
        assert_eq!(range("172.32.0.1"), None);
    }

    /// Every IPv6 form that carries a request to an IPv4 host ranges as that host (metadata and
    /// WireServer never called); the translation and tunnel forms no public API uses are reserved
    /// even around a public address.
    #[test]
    fn ipv6_forms_of_ipv4_hosts() {
        let metadata = [
            // IPv4-mapped, NAT64 (64:ff9b::/96), SIIT IPv4-translated, IPv4-compatible.
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::ffff:0:169.254.169.254",
            "::ffff:0:a9fe:a9fe",
            "::169.254.169.254",
            "::ffff:168.63.129.16",
            "64:ff9b::168.63.129.16",
            "::ffff:0:168.63.129.16",
            "::168.63.129.16",
            // RFC 8215's local-use prefix, each RFC 6052 layout (/48, /56, /64, /96).
            "64:ff9b:1:a9fe:a9:fe00::",
            "64:ff9b:1:a9:fe:a9fe::",
            "64:ff9b:1:0:a9:fea9:fe00:0",
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1::a83f:8110",
            "64:ff9b:1:a83f:81:1000::",
            // 6to4 and Teredo (the client's address is stored inverted).
            "2002:a9fe:a9fe::1",
            "2002:a83f:8110::",
            "2001:0:a9fe:a9fe::",
            "2001:0:4136:e378:8000:63bf:5601:5601",
            "2001:0:4136:e378:8000:63bf:57c0:7eef",
            // AWS's own IPv6 form.
            "fd00:ec2::254",
        ];
        for ip in metadata {
            assert_eq!(range(ip), Some(Range::Metadata), "{ip}");
            let (m, n) = lists(&[&format!("[{ip}]:80")], &[&format!("[{ip}]:80")]);
            let listed = Lists { machine: &m, node: &n };
            assert_eq!(
                listed.check_url(&ip.parse::<Ipv6Addr>().unwrap().to_string(), 80),
                Err(Refusal::Never(Range::Metadata)),
                "{ip}"
            );
        }
        let loopback =
            ["::ffff:0:127.0.0.1", "::127.0.0.1", "64:ff9b:1::7f00:1", "2002:7f00:1::", "::ffff:127.0.0.1"];
        for ip in loopback {
            assert_eq!(range(ip), Some(Range::Loopback), "{ip}");
        }
        assert_eq!(range("::ffff:0:10.0.0.1"), Some(Range::Private));
        assert_eq!(range("2002:c0a8:101::"), Some(Range::Private));
        assert_eq!(range("::0.0.255.255"), Some(Range::Reserved));
        // Around a public address: the well-known NAT64 prefix is how an IPv6-only node reaches
        // public APIs; the other forms are refused (listed exactly, they may be called).
        assert_eq!(range("64:ff9b::5db8:d822"), None);
        for ip in [
            "::ffff:0:93.184.216.34",
            "::93.184.216.34",
            "64:ff9b:1::5db8:d822",
            "2002:5db8:d822::1",
            "2001:0:4136:e378:8000:63bf:a247:27dd",
        ] {
            assert_eq!(range(ip), Some(Range::Reserved), "{ip}");
        }
    }

    #[test]
    fn entries_with_and_without_ports() {
        let any = AllowedHost::parse("API.example.com").unwrap();
        assert!(any.allows("api.example.com", 443) && any.allows("api.example.com", 8443));
        let one = AllowedHost::parse("127.0.0.1:8090").unwrap();
        assert!(one.allows("127.0.0.1", 8090) && !one.allows("127.0.0.1", 8091));
        assert!(AllowedHost::parse("example.com:80").unwrap().allows("example.com", 80));
        assert!(!AllowedHost::parse("example.com:80").unwrap().allows("example.com", 81));
        let v6 = AllowedHost::parse("[::1]:8090").unwrap();
        assert!(v6.allows("::1", 8090));
        assert_eq!(v6.to_string(), "[::1]:8090");
        for bad in ["", "http://x.com", "x.com/path", "user@x.com", "x.com:99999", "[::1"] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }

    fn lists(machine: &[&str], node: &[&str]) -> (Vec<AllowedHost>, Vec<AllowedHost>) {
        let parse = |l: &[&str]| l.iter().map(|h| AllowedHost::parse(h).unwrap()).collect::<Vec<_>>();
        (parse(machine), parse(node))
    }

    #[test]
    fn the_host_rule() {
        let (m, n) = lists(&[], &[]);
        let open = Lists { machine: &m, node: &n };
        assert_eq!(open.check_url("api.example.com", 443), Ok(()));
        assert_eq!(open.check_url("93.184.216.34", 80), Ok(()));
        let loopback =
            Refusal::Unlisted { range: Range::Loopback, addr: [127, 0, 0, 1].into(), by_dns: false };
        assert_eq!(open.check_url("127.0.0.1", 8090), Err(loopback.clone()));
        assert_eq!(open.check_url("localhost", 8090), Err(loopback.clone()));
        assert_eq!(open.check_url("169.254.169.254", 80), Err(Refusal::Never(Range::Metadata)));
        assert_eq!(open.check_url("169.254.1.1", 80), Err(Refusal::Never(Range::LinkLocal)));

        // The machine lists a loopback address or `localhost` with its port: that port only.
        let (m, n) = lists(&["127.0.0.1:8090", "localhost:8091", "10.0.0.7", "api.example.com:443"], &[]);
        let listed = Lists { machine: &m, node: &n };
        assert_eq!(listed.check_url("127.0.0.1", 8090), Ok(()));
        assert_eq!(listed.check_url("localhost", 8091), Ok(()));
        assert_eq!(listed.check_resolved("localhost", "::1".parse().unwrap()), Ok(()));
        assert_eq!(listed.check_url("127.0.0.1", 8091), Err(Refusal::NotListed));
        // Listed without a port, a private address is still refused: a redirect could pick any.
        assert!(matches!(listed.check_url("10.0.0.7", 80), Err(Refusal::Unlisted { by_dns: false, .. })));
        // A name the machine lists resolves to public addresses only.
        let private = "10.1.2.3".parse().unwrap();
        assert!(matches!(
            listed.check_resolved("api.example.com", private),
            Err(Refusal::Unlisted { by_dns: true, .. })
        ));
        assert_eq!(listed.check_resolved("api.example.com", "93.184.216.34".parse().unwrap()), Ok(()));

        // The node vouches for a name's private addresses, on the port it lists.
        let (m, n) = lists(&[], &["internal.corp:8443", "127.0.0.1:9000"]);
        let node = Lists { machine: &m, node: &n };
        assert_eq!(node.check_url("internal.corp", 8443), Ok(()));
        assert_eq!(node.check_resolved("internal.corp", private), Ok(()));
        assert_eq!(node.check_url("127.0.0.1", 9000), Ok(()));
        assert_eq!(node.check_url("internal.corp", 443), Err(Refusal::NotListed));
        let (m, n) = lists(&["internal.corp"], &["internal.corp:8443"]);
        let both = Lists { machine: &m, node: &n };
        assert_eq!(both.check_url("internal.corp", 443), Err(Refusal::OtherPorts));
        // Never the metadata service, whoever lists it.
        let (m, n) = lists(&["169.254.169.254:80"], &["169.254.169.254:80"]);
        let never = Lists { machine: &m, node: &n };
        assert_eq!(never.check_url("169.254.169.254", 80), Err(Refusal::Never(Range::Metadata)));
    }
}
