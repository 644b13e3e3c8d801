//! The model against facts about PVE's own code, one test per fact, most of
//! them from issue 16 (the model disagreed with pve-firewall 6.0.4 there).
//! Each test seeds a `cluster.fw`, makes API calls through
//! `Cluster::handle`, and checks the answers and the bytes written.

use pve_model::{Caller, Cluster, Response, ipset_section_bytes};
use serde_json::{Value, json};

const SET: &str = "/cluster/firewall/ipset/f2b";
const LOOKS_BAD: &str = "value does not look like a valid IP address or CIDR network";

fn call(pve: &mut Cluster, method: &str, path: &str, params: &[(&str, &str)]) -> Response {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pve.handle(method, path, &params, &Caller::FULL)
}

fn ok(pve: &mut Cluster, method: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let r = call(pve, method, path, params);
    assert_eq!(
        r.status, 200,
        "{method} {path} {params:?}: {} {}",
        r.reason, r.body
    );
    body(&r)["data"].clone()
}

fn body(r: &Response) -> Value {
    serde_json::from_str(&r.body).expect("a JSON body")
}

fn add(pve: &mut Cluster, cidr: &str) -> Response {
    call(pve, "POST", SET, &[("cidr", cidr)])
}

/// The entries as `GET` lists them, without the digest.
fn listed(pve: &mut Cluster) -> Vec<Value> {
    let data = ok(pve, "GET", SET, &[]);
    let mut entries = data.as_array().unwrap().clone();
    for e in &mut entries {
        e.as_object_mut().unwrap().remove("digest");
    }
    entries
}

fn file(pve: &Cluster) -> String {
    String::from_utf8(pve.cluster_fw().to_vec()).expect("UTF-8")
}

// Item 1: non-canonical entries in the file.

const HAND_EDITED: &str = "[IPSET f2b]\n\n1.2.3.4/32 # hand-edited\n2001:db8::1/128\n\n";

#[test]
fn hand_edited_slash32_is_read_as_the_bare_address() {
    let mut pve = Cluster::from_cluster_fw(HAND_EDITED);
    assert_eq!(
        listed(&mut pve),
        [
            json!({"cidr": "1.2.3.4", "comment": "hand-edited"}),
            json!({"cidr": "2001:db8::1"}),
        ]
    );
}

#[test]
fn adding_the_address_of_a_hand_edited_slash32_answers_already_exists() {
    let mut pve = Cluster::from_cluster_fw(HAND_EDITED);
    let r = add(&mut pve, "1.2.3.4");
    assert_eq!(
        (r.status, r.reason.as_str()),
        (400, "Parameter verification failed.")
    );
    assert_eq!(
        body(&r)["errors"]["cidr"],
        "address '1.2.3.4' already exists"
    );
    assert_eq!(pve.saves(), 0, "nothing is written");
    assert_eq!(add(&mut pve, "2001:db8::1/128").status, 400);
}

#[test]
fn deleting_the_bare_address_removes_a_hand_edited_slash32() {
    let mut pve = Cluster::from_cluster_fw(HAND_EDITED);
    ok(&mut pve, "DELETE", &format!("{SET}/1.2.3.4"), &[]);
    assert_eq!(file(&pve), "[IPSET f2b]\n\n2001:db8::1\n\n");
}

#[test]
fn a_duplicate_made_by_reading_slash32_is_flagged_and_written_once() {
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n1.2.3.4\n1.2.3.4/32 # second\n\n");
    let duplicate = "duplicate ipset entry for '1.2.3.4'";
    assert_eq!(
        listed(&mut pve),
        [
            json!({"cidr": "1.2.3.4"}),
            json!({"cidr": "1.2.3.4", "comment": "second", "errors": {"cidr": duplicate}}),
        ]
    );
    assert_eq!(add(&mut pve, "5.6.7.8").status, 200);
    assert_eq!(file(&pve), "[IPSET f2b]\n\n1.2.3.4\n5.6.7.8\n\n");
}

// Item 2: lines PVE keeps that are not `[!]cidr`.

#[test]
fn a_line_that_is_not_one_token_is_kept_as_a_nomatch_entry_without_cidr() {
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n1.2.3.4 5.6.7.8\nnot an ip\n\n");
    let kept = json!({"nomatch": 1, "errors": {"cidr": LOOKS_BAD}});
    assert_eq!(listed(&mut pve), [kept.clone(), kept]);
    assert_eq!(add(&mut pve, "9.9.9.9").status, 200);
    // One line for both: the writer de-duplicates the undefined cidrs.
    assert_eq!(file(&pve), "[IPSET f2b]\n\n!\n9.9.9.9\n\n");
}

#[test]
fn a_bare_bang_is_kept_as_the_cidr_bang() {
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n!\n\n");
    assert_eq!(
        listed(&mut pve),
        [json!({"cidr": "!", "errors": {"cidr": LOOKS_BAD}})]
    );
    assert_eq!(add(&mut pve, "9.9.9.9").status, 200);
    assert_eq!(file(&pve), "[IPSET f2b]\n\n!\n9.9.9.9\n\n");
}

#[test]
fn such_a_line_takes_nomatch_from_its_comment_so_a_zero_comment_leaves_it_unset() {
    // Perl's `$1` after the failed match is the comment's capture.
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n1.2.3.4 5.6.7.8 # 0\n\n");
    assert_eq!(listed(&mut pve), [json!({"errors": {"cidr": LOOKS_BAD}})]);
    assert_eq!(add(&mut pve, "9.9.9.9").status, 200);
    assert_eq!(file(&pve), "[IPSET f2b]\n\n\n9.9.9.9\n\n");
}

// Item 3: other parser cases.

#[test]
fn slash33_in_the_file_is_no_error() {
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n1.2.3.4/33\n\n");
    assert_eq!(listed(&mut pve), [json!({"cidr": "1.2.3.4/33"})]);
}

#[test]
fn a_zero_prefix_in_the_file_is_an_error_ending_in_a_newline() {
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n10.0.0.0/0\n\n");
    let zero = "a zero prefix is not allowed in ipset entries\n";
    assert_eq!(
        listed(&mut pve),
        [json!({"cidr": "10.0.0.0/0", "errors": {"cidr": zero}})]
    );
}

#[test]
fn guest_and_dc_aliases_in_the_file_resolve_against_the_cluster_aliases() {
    let text = "[ALIASES]\n\noffice 192.0.2.0/24\n\n\
                [IPSET f2b]\n\nguest/office\ndc/OFFICE\nguest/nosuch\n\n";
    let mut pve = Cluster::from_cluster_fw(text);
    assert_eq!(
        listed(&mut pve),
        [
            json!({"cidr": "guest/office"}),
            json!({"cidr": "dc/OFFICE"}),
            json!({"cidr": "guest/nosuch", "errors": {"cidr": "no such alias 'nosuch'"}}),
        ]
    );
    // The API refuses `guest/` at datacenter level all the same.
    let r = add(&mut pve, "guest/office");
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "no such alias 'office'")
    );
}

#[test]
fn an_ipset_header_with_a_blank_before_its_bracket_opens_no_section() {
    let text = "[IPSET a1]\n\n1.1.1.1\n\n[IPSET f2b ]\n\n2.2.2.2\n\n";
    let mut pve = Cluster::from_cluster_fw(text);
    assert_eq!(pve.ipsets(), ["a1"]);
    let a1 = ok(&mut pve, "GET", "/cluster/firewall/ipset/a1", &[]);
    let cidrs: Vec<Value> = a1
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cidr"].clone())
        .collect();
    // The header line itself is an entry of a1, without cidr.
    assert_eq!(cidrs, [json!("1.1.1.1"), Value::Null, json!("2.2.2.2")]);
    assert_eq!(a1[1]["nomatch"], 1);
}

#[test]
fn no_break_spaces_at_line_ends_lose_their_second_byte() {
    // PVE trims lines with `\h`, which takes the byte 0xA0 of U+00A0 but
    // not its 0xC2; the comment then decodes to U+FFFD, and a cidr keeps
    // the lone 0xC2.
    let raw = b"[IPSET f2b]\n\n1.2.3.4 # note\xc2\xa0\n5.6.7.8\xc2\xa0\n\xc2\xa09.9.9.9\n\n";
    let mut pve = Cluster::from_cluster_fw(raw.to_vec());
    assert_eq!(
        listed(&mut pve),
        [
            json!({"cidr": "1.2.3.4", "comment": "note\u{fffd}"}),
            json!({"cidr": "5.6.7.8\u{c2}", "errors": {"cidr": LOOKS_BAD}}),
            json!({"cidr": "\u{c2}\u{a0}9.9.9.9", "errors": {"cidr": LOOKS_BAD}}),
        ]
    );
    assert_eq!(add(&mut pve, "3.3.3.3").status, 200);
    assert_eq!(
        pve.cluster_fw(),
        b"[IPSET f2b]\n\n1.2.3.4 # note\xef\xbf\xbd\n3.3.3.3\n5.6.7.8\xc2\n\xc2\xa09.9.9.9\n\n"
    );
}

// Item 4: every write rewrites the whole file.

#[test]
fn options_are_validated_and_rewritten_on_every_write() {
    let text = "[OPTIONS]\n\nPolicy_In: drop\nnosuch: 1\nenable: 1700000000\n\
                policy_out: ACCEPT\nLOG_RATELIMIT: enable=1\n\n[IPSET f2b]\n\n";
    let mut pve = Cluster::from_cluster_fw(text);
    pve.set_time(1_700_000_000 + 3600);
    assert_eq!(add(&mut pve, "1.2.3.4").status, 200);
    assert_eq!(
        file(&pve),
        "[OPTIONS]\n\nenable: 0\npolicy_in: DROP\npolicy_out: ACCEPT\n\n\
         [IPSET f2b]\n\n1.2.3.4\n\n"
    );
}

#[test]
fn an_enable_timestamp_within_a_minute_is_kept() {
    let mut pve = Cluster::from_cluster_fw("[OPTIONS]\n\nenable: 1700000000\n\n[IPSET f2b]\n\n");
    pve.set_time(1_700_000_030);
    assert_eq!(
        ok(&mut pve, "GET", "/cluster/firewall/options", &[])["enable"],
        1_700_000_000
    );
}

#[test]
fn aliases_are_normalised_on_write() {
    let text = "[ALIASES]\n\nOffice 192.0.2.0/24 # hq\nv6 2001:db8::1/128\nhost 10.0.0.1/32\n\
                OFFICE 192.0.2.0/25\nbad 999.1.1.1\n\n[IPSET f2b]\n\n";
    let mut pve = Cluster::from_cluster_fw(text);
    assert_eq!(add(&mut pve, "1.2.3.4").status, 200);
    assert_eq!(
        file(&pve),
        "[ALIASES]\n\nhost 10.0.0.1\nOFFICE 192.0.2.0/25\nv6 2001:db8::1\n\n\
         [IPSET f2b]\n\n1.2.3.4\n\n"
    );
}

#[test]
fn an_alias_line_of_another_shape_is_written_back_as_one_space() {
    // parse_alias returns undef, which PVE stores under the empty name.
    let mut pve = Cluster::from_cluster_fw("[ALIASES]\n\nlonely\ntwo  blanks\n\n[IPSET f2b]\n\n");
    assert_eq!(add(&mut pve, "1.2.3.4").status, 200);
    assert_eq!(file(&pve), "[ALIASES]\n\n \n\n[IPSET f2b]\n\n1.2.3.4\n\n");
}

#[test]
fn security_groups_and_rules_are_kept_and_rewritten_on_write() {
    let text = "# managed by hand\n[RULES]\n\nIN DROP -log nolog -source +dc/f2b\n\
                |IN SSH(ACCEPT) -i vmbr0\nIN ACCEPT -bogus 1\n\n\
                [group webs] # web servers\n\nIN ACCEPT -p tcp -dport 443 -i net0\nIN HTTP(ACCEPT)\n\n\
                [IPSET f2b]\n\n";
    let mut pve = Cluster::from_cluster_fw(text);
    assert_eq!(add(&mut pve, "1.2.3.4").status, 200);
    assert_eq!(
        file(&pve),
        "[IPSET f2b]\n\n1.2.3.4\n\n\
         [RULES]\n\nIN DROP -source +dc/f2b -log nolog\n|IN SSH(ACCEPT) -i vmbr0\n\n\
         [group webs] # web servers\n\nIN ACCEPT -p tcp -dport 443\nIN HTTP(ACCEPT)\n\n"
    );
}

#[test]
fn a_write_that_empties_the_file_deletes_it() {
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n");
    ok(&mut pve, "DELETE", SET, &[]);
    assert_eq!(pve.cluster_fw(), b"");
    assert_eq!(
        ok(&mut pve, "GET", "/cluster/firewall/ipset", &[]),
        json!([])
    );
}

// Item 5: an invalid log_ratelimit fails every call that reads the file.

#[test]
fn an_invalid_log_ratelimit_answers_every_firewall_call_500_format_error() {
    for (value, key, text) in [
        (
            "bogus",
            "enable",
            "type check ('boolean') failed - got 'bogus'",
        ),
        (
            "enable=1,rate=fast",
            "rate",
            "value does not match the regex pattern",
        ),
        (
            "burst=5",
            "enable",
            "property is missing and it is not optional",
        ),
    ] {
        let seed = format!("[OPTIONS]\n\nlog_ratelimit: {value}\n\n[IPSET f2b]\n\n1.2.3.4\n\n");
        let mut pve = Cluster::from_cluster_fw(seed.clone());
        for (method, path, params) in [
            ("GET", "/cluster/firewall/ipset", &[][..]),
            ("GET", SET, &[]),
            ("POST", SET, &[("cidr", "5.6.7.8")]),
            ("DELETE", &format!("{SET}/1.2.3.4"), &[]),
            ("GET", "/cluster/firewall/options", &[]),
            ("GET", "/cluster/firewall/rules", &[]),
        ] {
            let r = call(&mut pve, method, path, params);
            assert_eq!(
                (r.status, r.reason.as_str()),
                (500, "format error"),
                "{value}: {method} {path}"
            );
            assert_eq!(
                body(&r),
                json!({"data": null, "errors": {key: text}, "message": "format error\n"})
            );
        }
        assert_eq!(file(&pve), seed, "the file is left as it was");
        assert_eq!(ok(&mut pve, "GET", "/version", &[])["version"], "9.0.3");
    }
}

// Item 6: add-input edge cases.

#[test]
fn double_colon_for_a_single_group_is_refused_with_an_empty_format_error() {
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n");
    for cidr in ["1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7"] {
        let r = add(&mut pve, cidr);
        assert_eq!(r.status, 400, "{cidr}");
        assert_eq!(body(&r)["errors"]["cidr"], "invalid format - \n");
    }
}

#[test]
fn a_trailing_newline_is_stored_and_splits_its_line_on_write() {
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n");
    let r = call(
        &mut pve,
        "POST",
        SET,
        &[("cidr", "1.2.3.4\n"), ("comment", "x")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(file(&pve), "[IPSET f2b]\n\n1.2.3.4\n # x\n\n");
    // Read back, the comment is a full-line comment of its own.
    assert_eq!(listed(&mut pve), [json!({"cidr": "1.2.3.4"})]);
}

// The size of cluster.fw.

#[test]
fn ipset_section_bytes_is_what_the_file_holds() {
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n");
    for (cidr, comment) in [
        ("192.0.2.7", "sshd \u{e9}"),
        ("10.0.0.1/8", ""),
        ("2001:db8::/64", "0"),
    ] {
        let r = call(
            &mut pve,
            "POST",
            SET,
            &[("cidr", cidr), ("comment", comment)],
        );
        assert_eq!(r.status, 200);
    }
    let entries = listed(&mut pve);
    let triples = entries.iter().map(|e| {
        let cidr = e["cidr"].as_str().unwrap();
        (cidr, e["comment"].as_str(), e.get("nomatch").is_some())
    });
    assert_eq!(
        ipset_section_bytes("f2b", triples),
        pve.cluster_fw().len() as u64
    );
}

#[test]
fn a_write_beyond_the_size_cap_fails_and_keeps_the_file() {
    let mut pve = Cluster::from_cluster_fw("[IPSET f2b]\n\n")
        .max_file_size(40)
        .worker_pid(77);
    assert_eq!(add(&mut pve, "1.2.3.4").status, 200);
    let before = file(&pve);
    let r = call(
        &mut pve,
        "POST",
        SET,
        &[("cidr", "5.6.7.8"), ("comment", "far too long")],
    );
    assert_eq!(
        (r.status, r.reason.as_str()),
        (
            500,
            "unable to write '/etc/pve/firewall/cluster.fw.tmp.77' - File too large"
        )
    );
    assert_eq!(file(&pve), before);
}
