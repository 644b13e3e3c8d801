//! A configured policy: the runtime with the config's `[limits]`, and the
//! capabilities the config grants — `pve` for the configured IPSets (and
//! `[rules] allow_paths`), the namespaced `store`, and `settings` from
//! `[rules]`, `[policy_settings]` and the PVE node's own address.

use crate::capabilities::HostState;
use crate::config::Config;
use crate::error::Result;
use crate::policy::{Instance, Runtime, Source};

/// Loads `source` (from the compiled cache in the state directory) and
/// instantiates it with what `config` grants.
pub fn instantiate(config: &Config, source: &Source) -> Result<Instance> {
    let cache = config.state_dir.join("cache");
    let runtime = Runtime::load(source.clone(), Some(&cache))?.with_limits(config.limits);
    runtime.instantiate(HostState::configured(
        config,
        source.namespace(),
        source.describe(),
    ))
}
