//! Who a request comes from: the client address that budgets per address are kept by.
//!
//! The address is the socket's peer, unless that peer is one of the operator's reverse proxies
//! (`--trusted-proxy`): then the header those proxies write (`--forwarded-header`:
//! `X-Forwarded-For`, or `Forwarded` of RFC 7239) says who the client is. Only that one header
//! is read: a proxy appends to its own header and passes every other one on as the client sent
//! it, so a hub that read `Forwarded` whenever present let a client behind nginx name any
//! address it liked in a `Forwarded` of its own. The list is walked from the right (the hop
//! nearest to the hub) past every trusted proxy, and the first address that is not one is the
//! client. Headers from a peer that is not trusted are ignored, so nobody can claim another
//! address by sending them. An entry that is not an address (`unknown`, an obfuscated name)
//! ends the walk at the proxy that wrote it.
//!
//! Budgets are kept per [`AddrKey`]: an IPv4 address, or an IPv6 /64 — one subscriber line
//! usually gets a whole /64, so counting single IPv6 addresses would let one client spread
//! over billions of keys. A /64 is not the most one holder gets, though: a home line is
//! usually delegated a /56 (256 /64s) and a business line or a hosted server a /48 (65,536
//! /64s). So every IPv6 budget is also kept for the enclosing /56 and /48 ([`AddrKey::nested`]),
//! each allowing [`WIDER`]'s multiple of the /64's allowance: a /48 gets 16 times what one /64
//! does in total however many /64s it spreads over, while /64s in different /48s never share
//! a budget. What a network may hold of a hub-wide cap (connections, long-polls, reply places)
//! grows with the multiple only up to the share of the cap one holder may take, a quarter (see
//! `hub::limits`), or four /64s of one home line would hold the whole hub. IPv4 addresses are
//! not grouped into /24s: many people share one IPv4 address behind NAT (carrier-grade NAT
//! puts whole neighbourhoods behind a few), and a /24 is often unrelated customers, so grouping
//! them would punish strangers for each other.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::config::ForwardedHeader;

/// Parses a `--trusted-proxy` value: a network (`10.0.0.0/8`, `fd00::/8`) or one address.
pub fn parse_trusted_proxy(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("{s:?} is neither an address nor a network; write it like 10.0.0.1, 10.0.0.0/8 or fd00::/8")
    })
}

/// The wider IPv6 prefixes every budget is also kept for, with the multiple of a /64's allowance
/// each gets: a /56 (a home line's usual delegation, several networks of one household) four
/// times, a /48 (a business site's or a hosting server's) sixteen times, about what a small
/// office of several networks needs, and the most a holder of 65,536 /64s can take. For a count
/// that is a share of a hub-wide cap the multiple is capped at that share.
pub(crate) const WIDER: [(u8, u32); 2] = [(56, 4), (48, 16)];

/// The key budgets per address are kept by: an IPv4 address, or an IPv6 network — the /64 of
/// the client's address ([`AddrKey::of`]), or one of the wider prefixes enclosing it
/// ([`AddrKey::nested`]) — as 16 bytes (IPv4 mapped into IPv6) and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct AddrKey {
    octets: [u8; 16],
    /// 32 for an IPv4 address, the prefix length for an IPv6 network.
    prefix: u8,
}

impl AddrKey {
    /// The key of `ip`: itself (IPv4) or its /64.
    pub(crate) fn of(ip: IpAddr) -> AddrKey {
        match ip {
            IpAddr::V4(v4) => AddrKey { octets: v4.to_ipv6_mapped().octets(), prefix: 32 },
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey { octets: v4.to_ipv6_mapped().octets(), prefix: 32 },
                None => AddrKey { octets: v6.octets(), prefix: 64 }.truncated(64),
            },
        }
    }

    /// This IPv6 network cut to its first `prefix` bits (a multiple of 8).
    fn truncated(mut self, prefix: u8) -> AddrKey {
        self.octets[usize::from(prefix / 8)..].fill(0);
        self.prefix = prefix;
        self
    }

    /// Whether this is an IPv6 network wider than a /64 (a refusal then names it).
    pub(crate) fn is_wide(&self) -> bool {
        self.prefix < 64 && self.prefix != 32
    }

    /// The keys a budget of this key's is kept under, narrowest first, each with the multiple of
    /// the budget it allows: the key itself (×1), then for an IPv6 /64 its /56 and /48 (see
    /// [`WIDER`]). No allocation: at most three keys, made on the stack.
    pub(crate) fn nested(self) -> impl Iterator<Item = (AddrKey, u32)> {
        let v6 = self.prefix == 64;
        std::iter::once((self, 1)).chain(
            WIDER.into_iter().filter(move |_| v6).map(move |(prefix, times)| (self.truncated(prefix), times)),
        )
    }
}

impl std::fmt::Display for AddrKey {
    /// The address (IPv4) or the network (`2001:db8::/64`, `2001:db8::/48`), for logs and
    /// refusals.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v6 = Ipv6Addr::from(self.octets);
        match v6.to_ipv4_mapped() {
            Some(v4) if self.prefix == 32 => write!(f, "{v4}"),
            _ => write!(f, "{v6}/{}", self.prefix),
        }
    }
}

/// Who a refusal of `key`'s budget speaks to: "your address", or "your network
/// (2001:db8::/48)" when the budget that ran out is a wider IPv6 prefix's.
pub(crate) fn whose(key: AddrKey) -> String {
    if key.is_wide() {
        format!("your network ({key})")
    } else {
        "your address".to_owned()
    }
}

/// The socket's peer, put into every request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// The client's address as the hub judges it (see the module docs), in a request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr {
    /// The client's address.
    pub(crate) ip: IpAddr,
    /// Whether it came from a trusted proxy's header rather than the socket.
    pub(crate) forwarded: bool,
}

impl ClientAddr {
    /// Its budget key.
    pub(crate) fn key(&self) -> AddrKey {
        AddrKey::of(self.ip)
    }
}

/// Whether `ip` is one of the operator's proxies.
pub(crate) fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address of a request from `peer` carrying `headers` (see the module docs).
pub(crate) fn client_addr(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ForwardedHeader,
) -> ClientAddr {
    let peer = canonical(peer);
    if !is_trusted(trusted, peer) {
        return ClientAddr { ip: peer, forwarded: false };
    }
    let hops = match header {
        ForwardedHeader::Forwarded => forwarded_hops(headers),
        ForwardedHeader::XForwardedFor => x_forwarded_for_hops(headers),
    };
    // From the nearest hop outwards: past every trusted proxy to the first address that is not.
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) => {
                client = canonical(ip);
                if !is_trusted(trusted, client) {
                    return ClientAddr { ip: client, forwarded: true };
                }
            }
            // Not an address: the proxy that wrote it is as far as we can see.
            None => break,
        }
    }
    ClientAddr { ip: client, forwarded: client != peer }
}

static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The `for=` of every element of every `Forwarded` header, in order; `None` for one that is
/// not an address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(&FORWARDED) {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in value.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then(|| value.trim())
            });
            if let Some(node) = node {
                hops.push(parse_node(node.trim_matches('"')));
            }
        }
    }
    hops
}

/// Every address of every `X-Forwarded-For` header, in order.
fn x_forwarded_for_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        match value.to_str() {
            Ok(v) => hops.extend(v.split(',').map(|a| parse_node(a.trim()))),
            Err(_) => hops.push(None),
        }
    }
    hops
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` or a bare IPv6 address.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = node.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = node.strip_prefix('[')?;
    inner.split_once(']')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        h
    }

    fn proxies() -> Vec<IpNet> {
        ["10.0.0.0/8", "fd00::/8", "127.0.0.1"].iter().map(|p| parse_trusted_proxy(p).expect("net")).collect()
    }

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;
    const RFC: ForwardedHeader = ForwardedHeader::Forwarded;

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        for header in [XFF, RFC] {
            let c = client_addr(ip("203.0.113.9"), &h, &proxies(), header);
            assert_eq!(c, ClientAddr { ip: ip("203.0.113.9"), forwarded: false });
            assert_eq!(client_addr(ip("203.0.113.9"), &h, &[], header).ip, ip("203.0.113.9"), "none trusted");
        }
    }

    #[test]
    fn only_the_header_the_proxies_write_is_read() {
        // nginx appends to X-Forwarded-For and passes the client's own `Forwarded` on as sent.
        let h = headers(&[("forwarded", "for=6.6.6.6"), ("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &proxies(), XFF).ip, ip("198.51.100.7"));
        // A proxy that writes `Forwarded` passes the client's own X-Forwarded-For on.
        let h = headers(&[("forwarded", "for=198.51.100.7"), ("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &proxies(), RFC).ip, ip("198.51.100.7"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let h = headers(&[("x-forwarded-for", "198.51.100.7, 10.1.2.3")]);
        let c = client_addr(ip("10.0.0.1"), &h, &proxies(), XFF);
        assert_eq!(c, ClientAddr { ip: ip("198.51.100.7"), forwarded: true });
        // A client that sends its own X-Forwarded-For cannot hide behind it: the walk stops
        // at the first address the proxies did not vouch for.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &proxies(), XFF).ip, ip("198.51.100.7"));
        // Several headers are one list.
        let h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.8")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &proxies(), XFF).ip, ip("198.51.100.8"));
    }

    #[test]
    fn forwarded_is_parsed_with_ports_and_brackets() {
        let h = headers(&[
            ("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https, for=10.9.9.9"#),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        let c = client_addr(ip("127.0.0.1"), &h, &proxies(), RFC);
        assert_eq!(c.ip, ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=192.0.2.60:8080;by=203.0.113.43")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &proxies(), RFC).ip, ip("192.0.2.60"));
        // An obfuscated identifier ends the walk at the proxy that wrote it.
        let h = headers(&[("forwarded", "for=_hidden, for=10.2.2.2")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &proxies(), RFC).ip, ip("10.2.2.2"));
        // No header at all: the proxy itself.
        assert_eq!(
            client_addr(ip("10.0.0.1"), &HeaderMap::new(), &proxies(), XFF),
            ClientAddr { ip: ip("10.0.0.1"), forwarded: false }
        );
    }

    #[test]
    fn keys_group_an_ipv6_slash_64_and_fold_mapped_ipv4() {
        assert_eq!(AddrKey::of(ip("2001:db8:1:2::1")), AddrKey::of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(AddrKey::of(ip("2001:db8:1:2::1")), AddrKey::of(ip("2001:db8:1:3::1")));
        assert_eq!(AddrKey::of(ip("::ffff:192.0.2.1")), AddrKey::of(ip("192.0.2.1")));
        assert_eq!(AddrKey::of(ip("192.0.2.1")).to_string(), "192.0.2.1");
        assert_eq!(AddrKey::of(ip("2001:db8::5")).to_string(), "2001:db8::/64");
        assert!(is_trusted(&proxies(), ip("::ffff:10.1.1.1")), "a mapped IPv4 proxy is trusted");
    }

    #[test]
    fn an_ipv6_key_nests_in_its_slash_56_and_slash_48_and_ipv4_in_nothing() {
        let keys = |s: &str| AddrKey::of(ip(s)).nested().map(|(k, n)| (k.to_string(), n)).collect::<Vec<_>>();
        assert_eq!(
            keys("2001:db8:aa:bbcc:1:2:3:4"),
            [
                ("2001:db8:aa:bbcc::/64".into(), 1),
                ("2001:db8:aa:bb00::/56".into(), 4),
                ("2001:db8:aa::/48".into(), 16)
            ]
        );
        assert_eq!(keys("192.0.2.1"), [("192.0.2.1".to_string(), 1)], "no /24 for IPv4");
        assert_eq!(keys("::ffff:192.0.2.1"), [("192.0.2.1".to_string(), 1)]);
        // Two /64s of one /48 share its key (and their /56's when they share that too) ...
        let (a, b) = (AddrKey::of(ip("2001:db8:1:1::1")), AddrKey::of(ip("2001:db8:1:ff01::1")));
        let (wa, wb): (Vec<_>, Vec<_>) = (a.nested().collect(), b.nested().collect());
        assert_ne!(wa[0], wb[0]);
        assert_ne!(wa[1], wb[1]);
        assert_eq!(wa[2], wb[2]);
        // ... while /64s in different /48s share nothing.
        let c = AddrKey::of(ip("2001:db8:2:1::1"));
        assert!(c.nested().all(|k| !wa.contains(&k)));
        // A /48 is not the /64 with the same first bits, and refusals name it.
        let zero = AddrKey::of(ip("2001:db8:1::"));
        assert_ne!(zero, wa[2].0);
        assert_eq!(whose(wa[2].0), "your network (2001:db8:1::/48)");
        assert_eq!(whose(a), "your address");
        assert!(!AddrKey::of(ip("192.0.2.1")).is_wide());
    }

    #[test]
    fn proxy_flags_parse_or_say_why_not() {
        assert_eq!(parse_trusted_proxy("10.1.2.3/8").map(|n| n.to_string()), Ok("10.0.0.0/8".into()));
        assert_eq!(parse_trusted_proxy("192.0.2.1").map(|n| n.to_string()), Ok("192.0.2.1/32".into()));
        let e = parse_trusted_proxy("proxy.local").unwrap_err();
        assert!(e.contains("proxy.local"), "{e}");
    }
}
