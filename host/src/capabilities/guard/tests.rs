use super::*;

fn guard() -> Guard {
    guard_with(&[])
}

fn guard_with(paths: &[&str]) -> Guard {
    let rules = EntryRules {
        never_ban: vec!["10.0.0.0/8".parse().unwrap()],
        node_addresses: vec!["192.0.2.10".parse().unwrap()],
        resolved: Vec::new(),
        widest_ipv4: 16,
        widest_ipv6: 32,
    };
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    Guard::new([("f2b".to_string(), Purpose::Ban)], &paths, rules, "web01")
}

fn pairs(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check(method: &str, path: &str, params: &[(&str, &str)]) -> Result<Checked, String> {
    guard().check(method, path, &pairs(params))
}

fn post(cidr: &str) -> Result<Checked, String> {
    check("POST", "/cluster/firewall/ipset/f2b", &[("cidr", cidr)])
}

#[test]
fn firewall_paths_are_granted() {
    assert!(post("192.0.2.99").is_ok());
    assert!(
        check(
            "DELETE",
            "/cluster/firewall/ipset/f2b/203.0.113.0%2F24",
            &[]
        )
        .is_ok()
    );
    assert!(check("GET", "/version", &[]).is_ok());
    assert!(check("GET", "/cluster/firewall/ipset/f2b", &[]).is_ok());
}

#[test]
fn path_outside_the_configured_ipsets_is_denied() {
    for (method, path) in [
        ("GET", "/cluster/firewall/rules"),
        ("GET", "/cluster/firewall/ipset"),
        ("POST", "/cluster/firewall/ipset/other"),
        ("GET", "/cluster/firewall/ipset/f2bx"),
        ("GET", "/access/users"),
        ("POST", "/version"),
        ("GET", "/nodes/pve/qemu"),
    ] {
        let e = check(method, path, &[]).unwrap_err();
        assert!(e.contains("outside what the policy is granted"), "{e}");
    }
}

#[test]
fn dot_segments_and_tricks_are_denied() {
    for (method, path) in [
        ("GET", "/cluster/firewall/../../access/users"),
        ("GET", "/cluster/firewall/%2e%2e/%2E%2E/access"),
        ("GET", "/cluster/firewall/ipset?x=1"),
        ("GET", "/cluster/firewall/ipset#x"),
        ("GET", "/cluster/firewall/ipset f"),
        ("PATCH", "/cluster/firewall/ipset"),
        ("GET", "cluster/firewall/ipset"),
    ] {
        assert!(check(method, path, &[]).is_err(), "{method} {path}");
    }
}

#[test]
fn allow_paths_and_run_ipsets_widen_the_grant() {
    let mut guard = guard_with(&["/cluster/firewall/rules/"]);
    let none = Vec::new();
    assert!(guard.check("GET", "/cluster/firewall/rules", &none).is_ok());
    assert_eq!(
        guard.check("POST", "/cluster/firewall/rules/3", &none),
        Ok(Checked::Pass)
    );
    assert!(
        guard
            .check("GET", "/cluster/firewall/rulesx", &none)
            .is_err()
    );
    assert!(
        guard
            .check("GET", "/cluster/firewall/ipset/web", &none)
            .is_err()
    );
    guard.allow_ipset("web");
    assert!(
        guard
            .check("GET", "/cluster/firewall/ipset/web", &none)
            .is_ok()
    );
}

#[test]
fn denial_says_what_is_granted() {
    let err = check("GET", "/access/users", &[]).unwrap_err();
    assert!(
        err.contains("IPSet 'f2b'") && err.contains("GET /version"),
        "{err}"
    );
}

#[test]
fn an_entry_post_is_recorded_as_pve_stores_it() {
    let checked = check(
        "POST",
        "/cluster/firewall/ipset/f2b",
        &[("cidr", "203.0.113.9/24"), ("comment", "x f2p:web01/-/-")],
    );
    assert_eq!(
        checked,
        Ok(Checked::Add {
            ipset: "f2b".into(),
            cidr: "203.0.113.0/24".into(),
            comment: Some("x f2p:web01/-/-".into()),
        })
    );
}

#[test]
fn an_ipset_itself_is_not_deleted_or_renamed() {
    for params in [&[][..], &[("force", "1")][..]] {
        let e = check("DELETE", "/cluster/firewall/ipset/f2b", params).unwrap_err();
        assert!(e.contains("deleting an IPSet itself"), "{e}");
        assert!(e.contains("[rules] allow_paths"), "{e}");
    }
    let rename = pairs(&[("name", "gone"), ("rename", "f2b")]);
    let wide = guard_with(&["/cluster/firewall"]);
    let e = wide
        .check("POST", "/cluster/firewall/ipset", &rename)
        .unwrap_err();
    assert!(e.contains("creating or renaming an IPSet"), "{e}");
    // A prefix of allow_paths is not enough: the exact path is.
    let e = wide
        .check("DELETE", "/cluster/firewall/ipset/f2b", &[])
        .unwrap_err();
    assert!(e.contains("deleting an IPSet itself"), "{e}");
    let named = guard_with(&["/cluster/firewall/ipset/f2b", "/cluster/firewall/ipset"]);
    let force = pairs(&[("force", "1")]);
    assert_eq!(
        named.check("DELETE", "/cluster/firewall/ipset/f2b", &force),
        Ok(Checked::Pass)
    );
    assert_eq!(
        named.check("POST", "/cluster/firewall/ipset", &rename),
        Ok(Checked::Pass)
    );
}

#[test]
fn entry_rules_hold_whichever_grant_let_the_path_through() {
    let wide = guard_with(&["/cluster/firewall"]);
    let e = wide
        .check(
            "POST",
            "/cluster/firewall/ipset/other",
            &pairs(&[("cidr", "0.0.0.0/1")]),
        )
        .unwrap_err();
    // `other` is reachable through allow_paths, but it is no granted IPSet.
    assert!(e.contains("not an IPSet the policy is granted"), "{e}");
    let mut wide = wide;
    wide.allow_ipset("other");
    let e = wide
        .check(
            "POST",
            "/cluster/firewall/ipset/other",
            &pairs(&[("cidr", "0.0.0.0/1")]),
        )
        .unwrap_err();
    assert!(e.contains("[rules] widest_ipv4"), "{e}");
}

#[test]
fn forbidden_entries_are_denied_naming_the_rule() {
    for (cidr, rule) in [
        ("0.0.0.0/1", "wider than /16 ([rules] widest_ipv4)"),
        ("128.0.0.0/1", "wider than /16 ([rules] widest_ipv4)"),
        ("::/1", "wider than /32 ([rules] widest_ipv6)"),
        ("10.9.8.7", "overlaps 10.0.0.0/8 ([rules] never_ban)"),
        ("192.0.2.10", "192.0.2.10, the address of a PVE node"),
        ("192.0.2.0/24", "192.0.2.10, the address of a PVE node"),
        ("dc/admins", "not an address or network"),
    ] {
        let e = post(cidr).unwrap_err();
        assert!(
            e.starts_with(&format!("POST of '{cidr}' to IPSet 'f2b': ")),
            "{e}"
        );
        assert!(e.contains(rule), "{cidr}: {e}");
    }
}

#[test]
fn no_parameter_but_cidr_and_comment() {
    for extra in ["nomatch", "digest", "force", "rename", "name", "cidr"] {
        let e = check(
            "POST",
            "/cluster/firewall/ipset/f2b",
            &[("cidr", "192.0.2.99"), (extra, "1")],
        )
        .unwrap_err();
        assert!(e.contains(&format!("'{extra}'")), "{e}");
    }
    let e = check("POST", "/cluster/firewall/ipset/f2b", &[("comment", "x")]).unwrap_err();
    assert!(e.contains("no 'cidr'"), "{e}");
    let path = "/cluster/firewall/ipset/f2b/192.0.2.99";
    let e = check("DELETE", path, &[("digest", "abc")]).unwrap_err();
    assert!(e.contains("'digest' is not allowed"), "{e}");
    let e = check("PUT", path, &[("nomatch", "1")]).unwrap_err();
    assert!(e.contains("'nomatch' is not allowed"), "{e}");
    assert!(check("PUT", path, &[("comment", "x")]).is_ok());
}

#[test]
fn a_line_break_in_a_comment_cannot_smuggle_an_entry() {
    for method in ["POST", "PUT"] {
        let path = match method {
            "POST" => "/cluster/firewall/ipset/f2b",
            _ => "/cluster/firewall/ipset/f2b/192.0.2.99",
        };
        let mut params = vec![("comment", "x\n0.0.0.0/1")];
        if method == "POST" {
            params.push(("cidr", "192.0.2.99"));
        }
        let e = check(method, path, &params).unwrap_err();
        assert!(e.contains("control character"), "{e}");
    }
}

#[test]
fn a_change_names_the_entry_as_pve_matches_it() {
    assert_eq!(
        check(
            "DELETE",
            "/cluster/firewall/ipset/f2b/203.0.113.0%2F24",
            &[]
        ),
        Ok(Checked::Change {
            ipset: "f2b".into(),
            cidr: "203.0.113.0/24".into(),
        })
    );
    // Deleting a protected address is no danger: only ownership applies.
    assert!(check("DELETE", "/cluster/firewall/ipset/f2b/10.1.2.3", &[]).is_ok());
    for path in [
        "/cluster/firewall/ipset/f2b/dc%2Fadmins",
        "/cluster/firewall/ipset/f2b/10.0.0.0/8",
        "/cluster/firewall/ipset/f2b/",
        "/cluster/firewall/ipset/f2b//x",
    ] {
        assert!(check("DELETE", path, &[]).is_err(), "{path}");
    }
    assert!(check("POST", "/cluster/firewall/ipset/f2b/192.0.2.1", &[]).is_err());
    assert!(check("PUT", "/cluster/firewall/ipset/f2b", &[]).is_err());
}

// See: issue 13, item 1
#[test]
fn an_accept_list_is_the_hosts_alone() {
    let mut guard = guard();
    guard.mark_accept("trusted");
    guard.protect_resolved(vec![("198.51.100.7".parse().unwrap(), "home.test".into())]);
    let add = |cidr: &str| pairs(&[("cidr", cidr), ("comment", "home.test f2p:web01/dns/-")]);
    let path = "/cluster/firewall/ipset/trusted";
    // A policy may read it, never write it.
    assert_eq!(guard.check("GET", path, &[]), Ok(Checked::Pass));
    let e = guard.check("POST", path, &add("198.51.100.7")).unwrap_err();
    assert!(e.contains("is an accept list"), "{e}");
    let entry = "/cluster/firewall/ipset/trusted/198.51.100.7";
    assert!(guard.check("DELETE", entry, &[]).is_err());
    assert!(guard.check_entry("trusted", "198.51.100.7").is_err());
    // The host may, and never_ban, the nodes and the names' own addresses
    // do not deny it; the width does.
    for cidr in ["198.51.100.7", "10.1.2.3", "192.0.2.10"] {
        assert!(
            matches!(
                guard.check_host("POST", path, &add(cidr)),
                Ok(Checked::Add { .. })
            ),
            "{cidr}"
        );
    }
    let e = guard
        .check_host("POST", path, &add("0.0.0.0/1"))
        .unwrap_err();
    assert!(e.contains("widest_ipv4"), "{e}");
    assert!(guard.check_host("DELETE", entry, &[]).is_ok());
    // In the ban list the resolved address is refused, by the host too.
    assert!(post("198.51.100.0/24").is_ok(), "no name resolved there");
    let ban = pairs(&[("cidr", "198.51.100.0/24")]);
    let e = guard
        .check("POST", "/cluster/firewall/ipset/f2b", &ban)
        .unwrap_err();
    assert!(e.contains("an address of 'home.test'"), "{e}");
    let e = guard
        .check_host("POST", "/cluster/firewall/ipset/f2b", &ban)
        .unwrap_err();
    assert!(e.contains("never_ban_resolved"), "{e}");
    // A grant from a request does not turn an accept list into a ban list.
    guard.allow_ipset("trusted");
    assert!(guard.check("POST", path, &add("198.51.100.8")).is_err());
}

#[test]
fn the_words_say_whose_an_entry_is() {
    let words = not_ours(Some("manual-by-admin"), "web01");
    assert_eq!(
        words,
        "not ours (comment 'manual-by-admin' carries no tag f2p:web01/…)"
    );
    let words = not_ours(Some("x f2p:other/sshd/1"), "web01");
    assert!(words.contains("instance 'other' wrote it"), "{words}");
    assert!(not_ours(None, "web01").contains("no comment"));
}
