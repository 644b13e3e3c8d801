//! Durable local state under the state directory (`[state] dir`): the
//! SQLite database (`db`, its tables in `schema`) with the policy's store
//! (`kv`), the queue (`queue`, its `request`s, with `desired`, `applied`
//! and `holds`), the host names `dns` keeps (`dns`), the
//! cluster it serves (`cluster`) and small values (`meta`); the locks that
//! keep one sender at a time, and atomic file writes.

pub mod applied;
pub mod cluster;
pub mod crowdsec;
pub mod db;
pub mod desired;
pub mod dns;
pub mod files;
pub mod holds;
pub mod kv;
pub mod locks;
pub mod meta;
pub mod pace;
pub mod queue;
pub mod request;
pub mod schema;
pub mod stats;
