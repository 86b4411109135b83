//! Who is asking: the socket's peer, or, when the peer is one of `http.trusted_proxies` (an
//! ingress, a load balancer), the client the header they write (`http.forwarded_header`)
//! names. The limits per address and the request logs go by it, so that behind an ingress
//! one client's requests are not everyone's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, header};
use ipnet::IpNet;
use runboard_core::config::{ForwardedHeader, HttpConfig};

/// The client's address, in the request's extensions once [`name_client`] ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddress(pub(crate) IpAddr);

/// The proxies whose word on the client is taken, and the header they give it in.
pub(crate) struct TrustedProxies {
    ranges: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    pub(crate) fn new(http: &HttpConfig) -> Self {
        Self {
            ranges: http.trusted_proxies.clone(),
            header: http.forwarded_header,
        }
    }

    fn trust(&self, address: &IpAddr) -> bool {
        self.ranges.iter().any(|range| range.contains(address))
    }

    /// The client of a request from `peer`: the peer itself unless it is a trusted proxy;
    /// else, walking the header's hops from the nearest, the first that is not a trusted
    /// proxy (those further out could have been written by anyone).
    fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        if !self.trust(&peer) {
            return client;
        }
        for hop in forwarded_for(headers, self.header).into_iter().rev() {
            // A hop our own proxy could not name (`for=unknown`): the last one it did stands.
            let Some(address) = hop else { break };
            client = address;
            if !self.trust(&address) {
                break;
            }
        }
        client
    }
}

/// Puts the [`ClientAddress`] into the request's extensions; runs before anything that
/// logs or limits.
pub(crate) async fn name_client(
    State(proxies): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    // Without a socket (a router called directly) there is no peer to name.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| {
            info.0.ip().to_canonical()
        });
    let client = proxies.client_of(peer, request.headers());
    request.extensions_mut().insert(ClientAddress(client));
    next.run(request).await
}

/// The hops `header` names, the client first, over all its lines; `None` for a hop that
/// names no address.
fn forwarded_for(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => header::FORWARDED.as_str(),
    };
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| {
            // A line that is not text names no one: a hop of its own, so not skipped.
            let text = value.to_str().unwrap_or("\u{0}");
            text.split(',').map(move |element| match header {
                ForwardedHeader::XForwardedFor => address(element),
                ForwardedHeader::Forwarded => element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, node)| address(node)),
            })
        })
        .collect()
}

/// The address of a node as the headers write it: `192.0.2.60`, `192.0.2.60:4711`,
/// `"[2001:db8::17]:4711"` or a bare `2001:db8::17`.
fn address(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    let address = match node.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next()?.parse().ok(),
        None => node.parse().ok().or_else(|| {
            let (host, _port) = node.rsplit_once(':')?;
            host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
        }),
    };
    address.map(|a: IpAddr| a.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(header: ForwardedHeader, peer: &str, headers: &[(&str, &str)]) -> String {
        let proxies = TrustedProxies {
            ranges: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            header,
        };
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        proxies.client_of(peer.parse().unwrap(), &map).to_string()
    }

    use ForwardedHeader::{Forwarded, XForwardedFor};

    #[test]
    fn an_untrusted_peers_forwarding_headers_are_ignored() {
        let forged = [
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ];
        assert_eq!(
            client(XForwardedFor, "198.51.100.1", &forged),
            "198.51.100.1"
        );
        assert_eq!(client(Forwarded, "198.51.100.1", &forged), "198.51.100.1");
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        // The client wrote the first hop itself; our two proxies added the others.
        let chain = [("x-forwarded-for", "192.0.2.66, 198.51.100.7, 10.0.0.2")];
        assert_eq!(client(XForwardedFor, "10.0.0.1", &chain), "198.51.100.7");
        // Across header lines, and with a port.
        let lines = [
            ("x-forwarded-for", "192.0.2.66"),
            ("x-forwarded-for", "198.51.100.7:4711"),
        ];
        assert_eq!(client(XForwardedFor, "10.0.0.1", &lines), "198.51.100.7");
        assert_eq!(
            client(XForwardedFor, "10.0.0.1", &[]),
            "10.0.0.1",
            "no header: the proxy"
        );
        assert_eq!(
            client(
                XForwardedFor,
                "10.0.0.1",
                &[("x-forwarded-for", "10.0.0.3")]
            ),
            "10.0.0.3",
            "only proxies of ours: the furthest"
        );
        let mapped = [("x-forwarded-for", "::ffff:192.0.2.60")];
        assert_eq!(client(XForwardedFor, "10.0.0.1", &mapped), "192.0.2.60");
    }

    #[test]
    fn only_the_header_the_proxies_write_is_read() {
        let both = [
            (
                "forwarded",
                r#"for=192.0.2.60;proto=http, For="[2001:db8:cafe::17]:4711""#,
            ),
            ("x-forwarded-for", "198.51.100.7"),
        ];
        assert_eq!(client(Forwarded, "::1", &both), "2001:db8:cafe::17");
        assert_eq!(client(XForwardedFor, "::1", &both), "198.51.100.7");
        let unknown = [("forwarded", "for=192.0.2.60, for=unknown")];
        assert_eq!(client(Forwarded, "10.0.0.1", &unknown), "10.0.0.1");
    }
}
