//! The host's imports as plain functions. On wasm32 they call the host
//! through the bindings (feature `guest`); natively they call the test host
//! of the thread ([`crate::test_host::TestHost::run`], feature `test-host`).

#[cfg(all(feature = "guest", target_arch = "wasm32"))]
use crate::bindings::backend;
#[cfg(all(feature = "test-host", not(target_arch = "wasm32")))]
use crate::test_host::backend;

/// Neither a host nor a test host: every call says how to get one.
#[cfg(not(any(
    all(feature = "guest", target_arch = "wasm32"),
    all(feature = "test-host", not(target_arch = "wasm32"))
)))]
mod backend {
    use crate::types::{Error, Level, Response};

    fn none() -> ! {
        panic!(
            "fail2pvefw-sdk: no host to call: build for wasm32 with the `guest` feature, or \
             run natively inside `TestHost::run` with the `test-host` feature"
        )
    }
    pub fn request(_: &str, _: &str, _: &[(&str, &str)]) -> Result<Response, Error> {
        none()
    }
    pub fn store_get(_: &str) -> Option<String> {
        none()
    }
    pub fn store_set(_: &str, _: &str) -> Result<(), Error> {
        none()
    }
    pub fn store_delete(_: &str) {
        none()
    }
    pub fn store_keys(_: &str) -> Vec<String> {
        none()
    }
    pub fn now() -> u64 {
        none()
    }
    pub fn local_offset(_: i64) -> i32 {
        none()
    }
    pub fn log(_: Level, _: &str) {
        none()
    }
    pub fn setting(_: &str) -> Option<String> {
        none()
    }
}

/// HTTPS to the configured PVE cluster (the `pve` import). The host adds
/// the API token and verifies TLS; its guard checks every request first
/// (see `wit/policy.wit`).
pub mod pve {
    use super::backend;
    use crate::types::{Error, Response};

    /// Sends one request. `path` is relative to `/api2/json` and already
    /// percent-encoded ([`crate::ipset::segment`]); `params` are
    /// form-encoded by the host. `Err` only for what the host decided
    /// itself: `denied` (its guard rails), `not-ours` (someone else's
    /// entry, nothing sent), `unreachable`. Every answer of PVE, errors
    /// included, is `Ok`: judge it with [`crate::answers`]. Each call is
    /// logged at debug level.
    pub fn request(method: &str, path: &str, params: &[(&str, &str)]) -> Result<Response, Error> {
        let outcome = backend::request(method, path, params);
        backend::log(
            crate::Level::Debug,
            &crate::answers::describe_call(method, path, params, &outcome),
        );
        outcome
    }
}

/// The policy's private key-value store (the `store` import): kept by the
/// host under the policy's identity, 1 MiB in all.
pub mod store {
    use super::backend;
    use crate::types::Error;

    /// The value under `key`, if any.
    pub fn get(key: &str) -> Option<String> {
        backend::store_get(key)
    }

    /// Sets `key` to `value`. `denied` when the quota would be exceeded.
    pub fn set(key: &str, value: &str) -> Result<(), Error> {
        backend::store_set(key, value)
    }

    /// Removes `key`; a missing key is no error.
    pub fn delete(key: &str) {
        backend::store_delete(key)
    }

    /// All keys that start with `prefix`, sorted.
    pub fn keys(prefix: &str) -> Vec<String> {
        backend::store_keys(prefix)
    }
}

/// Time as the host sees it (the `clock` import): the policy has no other.
pub mod clock {
    use super::backend;

    /// Now, in seconds since the Unix epoch.
    pub fn now() -> u64 {
        backend::now()
    }

    /// The host's UTC offset at the Unix time `at`, seconds east of UTC.
    pub fn local_offset(at: i64) -> i32 {
        backend::local_offset(at)
    }
}

/// The host's log (the `log` import): stderr, and fail2ban's log.
pub mod log {
    use super::backend;
    use crate::types::Level;

    /// One line; the host strips control characters.
    pub fn log(level: Level, message: &str) {
        backend::log(level, message)
    }

    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }

    pub fn info(message: &str) {
        log(Level::Info, message)
    }

    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }

    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// The administrator's settings (the `settings` import): the names are in
/// [`crate::rules`].
pub mod settings {
    use super::backend;
    use crate::types::Error;
    use std::str::FromStr;

    /// The value of setting `name` (`never-ban`, `policy.threshold`, …).
    pub fn get(name: &str) -> Option<String> {
        backend::setting(name)
    }

    /// `[policy_settings] name`, parsed; `default` when it is not set, and
    /// `denied` naming it when it does not parse ([`crate::rules::bad_setting`]).
    pub fn policy<T: FromStr>(name: &str, default: T) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        crate::rules::parse_setting(get, name, default)
    }
}
