//! The desired set: who wants which entry banned, until when. One row per
//! (IPSet, entry, holder); an entry is wanted while any of its holders is
//! live, so sshd's unban does not lift recidive's week-long ban of the same
//! address.
//!
//! Holders: `jail:NAME` for a fail2ban jail, `jail:-` for a ban without
//! `--jail` (an admin at the shell), `dns:NAME` for the addresses of a host
//! name that `fail2pvefw dns` keeps in an accept list (not a ban: see
//! `state::dns`); later `crowdsec`. An unban names its jail's holder, or
//! `jail:*` (no `--jail`): every jail's.

use super::request::Request;
use rusqlite::{Connection, params};

/// The holder of an unban without `--jail`: it releases every `jail:*` holder.
pub const ALL_JAILS: &str = "jail:*";

/// What starts the holder of a host name's addresses (`dns:NAME`).
pub const DNS: &str = "dns:";

/// The holder of a host name's addresses: `dns:home.example.net`.
pub fn dns_holder(name: &str) -> String {
    format!("{DNS}{name}")
}

/// Whether a holder keeps a host name's addresses (an accept list's entry,
/// not a ban).
pub fn is_dns(holder: &str) -> bool {
    holder.starts_with(DNS)
}

/// One holder's wish.
#[derive(Clone, Debug)]
pub struct Desired {
    pub ipset: String,
    pub entry: String,
    pub holder: String,
    pub request: Request,
    /// Unix seconds; `None` is permanent.
    pub expires: Option<i64>,
}

impl Desired {
    pub fn is_live(&self, now: i64) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

/// The holder a command line stands for: its jail, else `jail:-` for a ban
/// and every jail ([`ALL_JAILS`]) for an unban.
pub fn jail_holder(jail: Option<&str>, ban: bool) -> String {
    match jail {
        Some(jail) => format!("jail:{jail}"),
        None if ban => "jail:-".to_string(),
        None => ALL_JAILS.to_string(),
    }
}

/// Words for a holder: `jail sshd`, `a ban without --jail`, `host name
/// home.example.net`.
pub fn describe(holder: &str) -> String {
    if let Some(name) = holder.strip_prefix(DNS) {
        return format!("host name {name}");
    }
    match holder.strip_prefix("jail:") {
        Some("-") => "a ban without --jail".to_string(),
        Some(jail) => format!("jail {jail}"),
        None => holder.to_string(),
    }
}

pub fn add(
    conn: &Connection,
    ipset: &str,
    entry: &str,
    holder: &str,
    request_json: &str,
    expires: Option<i64>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO desired (ipset, entry, holder, request, expires) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (ipset, entry, holder) DO UPDATE SET request = excluded.request, expires = excluded.expires",
        params![ipset, entry, holder, request_json, expires],
    )?;
    Ok(())
}

/// Removes `holder`'s wish for the entry ([`ALL_JAILS`]: every jail's).
pub fn release(conn: &Connection, ipset: &str, entry: &str, holder: &str) -> rusqlite::Result<()> {
    if holder == ALL_JAILS {
        conn.execute(
            "DELETE FROM desired WHERE ipset = ?1 AND entry = ?2 AND substr(holder, 1, 5) = 'jail:'",
            params![ipset, entry],
        )?;
    } else {
        conn.execute(
            "DELETE FROM desired WHERE ipset = ?1 AND entry = ?2 AND holder = ?3",
            params![ipset, entry, holder],
        )?;
    }
    Ok(())
}

/// `expires` as a number of seconds, NULL (permanent) when it is not one:
/// a garbled expiry must not lift a ban (the jail's unban still does).
pub const EXPIRES: &str = "(CASE typeof(expires) WHEN 'integer' THEN expires \
     WHEN 'real' THEN CAST(expires AS INTEGER) ELSE NULL END)";

fn read(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<Desired>> {
    let sql = format!(
        "SELECT ipset, entry, holder, request, {EXPIRES} FROM desired {filter}
         ORDER BY ipset, entry, holder"
    );
    let mut stmt = conn.prepare(&sql)?;
    stmt.query_map(args, |row| {
        let ipset: String = row.get(0)?;
        let entry: String = row.get(1)?;
        let holder: String = row.get(2)?;
        let json: String = row.get(3)?;
        let request =
            serde_json::from_str(&json).unwrap_or_else(|_| fallback(&ipset, &entry, &holder));
        Ok(Desired {
            request,
            ipset,
            entry,
            holder,
            expires: row.get(4)?,
        })
    })?
    .collect()
}

/// A request for a row whose JSON is unreadable: the entry itself, with the
/// holder's jail (or host name), permanent. Enough to re-add or remove it.
fn fallback(ipset: &str, entry: &str, holder: &str) -> Request {
    Request {
        ip: entry.to_string(),
        ipset: ipset.to_string(),
        jail: holder
            .strip_prefix("jail:")
            .filter(|j| *j != "-" && *j != "*")
            .map(str::to_string),
        dns: holder.strip_prefix(DNS).map(str::to_string),
        ..Request::default()
    }
}

/// Every row, live or not.
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<Desired>> {
    read(conn, "", [])
}

/// The holders of one entry that are still live at `now`, the longest first.
pub fn live(
    conn: &Connection,
    ipset: &str,
    entry: &str,
    now: i64,
) -> rusqlite::Result<Vec<Desired>> {
    let mut rows = read(
        conn,
        "WHERE ipset = ?1 AND entry = ?2",
        params![ipset, entry],
    )?;
    rows.retain(|d| d.is_live(now));
    rows.sort_by_key(|d| std::cmp::Reverse(d.expires.unwrap_or(i64::MAX)));
    Ok(rows)
}

/// The rows of the holders matching `holder` ([`ALL_JAILS`]: every jail).
pub fn of_holder(conn: &Connection, holder: &str) -> rusqlite::Result<Vec<Desired>> {
    if holder == ALL_JAILS {
        read(conn, "WHERE substr(holder, 1, 5) = 'jail:'", [])
    } else {
        read(conn, "WHERE holder = ?1", params![holder])
    }
}

/// Forgets the holders of `ipset` whose ban is over; returns how many.
pub fn forget_expired(conn: &Connection, ipset: &str, now: i64) -> rusqlite::Result<usize> {
    conn.execute(
        &format!("DELETE FROM desired WHERE ipset = ?1 AND {EXPIRES} <= ?2"),
        params![ipset, now],
    )
}

/// The IPSets anyone wants something in.
pub fn ipsets(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT ipset FROM desired ORDER BY ipset")?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::db::Db;

    #[test]
    fn an_entry_stays_wanted_while_any_holder_is_live() {
        let db = Db::in_memory();
        let c = db.conn();
        add(c, "f", "192.0.2.5", "jail:sshd", "{}", Some(100)).unwrap();
        add(c, "f", "192.0.2.5", "jail:recidive", "{}", Some(1000)).unwrap();
        add(c, "f", "192.0.2.5", "crowdsec", "{}", None).unwrap();
        let holders = |now| -> Vec<String> {
            live(c, "f", "192.0.2.5", now)
                .unwrap()
                .into_iter()
                .map(|d| d.holder)
                .collect()
        };
        assert_eq!(holders(50), ["crowdsec", "jail:recidive", "jail:sshd"]);
        assert_eq!(holders(500), ["crowdsec", "jail:recidive"]);
        release(c, "f", "192.0.2.5", "jail:recidive").unwrap();
        assert_eq!(holders(50), ["crowdsec", "jail:sshd"]);
        add(c, "f", "192.0.2.5", "jail:-", "{}", None).unwrap();
        release(c, "f", "192.0.2.5", ALL_JAILS).unwrap();
        assert_eq!(holders(50), ["crowdsec"]);
        assert_eq!(forget_expired(c, "f", 5000).unwrap(), 0);
    }

    #[test]
    fn an_unreadable_request_falls_back_to_the_entry() {
        let db = Db::in_memory();
        add(db.conn(), "f", "192.0.2.6", "jail:sshd", "not json", None).unwrap();
        let d = &all(db.conn()).unwrap()[0];
        assert_eq!(d.request.ip, "192.0.2.6");
        assert_eq!(d.request.jail.as_deref(), Some("sshd"));
    }

    #[test]
    fn holders_read_as_words() {
        assert_eq!(jail_holder(Some("sshd"), true), "jail:sshd");
        assert_eq!(jail_holder(None, true), "jail:-");
        assert_eq!(jail_holder(None, false), ALL_JAILS);
        assert_eq!(describe("jail:recidive"), "jail recidive");
        assert_eq!(describe("jail:-"), "a ban without --jail");
        assert_eq!(describe("crowdsec"), "crowdsec");
        assert_eq!(dns_holder("home.test"), "dns:home.test");
        assert_eq!(describe("dns:home.test"), "host name home.test");
        assert!(is_dns("dns:home.test") && !is_dns("jail:dns"));
    }

    #[test]
    fn an_unreadable_dns_row_stays_a_host_names() {
        let db = Db::in_memory();
        add(
            db.conn(),
            "trusted",
            "192.0.2.7",
            "dns:home.test",
            "{",
            None,
        )
        .unwrap();
        let d = &all(db.conn()).unwrap()[0];
        assert_eq!(d.request.dns.as_deref(), Some("home.test"));
        assert_eq!(d.request.jail, None);
    }
}
