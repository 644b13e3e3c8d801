//! A native test host: the imports answered in memory, so `cargo test` in
//! a policy crate runs the policy's exports with no wasm and nothing to
//! fake.
//!
//! ```
//! # use fail2pvefw_sdk::{BanRequest, Error, Identity, Policy};
//! # struct MyPolicy;
//! # impl Policy for MyPolicy {
//! #     fn identity() -> Identity { Identity::new("mine", "1") }
//! #     fn ban(req: &BanRequest) -> Result<String, Error> {
//! #         let (set, entry) = fail2pvefw_sdk::policy::checked(req)?;
//! #         fail2pvefw_sdk::ipset::add(&set, entry.as_str(), &fail2pvefw_sdk::comment::for_ban(req))?;
//! #         Ok(String::new())
//! #     }
//! #     fn unban(_: &BanRequest) -> Result<String, Error> { Ok(String::new()) }
//! # }
//! use fail2pvefw_sdk::test_host::TestHost;
//!
//! let mut host = TestHost::new()
//!     .ipset("fail2ban")
//!     .setting("policy.threshold", "3")
//!     .at(1_700_000_000);
//! host.ban::<MyPolicy>("203.0.113.1").unwrap();
//! assert_eq!(host.cidrs("fail2ban"), ["203.0.113.1"]);
//! assert_eq!(host.calls()[0].method, "POST");
//! ```
//!
//! - **pve**: the PVE model (`pve-model`, the one the sandbox and the
//!   emulator serve): it normalises, refuses duplicates with PVE's 400,
//!   deletes by exact string, answers `500 no such IPSet`, writes
//!   `cluster.fw` as PVE does. In front of it the host's guard rails, as
//!   far as they are cheap ([`guard`]): only the granted IPSets (those of
//!   [`TestHost::ipset`]) and `GET /version`; entry writes only (a POST of
//!   `cidr` and `comment`, a PUT of `comment`, a DELETE of one entry); no
//!   control character in a comment; no entry wider than /16 or /32
//!   ([`TestHost::widest`]), none overlapping the `never-ban` setting or
//!   holding a `pve-hosts` address; and a PUT or DELETE only of an entry
//!   whose comment carries this instance's tag (else `not-ours`, nothing
//!   sent), a DELETE of a missing entry answered 200. **Not checked**: the
//!   host's `digest` retries (nothing changes in between here) and the
//!   timeouts of a real network.
//! - **store**: a map, with the host's 1 MiB quota.
//! - **clock**: [`TestHost::at`] (default 1 700 000 000), settable while a
//!   test runs ([`TestHost::advance`]); the UTC offset of
//!   [`TestHost::local_offset`] (default 0).
//! - **settings**: [`TestHost::setting`]; **log**: kept ([`TestHost::logs`]).
//!
//! One test host runs on a thread at a time ([`TestHost::run`] puts it in
//! place for the imports); tests on other threads have their own.

pub(crate) mod backend;
pub mod guard;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use pve_model::{Caller, Cluster};

use crate::admission::{Admitted, Budget, Candidate};
use crate::policy::Policy;
use crate::types::{BanRequest, Entry, Error, Level, Response};

/// The store's quota, as the host's.
pub const STORE_QUOTA: usize = 1024 * 1024;

/// The instance a test host's requests name, unless [`TestHost::instance`]
/// says otherwise.
pub const INSTANCE: &str = "test";

thread_local! {
    /// The test host of this thread while [`TestHost::run`] runs.
    static CURRENT: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// A fault or a canned answer: given a request the guard let through,
/// `Some` answers it instead of the PVE model.
type Respond = Box<dyn FnMut(&str, &str, &[(String, String)]) -> Option<Result<Response, Error>>>;

/// The host of a native test. Build it, then call the policy inside
/// [`TestHost::run`] (or with [`TestHost::ban`] / [`TestHost::unban`]),
/// then look at what it did.
pub struct TestHost {
    /// `None` while [`TestHost::run`] has lent it to the thread.
    state: Option<State>,
}

pub(crate) struct State {
    pub cluster: Cluster,
    pub guard: guard::Guard,
    pub now: u64,
    pub offset: i32,
    pub settings: BTreeMap<String, String>,
    pub store: BTreeMap<String, String>,
    pub calls: Vec<Call>,
    pub logs: Vec<(Level, String)>,
    pub respond: Option<Respond>,
    /// While `admit` runs: every `pve` request is denied, as by the host.
    pub sealed: bool,
}

/// One request the policy made, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    /// As the policy sent it (relative to `/api2/json`, percent-encoded).
    pub path: String,
    pub params: Vec<(String, String)>,
    pub answer: Answer,
}

/// How a [`Call`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// PVE (the model, or [`TestHost::respond`]) answered with this status.
    Status(u16),
    /// The guard refused it; nothing was sent. The rule, in words.
    Denied(String),
    /// A PUT or DELETE of someone else's entry; nothing was sent.
    NotOurs(String),
    /// [`TestHost::respond`] made it fail with another error.
    Failed(Error),
}

impl Call {
    /// The status PVE answered, if the request got to PVE.
    pub fn status(&self) -> Option<u16> {
        match self.answer {
            Answer::Status(status) => Some(status),
            _ => None,
        }
    }

    /// Not a GET.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }

    /// The value of parameter `key`, if given.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for Call {
    /// `POST /cluster/firewall/ipset/f2b cidr="1.2.3.4" -> 200`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        for (key, value) in &self.params {
            write!(f, " {key}={value:?}")?;
        }
        match &self.answer {
            Answer::Status(status) => write!(f, " -> {status}"),
            Answer::Denied(why) => write!(f, " -> denied: {why}"),
            Answer::NotOurs(why) => write!(f, " -> left alone: {why}"),
            Answer::Failed(error) => write!(f, " -> {error}"),
        }
    }
}

impl Default for TestHost {
    fn default() -> Self {
        TestHost::new()
    }
}

impl TestHost {
    /// A cluster with no IPSet, the instance `test`, the time 1 700 000 000
    /// (2023-11-14 22:13:20 UTC), UTC, no settings, an empty store.
    pub fn new() -> TestHost {
        TestHost {
            state: Some(State {
                cluster: Cluster::default(),
                guard: guard::Guard::new(INSTANCE),
                now: 1_700_000_000,
                offset: 0,
                settings: BTreeMap::new(),
                store: BTreeMap::new(),
                calls: Vec::new(),
                logs: Vec::new(),
                respond: None,
                sealed: false,
            }),
        }
    }

    fn state(&self) -> &State {
        self.state
            .as_ref()
            .expect("the test host is lent to TestHost::run")
    }

    fn state_mut(&mut self) -> &mut State {
        self.state
            .as_mut()
            .expect("the test host is lent to TestHost::run")
    }

    // --- building

    /// An empty IPSet `name` (kept if it exists), granted to the policy as
    /// the host grants the configured one.
    pub fn ipset(mut self, name: &str) -> TestHost {
        let state = self.state_mut();
        if state.cluster.entries(name).is_none() {
            let params = [("name".to_string(), name.to_string())];
            let r = state
                .cluster
                .handle("POST", "/cluster/firewall/ipset", &params, &Caller::FULL);
            assert_eq!(r.status, 200, "creating IPSet '{name}': {}", r.body);
        }
        state.guard.grant(name);
        self
    }

    /// An entry already there, written by hand (`comment` with a tag makes
    /// it an instance's). The IPSet is created and granted if needed.
    pub fn entry(self, ipset: &str, cidr: &str, comment: Option<&str>) -> TestHost {
        let mut host = self.ipset(ipset);
        let mut params = vec![("cidr".to_string(), cidr.to_string())];
        if let Some(comment) = comment {
            params.push(("comment".to_string(), comment.to_string()));
        }
        let path = format!("/cluster/firewall/ipset/{ipset}");
        let r = host
            .state_mut()
            .cluster
            .handle("POST", &path, &params, &Caller::FULL);
        assert_eq!(
            r.status, 200,
            "adding {cidr} to IPSet '{ipset}': {}",
            r.body
        );
        host
    }

    /// The whole `cluster.fw` (as PVE reads it); every IPSet in it is
    /// granted.
    pub fn cluster_fw(mut self, text: &str) -> TestHost {
        let state = self.state_mut();
        state.cluster = Cluster::from_cluster_fw(text);
        for name in state.cluster.ipsets() {
            state.guard.grant(&name);
        }
        self
    }

    /// The instance the requests name (`[state] instance`), whose tag marks
    /// the entries the policy may change.
    pub fn instance(mut self, name: &str) -> TestHost {
        self.state_mut().guard.instance = name.to_string();
        self
    }

    /// The clock: now, in Unix seconds.
    pub fn at(mut self, now: u64) -> TestHost {
        self.state_mut().now = now;
        self
    }

    /// The host's UTC offset, seconds east of UTC.
    pub fn local_offset(mut self, seconds: i32) -> TestHost {
        self.state_mut().offset = seconds;
        self
    }

    /// A setting: `policy.NAME` for `[policy_settings] NAME`, or one of the
    /// host's (`never-ban`, `pve-hosts`, `ipv6-prefix`; see
    /// [`crate::rules`]). The guard applies `never-ban` and `pve-hosts` too.
    pub fn setting(mut self, name: &str, value: &str) -> TestHost {
        self.state_mut()
            .settings
            .insert(name.to_string(), value.to_string());
        self
    }

    /// A key already in the policy's store.
    pub fn stored(mut self, key: &str, value: &str) -> TestHost {
        self.state_mut()
            .store
            .insert(key.to_string(), value.to_string());
        self
    }

    /// A path outside the IPSets the policy may use, as `[rules]
    /// allow_paths` grants it.
    pub fn allow_path(mut self, path: &str) -> TestHost {
        self.state_mut().guard.allow_paths.push(path.to_string());
        self
    }

    /// The widest entries the guard lets through (`[rules] widest_ipv4`,
    /// `widest_ipv6`; default 16 and 32).
    pub fn widest(mut self, ipv4: u8, ipv6: u8) -> TestHost {
        let guard = &mut self.state_mut().guard;
        guard.widest_ipv4 = ipv4;
        guard.widest_ipv6 = ipv6;
        self
    }

    /// Answers the requests the guard lets through with `respond` instead
    /// of the PVE model where it returns `Some`: a 401, a cluster lock
    /// timeout, an unreachable PVE. It sees `method`, `path` and the
    /// parameters as sent.
    pub fn respond(
        mut self,
        respond: impl FnMut(&str, &str, &[(String, String)]) -> Option<Result<Response, Error>>
        + 'static,
    ) -> TestHost {
        self.state_mut().respond = Some(Box::new(respond));
        self
    }

    // --- running

    /// Runs `f` with this host behind the imports of this thread: call the
    /// policy's functions in it.
    pub fn run<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let state = self
            .state
            .take()
            .expect("TestHost::run inside TestHost::run");
        CURRENT.with(|current| {
            let mut current = current.borrow_mut();
            assert!(
                current.is_none(),
                "another TestHost is running on this thread"
            );
            *current = Some(state);
        });
        /// Takes the state back, also when `f` panics.
        struct Back<'a>(&'a mut TestHost);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                self.0.state = CURRENT.with(|current| current.borrow_mut().take());
            }
        }
        let _back = Back(self);
        f()
    }

    /// A request for `ip` as the host builds it from `ban IP`: the first
    /// granted IPSet (else `fail2ban`), this instance, nothing else.
    pub fn request(&self, ip: &str) -> BanRequest {
        let state = self.state();
        let ipset = state
            .guard
            .ipsets
            .iter()
            .next()
            .cloned()
            .unwrap_or_else(|| "fail2ban".to_string());
        BanRequest::new(ip, &ipset, &state.guard.instance)
    }

    /// `ban IP` as the host runs it: `validate`, then `ban` with the same
    /// request ([`TestHost::request`]).
    pub fn ban<P: Policy>(&mut self, ip: &str) -> Result<String, Error> {
        let req = self.request(ip);
        self.ban_with::<P>(&req)
    }

    /// `unban IP` as the host runs it: `validate`, then `unban`.
    pub fn unban<P: Policy>(&mut self, ip: &str) -> Result<String, Error> {
        let req = self.request(ip);
        self.unban_with::<P>(&req)
    }

    /// `validate`, then `ban`, for a request of your own.
    pub fn ban_with<P: Policy>(&mut self, req: &BanRequest) -> Result<String, Error> {
        self.run(|| P::validate(req).and_then(|_| P::ban(req)))
    }

    /// `validate`, then `unban`, for a request of your own.
    pub fn unban_with<P: Policy>(&mut self, req: &BanRequest) -> Result<String, Error> {
        self.run(|| P::validate(req).and_then(|_| P::unban(req)))
    }

    /// `admit` as the host runs it for `fail2pvefw crowdsec`: every `pve`
    /// request is denied meanwhile (choosing is pure), the settings are
    /// this host's. [`TestHost::budget`] gives a budget to start from.
    pub fn admit<P: Policy>(
        &mut self,
        candidates: &[Candidate],
        budget: &Budget,
    ) -> Result<Admitted, Error> {
        self.state_mut().sealed = true;
        let answer = self.run(|| P::admit(candidates, budget));
        self.state_mut().sealed = false;
        answer
    }

    /// A budget as the host makes one: the first granted IPSet (else
    /// `crowdsec`), this instance, now, no cap on entries, 1 MiB of bytes,
    /// nothing shared, no aggregation (`aggregate-min` 8).
    pub fn budget(&self) -> Budget {
        let state = self.state();
        Budget {
            ipset: state
                .guard
                .ipsets
                .iter()
                .next()
                .cloned()
                .unwrap_or_else(|| "crowdsec".to_string()),
            instance: state.guard.instance.clone(),
            now: i64::try_from(state.now).unwrap_or(i64::MAX),
            max_entries: None,
            max_bytes: 1 << 20,
            shared: Vec::new(),
            aggregate_ipv4: None,
            aggregate_ipv6: None,
            aggregate_min: 8,
        }
    }

    /// Sets the clock.
    pub fn set_now(&mut self, now: u64) {
        self.state_mut().now = now;
    }

    /// Moves the clock on by `seconds`.
    pub fn advance(&mut self, seconds: u64) {
        self.state_mut().now += seconds;
    }

    // --- looking

    /// Now, as the policy sees it.
    pub fn now(&self) -> u64 {
        self.state().now
    }

    /// Every request the policy made, in order (not the host's own reads
    /// of an entry's owner before a PUT or DELETE).
    pub fn calls(&self) -> &[Call] {
        &self.state().calls
    }

    /// The calls so far, forgetting them.
    pub fn take_calls(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.state_mut().calls)
    }

    /// The calls that were not GETs.
    pub fn writes(&self) -> Vec<&Call> {
        self.calls().iter().filter(|c| c.is_write()).collect()
    }

    /// The IPSet's entries in PVE's order, owners read from their tags;
    /// empty when there is no such IPSet.
    pub fn entries(&self, ipset: &str) -> Vec<Entry> {
        self.state()
            .cluster
            .entries(ipset)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| Some(Entry::new(e.cidr.as_deref()?, e.comment.as_deref())))
            .collect()
    }

    /// The IPSet's entries as PVE stores them.
    pub fn cidrs(&self, ipset: &str) -> Vec<String> {
        self.entries(ipset).into_iter().map(|e| e.cidr).collect()
    }

    /// The policy's store.
    pub fn store(&self) -> &BTreeMap<String, String> {
        &self.state().store
    }

    /// What the policy logged, in order (with one debug line per PVE call).
    pub fn logs(&self) -> &[(Level, String)] {
        &self.state().logs
    }

    /// The PVE model: `cluster_fw()` is the file PVE would have written.
    pub fn cluster(&self) -> &Cluster {
        &self.state().cluster
    }
}

/// Runs `f` on the state of this thread's running test host.
pub(crate) fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        let state = current.as_mut().unwrap_or_else(|| {
            panic!(
                "fail2pvefw-sdk: a policy import was called outside TestHost::run; call the \
                 policy inside `host.run(|| …)` (or `host.ban::<P>(ip)`)"
            )
        });
        f(state)
    })
}

#[cfg(test)]
mod tests;
