//! Free loopback ports for the environment's servers.

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// An address of this machine that is not loopback: the source address of the route to a
/// documentation address (a UDP "connect" sends nothing). The API server refuses loopback
/// addresses in Endpoints and EndpointSlices, so a process the aggregation layer reaches (the
/// audit API) listens here.
pub fn non_loopback_address() -> std::io::Result<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind(("0.0.0.0", 0))?;
    socket.connect(("198.51.100.1", 9))?;
    let address = socket.local_addr()?.ip();
    if address.is_loopback() || address.is_unspecified() {
        return Err(std::io::Error::other(format!(
            "the route to 198.51.100.1 leaves from {address}; this machine needs a non-loopback \
             address for the aggregation layer to reach the audit API"
        )));
    }
    Ok(address)
}

/// A TCP port on `address` that was free a moment ago.
pub fn free_port_on(address: std::net::IpAddr) -> std::io::Result<u16> {
    Ok(TcpListener::bind((address, 0))?.local_addr()?.port())
}
