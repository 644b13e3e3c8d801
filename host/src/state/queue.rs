//! The durable queue of ban and unban events, the desired set (what fail2ban
//! wants banned) and the applied set (what PVE confirmed), in `state.db`.
//!
//! An event is committed before the command returns to fail2ban; it leaves
//! the queue only when PVE confirmed it (or refused it for good). One
//! process at a time drains the queue: the one holding `drain.lock`
//! (`locks`).
//!
//! Over 400 lines with its tests, which stay here: the code alone is under
//! 400, and the tests are the queue's ordering rules, read best beside it.

use super::db::Db;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Ban,
    Unban,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ban => "ban",
            Action::Unban => "unban",
        }
    }

    fn parse(text: &str) -> Action {
        if text == "ban" {
            Action::Ban
        } else {
            Action::Unban
        }
    }
}

/// A ban or unban as fail2ban gave it; kept as JSON in the queue so a later
/// process can replay it exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub ip: String,
    pub ipset: String,
    pub jail: Option<String>,
    pub comment: Option<String>,
    pub time: Option<f64>,
    pub bantime: Option<i64>,
    pub failures: Option<u32>,
    pub restored: bool,
}

impl Request {
    /// When the ban ends, from its start and length; `None` is permanent.
    pub fn expires(&self, now: f64) -> Option<i64> {
        let bantime = self.bantime.filter(|&t| t >= 0)?;
        let start = self
            .time
            .filter(|t| t.is_finite() && *t > 0.0)
            .unwrap_or(now);
        Some(start as i64 + bantime)
    }
}

/// One queued event.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: i64,
    pub action: Action,
    pub ipset: String,
    pub entry: String,
    pub request: Request,
    pub attempts: u32,
}

/// Consecutive events for one entry, reduced to what PVE must see.
#[derive(Debug)]
pub struct Group {
    pub ipset: String,
    pub entry: String,
    /// The ids it covers, all removed together.
    pub ids: Vec<i64>,
    /// The last event: its action is the one that counts.
    pub last: Event,
    /// Whether a ban in this group was cancelled by a later unban, or the
    /// other way round.
    pub mixed: bool,
}

impl Group {
    /// The call to make, or `None` when nothing needs sending:
    /// - a ban fail2ban restored at its start, of an entry PVE already holds;
    /// - a ban and an unban that cancel before either was sent.
    ///
    /// A fresh ban of an entry we believe applied is sent anyway: someone may
    /// have removed it in PVE, and "already exists" costs one request.
    pub fn call(&self, applied: bool) -> Option<Action> {
        match self.last.action {
            Action::Ban if applied && self.last.request.restored => None,
            Action::Unban if !applied && self.mixed => None,
            action => Some(action),
        }
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Commits an event and updates the desired set, in one transaction.
/// Returns the event's id.
pub fn enqueue(db: &mut Db, action: Action, entry: &str, req: &Request) -> rusqlite::Result<i64> {
    let now = now();
    let json = serde_json::to_string(req).expect("a request serialises");
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO events (action, ipset, entry, request, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![action.as_str(), req.ipset, entry, json, now],
    )?;
    let id = tx.last_insert_rowid();
    match action {
        Action::Ban => tx.execute(
            "INSERT INTO desired (ipset, entry, request, jail, expires) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (ipset, entry) DO UPDATE SET request = excluded.request,
                 jail = excluded.jail, expires = excluded.expires",
            params![req.ipset, entry, json, req.jail, req.expires(now)],
        )?,
        Action::Unban => tx.execute(
            "DELETE FROM desired WHERE ipset = ?1 AND entry = ?2",
            params![req.ipset, entry],
        )?,
    };
    tx.commit()?;
    Ok(id)
}

/// Pending events that may be tried now, oldest first, grouped per entry in
/// the order of each entry's first event.
pub fn ready_groups(db: &Db, limit: usize) -> rusqlite::Result<Vec<Group>> {
    let mut stmt = db.conn().prepare(
        "SELECT id, action, ipset, entry, request, attempts FROM events
         WHERE failed = 0 AND next_try <= ?1 ORDER BY id LIMIT ?2",
    )?;
    let events = stmt
        .query_map(params![now(), limit as i64], |row| {
            let json: String = row.get(4)?;
            Ok(Event {
                id: row.get(0)?,
                action: Action::parse(&row.get::<_, String>(1)?),
                ipset: row.get(2)?,
                entry: row.get(3)?,
                request: serde_json::from_str(&json).unwrap_or_default(),
                attempts: row.get::<_, i64>(5)? as u32,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(group(events))
}

/// Groups events per (ipset, entry), keeping first-seen order.
pub fn group(events: Vec<Event>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for event in events {
        let key = (event.ipset.clone(), event.entry.clone());
        match index.get(&key) {
            Some(&i) => {
                let g: &mut Group = &mut groups[i];
                g.mixed |= g.last.action != event.action;
                g.ids.push(event.id);
                g.last = event;
            }
            None => {
                index.insert(key, groups.len());
                groups.push(Group {
                    ipset: event.ipset.clone(),
                    entry: event.entry.clone(),
                    ids: vec![event.id],
                    last: event,
                    mixed: false,
                });
            }
        }
    }
    groups
}

pub fn is_applied(db: &Db, ipset: &str, entry: &str) -> rusqlite::Result<bool> {
    db.conn()
        .query_row(
            "SELECT 1 FROM applied WHERE ipset = ?1 AND entry = ?2",
            params![ipset, entry],
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
}

/// PVE confirmed the group's outcome: drop its events, record the state.
pub fn complete(db: &mut Db, group: &Group, now_applied: bool) -> rusqlite::Result<()> {
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    for id in &group.ids {
        tx.execute("DELETE FROM events WHERE id = ?1", params![id])?;
    }
    set_applied_in(&tx, &group.ipset, &group.entry, now_applied)?;
    tx.commit()
}

/// Records what PVE holds for one entry, outside the queue (`sync`).
pub fn set_applied(db: &Db, ipset: &str, entry: &str, applied: bool) -> rusqlite::Result<()> {
    set_applied_in(db.conn(), ipset, entry, applied)
}

fn set_applied_in(
    conn: &rusqlite::Connection,
    ipset: &str,
    entry: &str,
    applied: bool,
) -> rusqlite::Result<()> {
    if applied {
        conn.execute(
            "INSERT OR IGNORE INTO applied (ipset, entry) VALUES (?1, ?2)",
            params![ipset, entry],
        )?;
    } else {
        conn.execute(
            "DELETE FROM applied WHERE ipset = ?1 AND entry = ?2",
            params![ipset, entry],
        )?;
    }
    Ok(())
}

/// A try failed in a way a later try may fix: keep the events, back off.
pub fn postpone(db: &Db, group: &Group, error: &str, delay_secs: f64) -> rusqlite::Result<()> {
    let next = now() + delay_secs;
    for id in &group.ids {
        db.conn().execute(
            "UPDATE events SET attempts = attempts + 1, next_try = ?2, last_error = ?3 WHERE id = ?1",
            params![id, next, error],
        )?;
    }
    set_meta(db, "last_error", error)
}

/// PVE refused the group for good (a 400 other than "already exists"): keep
/// the events, marked failed, for `status` to show; stop trying them.
pub fn fail(db: &Db, group: &Group, error: &str) -> rusqlite::Result<()> {
    for id in &group.ids {
        db.conn().execute(
            "UPDATE events SET attempts = attempts + 1, failed = 1, last_error = ?2 WHERE id = ?1",
            params![id, error],
        )?;
    }
    set_meta(db, "last_error", error)
}

/// The state of one event: gone (done), pending with an error, or failed.
#[derive(Debug, PartialEq, Eq)]
pub enum EventState {
    Done,
    Pending(Option<String>),
    Failed(String),
}

pub fn event_state(db: &Db, id: i64) -> rusqlite::Result<EventState> {
    let row = db
        .conn()
        .query_row(
            "SELECT failed, last_error FROM events WHERE id = ?1",
            params![id],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<String>>(1)?)),
        )
        .optional()?;
    Ok(match row {
        None => EventState::Done,
        Some((1, error)) => EventState::Failed(error.unwrap_or_default()),
        Some((_, error)) => EventState::Pending(error),
    })
}

/// A desired ban, for `sync`.
#[derive(Debug)]
pub struct Desired {
    pub ipset: String,
    pub entry: String,
    pub request: Request,
    pub jail: Option<String>,
    pub expires: Option<i64>,
}

pub fn desired(db: &Db) -> rusqlite::Result<Vec<Desired>> {
    let mut stmt = db.conn().prepare(
        "SELECT ipset, entry, request, jail, expires FROM desired ORDER BY ipset, entry",
    )?;
    stmt.query_map([], |row| {
        let json: String = row.get(2)?;
        Ok(Desired {
            ipset: row.get(0)?,
            entry: row.get(1)?,
            request: serde_json::from_str(&json).unwrap_or_default(),
            jail: row.get(3)?,
            expires: row.get(4)?,
        })
    })?
    .collect()
}

pub fn forget_desired(db: &Db, ipset: &str, entry: &str) -> rusqlite::Result<()> {
    db.conn().execute(
        "DELETE FROM desired WHERE ipset = ?1 AND entry = ?2",
        params![ipset, entry],
    )?;
    Ok(())
}

/// Whether events for this entry wait in the queue (sync leaves those alone).
pub fn has_pending(db: &Db, ipset: &str, entry: &str) -> rusqlite::Result<bool> {
    db.conn()
        .query_row(
            "SELECT 1 FROM events WHERE ipset = ?1 AND entry = ?2 AND failed = 0 LIMIT 1",
            params![ipset, entry],
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
}

/// Queue figures for `status`.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub pending: u64,
    pub failed: u64,
    pub oldest_pending_age_secs: Option<f64>,
    pub desired: u64,
    pub last_error: Option<String>,
}

pub fn stats(db: &Db) -> rusqlite::Result<Stats> {
    let conn = db.conn();
    let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0).map(|n| n as u64));
    let oldest: Option<f64> = conn.query_row(
        "SELECT MIN(created) FROM events WHERE failed = 0",
        [],
        |row| row.get(0),
    )?;
    Ok(Stats {
        pending: count("SELECT COUNT(*) FROM events WHERE failed = 0")?,
        failed: count("SELECT COUNT(*) FROM events WHERE failed = 1")?,
        oldest_pending_age_secs: oldest.map(|t| (now() - t).max(0.0)),
        desired: count("SELECT COUNT(*) FROM desired")?,
        last_error: get_meta(db, "last_error")?,
    })
}

pub fn set_meta(db: &Db, key: &str, value: &str) -> rusqlite::Result<()> {
    db.conn().execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

pub fn get_meta(db: &Db, key: &str) -> rusqlite::Result<Option<String>> {
    db.conn()
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            params![key],
            |row| row.get(0),
        )
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ip: &str) -> Request {
        Request {
            ip: ip.into(),
            ipset: "f2b".into(),
            ..Request::default()
        }
    }

    #[test]
    fn ban_then_unban_before_sending_cancels() {
        let mut db = Db::in_memory();
        enqueue(&mut db, Action::Ban, "192.0.2.1", &req("192.0.2.1")).unwrap();
        enqueue(&mut db, Action::Unban, "192.0.2.1", &req("192.0.2.1")).unwrap();
        let groups = ready_groups(&db, 100).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].call(false), None);
        assert!(desired(&db).unwrap().is_empty());
    }

    #[test]
    fn repeated_bans_make_one_call() {
        let mut db = Db::in_memory();
        for _ in 0..3 {
            enqueue(&mut db, Action::Ban, "192.0.2.1", &req("192.0.2.1")).unwrap();
        }
        let groups = ready_groups(&db, 100).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].ids.len(), 3);
        assert_eq!(groups[0].call(false), Some(Action::Ban));
        assert_eq!(groups[0].call(true), Some(Action::Ban));
        complete(&mut db, &groups[0], true).unwrap();
        assert!(is_applied(&db, "f2b", "192.0.2.1").unwrap());
        assert!(ready_groups(&db, 100).unwrap().is_empty());
    }

    #[test]
    fn restored_ban_of_an_applied_entry_is_not_sent() {
        let mut db = Db::in_memory();
        let mut restored = req("192.0.2.1");
        restored.restored = true;
        enqueue(&mut db, Action::Ban, "192.0.2.1", &restored).unwrap();
        let groups = ready_groups(&db, 100).unwrap();
        assert_eq!(groups[0].call(true), None);
        assert_eq!(groups[0].call(false), Some(Action::Ban));
    }

    #[test]
    fn lone_unban_is_sent_even_if_not_known_applied() {
        // PVE may hold it from before our state existed; DELETE is idempotent.
        let mut db = Db::in_memory();
        enqueue(&mut db, Action::Unban, "192.0.2.1", &req("192.0.2.1")).unwrap();
        let groups = ready_groups(&db, 100).unwrap();
        assert_eq!(groups[0].call(false), Some(Action::Unban));
    }

    #[test]
    fn groups_keep_first_seen_order() {
        let mut db = Db::in_memory();
        for ip in ["192.0.2.2", "192.0.2.1", "192.0.2.2"] {
            enqueue(&mut db, Action::Ban, ip, &req(ip)).unwrap();
        }
        let groups = ready_groups(&db, 100).unwrap();
        let order: Vec<_> = groups.iter().map(|g| g.entry.as_str()).collect();
        assert_eq!(order, ["192.0.2.2", "192.0.2.1"]);
    }

    #[test]
    fn postponed_events_wait_and_failed_ones_stop() {
        let mut db = Db::in_memory();
        let id = enqueue(&mut db, Action::Ban, "192.0.2.1", &req("192.0.2.1")).unwrap();
        let groups = ready_groups(&db, 100).unwrap();
        postpone(&db, &groups[0], "down", 60.0).unwrap();
        assert!(ready_groups(&db, 100).unwrap().is_empty());
        assert_eq!(
            event_state(&db, id).unwrap(),
            EventState::Pending(Some("down".into()))
        );
        fail(&db, &groups[0], "refused").unwrap();
        assert_eq!(
            event_state(&db, id).unwrap(),
            EventState::Failed("refused".into())
        );
        let stats = stats(&db).unwrap();
        assert_eq!((stats.pending, stats.failed), (0, 1));
        assert_eq!(stats.last_error.as_deref(), Some("refused"));
    }

    #[test]
    fn expiry_from_time_and_bantime() {
        let mut r = req("192.0.2.1");
        assert_eq!(r.expires(100.0), None);
        r.bantime = Some(600);
        assert_eq!(r.expires(100.0), Some(700));
        r.time = Some(50.5);
        assert_eq!(r.expires(100.0), Some(650));
        r.bantime = Some(-1);
        assert_eq!(r.expires(100.0), None);
    }
}
