//! Who the client is when Siaran runs behind proxies: `SIARAN_TRUSTED_PROXIES`.
//!
//! The client address is the TCP peer's, unless the peer is one of the listed proxies. Then
//! `X-Forwarded-For` is read from the right (each proxy appends the address it received the
//! request from), skipping the hops that are themselves trusted proxies; the first address that
//! is not one is the client. Everything to the left of it was written by the client and is
//! ignored, so a client cannot choose its own address by sending the header — unlike taking the
//! last or first entry blindly, which either trusts everyone or nobody.

use std::fmt;
use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Addresses and CIDR ranges of the proxies in front of this server.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ToString::to_string))
            .finish()
    }
}

impl TrustedProxies {
    /// Parses `10.0.0.0/8, 192.0.2.7, ::1` (an address alone is a range of one); empty trusts none.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .map(|net| net.trunc())
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("`{entry}` is neither an IP address nor a CIDR range (10.0.0.0/8)")
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// These proxies and the loopback interface (`127.0.0.0/8`, `::1`).
    #[must_use]
    pub fn with_loopback(mut self) -> Self {
        for net in ["127.0.0.0/8", "::1/128"] {
            if let Ok(net) = net.parse::<IpNet>()
                && !self.0.contains(&net)
            {
                self.0.push(net);
            }
        }
        self
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    #[must_use]
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request that arrived from `peer` with these headers.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|hop| !hop.is_empty())
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            // A hop that is not an address was written by whoever sent it to the last trusted
            // proxy: that proxy's address is the best one known.
            let Ok(ip) = parse_hop(hop) else {
                return client;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`, `[2001:db8::1]:80`).
fn parse_hop(hop: &str) -> Result<IpAddr, std::net::AddrParseError> {
    hop.parse::<IpAddr>().or_else(|e| {
        hop.parse::<std::net::SocketAddr>()
            .map(|addr| addr.ip())
            .map_err(|_| e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
        }
        headers
    }

    #[test]
    fn parses_addresses_and_ranges_and_refuses_anything_else() {
        let proxies = TrustedProxies::parse(" 10.0.0.0/8, 192.0.2.7 ,::1,2001:db8::/32 ,").unwrap();
        assert!(proxies.trusts(ip("10.20.30.40")));
        assert!(proxies.trusts(ip("192.0.2.7")));
        assert!(!proxies.trusts(ip("192.0.2.8")));
        assert!(proxies.trusts(ip("::1")));
        assert!(proxies.trusts(ip("2001:db8:1::5")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = TrustedProxies::parse("10.0.0.1").unwrap();
        let headers = forwarded(&["198.51.100.9"]);
        assert_eq!(
            proxies.client_ip(ip("203.0.113.5"), &headers),
            ip("203.0.113.5")
        );
        assert_eq!(
            TrustedProxies::default().client_ip(ip("127.0.0.1"), &headers),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client claimed 1.2.3.4; the edge proxy 10.0.0.2 saw 198.51.100.9.
        let headers = forwarded(&["1.2.3.4, 198.51.100.9", "10.0.0.2"]);
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), &headers),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn only_trusted_hops_means_the_leftmost_one() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let headers = forwarded(&["10.0.0.9, 10.0.0.2"]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.9"));
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let headers = forwarded(&["198.51.100.9, not-an-address, 10.0.0.2"]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.2"));
    }

    #[test]
    fn ports_and_mapped_addresses_are_understood() {
        let proxies = TrustedProxies::default().with_loopback();
        let headers = forwarded(&["[2001:db8::7]:4711"]);
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), &headers),
            ip("2001:db8::7")
        );
        let headers = forwarded(&["192.0.2.1:80"]);
        assert_eq!(proxies.client_ip(ip("::1"), &headers), ip("192.0.2.1"));
    }
}
