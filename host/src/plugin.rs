//! A configured policy: the runtime with the config's `[limits]`, and the
//! capabilities the config grants — `pve` for the configured IPSets (and
//! `[rules] allow_paths`), the namespaced `store`, and `settings` from
//! `[rules]`, `[policy_settings]` and the PVE node's own address.

use crate::capabilities::{self, HostState};
use crate::config::Config;
use crate::error::Result;
use crate::policy::{Instance, Runtime, Source};

/// Loads `source` (from the compiled cache in the state directory) and
/// instantiates it with what `config` grants.
pub fn instantiate(config: &Config, source: &Source) -> Result<Instance> {
    let cache = config.state_dir.join("cache");
    let runtime = Runtime::load(source.clone(), Some(&cache))?.with_limits(config.limits);
    runtime.instantiate(host_state(config, source))
}

/// The capabilities of a configured run. The `-i IPSET` of a command is
/// granted when the host hands the policy a request naming it.
pub fn host_state(config: &Config, source: &Source) -> HostState {
    let grant = capabilities::pve::Grant::new([config.ipset.clone()], &config.rules.allow_paths);
    // Every configured node, `host` and the `hosts` fallbacks.
    let pve_hosts: Vec<_> = std::iter::once(&config.pve.host)
        .chain(&config.pve.fallbacks)
        .flat_map(capabilities::settings::pve_host_addresses)
        .collect();
    HostState::new(
        capabilities::pve::Pve::new(config.pve.clone(), config.state_dir.clone(), grant),
        capabilities::store::Store::new(Some(config.state_dir.clone()), source.namespace()),
        capabilities::log::Log {
            source: source.describe(),
        },
        crate::policy::limits(config.limits.memory),
    )
    .with_settings(capabilities::settings::Settings::new(
        &config.rules,
        &pve_hosts,
    ))
}
