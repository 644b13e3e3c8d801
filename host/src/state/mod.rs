//! Durable local state under the state directory (`[state] dir`): the
//! SQLite database with the policy's store and the queue, the locks that
//! keep one sender at a time, and atomic file writes.

pub mod db;
pub mod files;
pub mod kv;
pub mod locks;
pub mod queue;
