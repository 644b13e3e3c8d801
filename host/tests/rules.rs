//! The config's `[rules]` and `[limits]` reach the default policy, and the
//! `pve` grant follows the configured IPSets.

mod support;

use support::Setup;

fn with(extra: &str) -> Setup {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!("{text}\n{extra}"));
    s
}

#[test]
fn never_ban_network_is_refused_with_exit_2_and_nothing_sent() {
    let s = with("[rules]\nnever_ban = [\"198.51.100.0/24\"]\n");
    let r = s.run(&["-f", "ban", "198.51.100.7"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("never_ban"), "{r:?}");
    assert!(s.emu.requests().is_empty(), "{:?}", s.emu.requests());
}

#[test]
fn the_pve_node_itself_is_always_refused() {
    // The emulator listens on 127.0.0.1, the configured [pve] host.
    let s = Setup::new();
    let r = s.run(&["-f", "ban", "127.0.0.0/8"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("a configured PVE node"), "{r:?}");
    assert!(s.emu.requests().is_empty());
}

#[test]
fn ipv6_prefix_widens_ban_and_unban_alike() {
    let s = with("[rules]\nipv6_prefix = 64\n");
    assert_eq!(s.run(&["-f", "ban", "2001:db8:5:6::1"]).code, 0);
    assert_eq!(s.cidrs(), ["2001:db8:5:6::/64"]);
    let r = s.run(&["-f", "unban", "2001:db8:5:6::2"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(s.cidrs().is_empty());
}

#[test]
fn ipset_named_with_i_is_granted_for_that_run() {
    let s = Setup::new();
    let r = s.run(&["-f", "ban", "192.0.2.1", "-i", "other"]);
    // PVE's own answer (no such IPSet, exit 1), not the host's denial (exit 3).
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no such IPSet 'other'"), "{r:?}");
}

#[test]
fn unknown_key_in_new_tables_is_an_error_naming_it() {
    let s = with("[limits]\nfuel_units = 5\n");
    let r = s.run(&["-f", "ban", "192.0.2.1"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("fuel_units"), "{r:?}");
}
