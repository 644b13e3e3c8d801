//! An I/O-free model of a Proxmox VE cluster's datacenter firewall, as far
//! as fail2pvefw meets it: the IPSet API, the read-only endpoints a client
//! checks, and `/etc/pve/firewall/cluster.fw` with its size cap. It behaves
//! as PVE's own Perl code does (pve-firewall 6.0.4, pve-common 9.x); the
//! section numbers in comments refer to `shared/pve-ipset-api.md`.
//!
//! The emulator serves it over HTTPS; `fail2pvefw sandbox` asks it in
//! memory; tests hold other code against it (it is the oracle, so it shares
//! no code with the guest's normaliser).
//!
//! ```
//! use pve_model::{Caller, Cluster};
//!
//! let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n1.2.3.4/32 # hand-edited\n\n");
//! let add = [("cidr".to_string(), "1.2.3.4".to_string())];
//! let r = pve.handle("POST", "/cluster/firewall/ipset/f2b", &add, &Caller::FULL);
//! assert_eq!((r.status, r.reason.as_str()), (400, "Parameter verification failed."));
//! assert!(r.body.contains("address '1.2.3.4' already exists"));
//! ```
//!
//! # API
//! - [`Cluster`]: the file and the handlers. [`Cluster::handle`] answers
//!   one request; [`Cluster::prepare`] and [`Cluster::run`] split it where
//!   PVE takes its cluster lock; [`Cluster::entries`], [`Cluster::ipsets`],
//!   [`Cluster::conf`] and [`Cluster::cluster_fw`] read the state.
//! - [`Caller`]: the privileges of the token; [`Response`]: status, reason
//!   phrase and JSON body as they go on the wire; [`Call`]: a prepared
//!   request.
//! - [`clusterfw`]: the file format: [`Conf::parse`](clusterfw::Conf::parse),
//!   [`Conf::write`](clusterfw::Conf::write), [`ipset_section_bytes`] and
//!   [`MAX_FILE_SIZE`].
//! - [`cidr`]: PVE's validation and normalisation of ipset entries.
//! - [`params`]: parameter values and their decoding.
//!
//! # DEVIATIONS
//! Where the model knowingly differs from PVE, and why that does not
//! matter to fail2pvefw:
//! - **`::` for one zero group** (`1:2:3:4:5:6:7::`) is refused with
//!   `invalid format - \n` every time; PVE sometimes shows instead the
//!   previous request's Net::IP error (a per-worker global), and with a
//!   prefix its text is not known. fail2pvefw's normaliser never writes
//!   `::` for a single group.
//! - **Non-ASCII digits in a prefix** (`1.2.3.4/٣٢`) are refused as `value
//!   does not look like a valid IP address or CIDR network`; PVE's `\d`
//!   matches any Unicode digit in decoded parameters and stores the value.
//!   fail2pvefw refuses such input before it sends anything.
//! - **A trailing newline** (`1.2.3.4\n`) is stored with its newline, as in
//!   PVE; but error texts for such values are those of the value without
//!   the newline. fail2pvefw strips control characters first.
//! - **`[OPTIONS]` and `[ALIASES]` are written sorted by key.** PVE writes
//!   the same lines in Perl's hash order, which differs from process to
//!   process; no order is more right than another.
//! - **Rules are not checked by `verify_rule`**: `GET
//!   /cluster/firewall/rules` shows no `errors` or `ipversion` (so its
//!   digest differs for rules whose addresses fix an IP version), and a
//!   macro written in another case (`ssh(ACCEPT)`) is not rewritten to its
//!   canonical name on write. fail2pvefw only looks for a DROP rule on its
//!   ipset and never writes rules.
//! - **A rule of unknown type** makes every write fail with 500 as in PVE,
//!   but the message lacks Perl's ` at …/Firewall.pm line N.` suffix.
//! - **JSON keys** come sorted; PVE's order is Perl's hash order.
//! - **Kernels older than 3.7** (no `nomatch` support) are not modelled.
//! - **Malformed UTF-8 in comments** becomes U+FFFD as Rust's lossy decoder
//!   does, which may count replacement characters differently from Perl's
//!   Encode for some sequences.
//!
//! # Reasoned from the Perl, not yet compared with a node
//! These follow from reading pve-firewall and pve-common; they were not
//! among the cases compared with PVE's own code (issue 16):
//! - an `[ALIASES]` line that is not `name cidr` (one blank between) is
//!   written back as a line of one space (`parse_alias` returns undef,
//!   stored under the empty name);
//! - `policy_forward` takes `ACCEPT` or `DROP`, and `forward` rules are
//!   written like `in` and `out` rules;
//! - in the file, `guest/NAME` and `dc/NAME` both resolve against the
//!   cluster's own aliases read so far (the parser passes the cluster
//!   config as both), while the API refuses `guest/` (§2).

pub mod cidr;
mod cluster;
pub mod clusterfw;
mod context;
mod digest;
mod error;
mod info;
mod ipset;
pub mod params;
mod pipeline;
mod response;
mod routes;
mod text;

pub use cluster::Cluster;
pub use clusterfw::{MAX_FILE_SIZE, ipset_section_bytes};
pub use context::Caller;
pub use pipeline::Call;
pub use response::Response;
