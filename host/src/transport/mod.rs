//! How the host reaches PVE: the HTTPS client, the TLS verifiers that decide
//! whom to trust inside the handshake, the pins `fail2pvefw trust` stores,
//! and the handshake-only probe that shows a certificate before it is
//! trusted. The token goes out only through `client`, only after `tls`
//! accepted the node.

pub mod client;
pub mod lapi;
pub mod pins;
pub mod probe;
pub mod tls;
