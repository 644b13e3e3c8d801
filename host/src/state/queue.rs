//! The durable queue of ban and unban events in `state.db`, with the
//! desired set (`desired`: who wants what banned), the applied set
//! (`applied`: what PVE holds that we wrote) and the back-off per entry
//! (`holds`).
//!
//! An event is committed before the command returns to fail2ban; it leaves
//! the queue when it is settled. One process at a time drains the queue:
//! the one holding `drain.lock` (`locks`). The events of one (IPSet, entry)
//! are taken together, in commit order, and reduced to one decision from
//! the EFFECTIVE state ([`Group::decide`]): is the entry wanted now (a live
//! holder), and does PVE hold it. So a later unban can never overtake an
//! earlier ban, and what cancels is never sent.
//!
//! Over 400 lines with its tests, which stay here: the code alone is under
//! 400, and the tests are the queue's ordering rules, read best beside it.

use super::applied::{self, Applied, Change};
use super::db::Db;
use super::{desired, holds, meta};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

pub use super::request::{Request, now};

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

/// One queued event. `request` is `None` when its JSON is unreadable.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: i64,
    pub action: Action,
    pub holder: String,
    pub request: Option<Request>,
}

/// The ready events of one entry, in commit order.
#[derive(Debug)]
pub struct Group {
    pub ipset: String,
    pub entry: String,
    pub events: Vec<Event>,
    /// The lowest lane among its events: the queue sends lane 0 first.
    pub lane: i64,
}

/// Lanes: the queue sends the ready entries of a lower lane first, so a
/// fail2ban ban never waits behind thousands of CrowdSec decisions. An
/// entry's events stay together, in commit order, whatever their lanes.
pub const LANE_FAIL2BAN: i64 = 0;
/// CrowdSec's local decisions (its agents, `cscli`) and its removals.
pub const LANE_CROWDSEC_LOCAL: i64 = 1;
/// CrowdSec's community decisions (`CAPI`, `lists`).
pub const LANE_CROWDSEC_COMMUNITY: i64 = 2;

/// The one call a group needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    Ban(Request),
    Unban(Request),
}

impl Call {
    pub fn action(&self) -> Action {
        match self {
            Call::Ban(_) => Action::Ban,
            Call::Unban(_) => Action::Unban,
        }
    }

    pub fn request(&self) -> &Request {
        match self {
            Call::Ban(r) | Call::Unban(r) => r,
        }
    }
}

impl Group {
    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.events.iter().map(|e| e.id)
    }

    /// The id of the last event: the one a log line names.
    pub fn last_id(&self) -> i64 {
        self.events.last().map_or(0, |e| e.id)
    }

    fn requests(&self, action: Action) -> impl DoubleEndedIterator<Item = &Request> {
        self.events
            .iter()
            .filter(move |e| e.action == action)
            .filter_map(|e| e.request.as_ref())
    }

    /// What PVE must see, from the effective state:
    /// - wanted (a live holder, `wanted` is its request) and PVE does not
    ///   surely hold it, or a fresh (not restored) ban came: the policy's
    ///   ban with the latest ban request (else the holder's, as restored);
    /// - not wanted and PVE holds it or may hold it, or the events are
    ///   unbans only (PVE may hold it from before our state): the unban;
    /// - otherwise nothing (a ban and an unban that cancel before either
    ///   was sent; a restored ban of an entry PVE holds; a ban whose time
    ///   is already over).
    pub fn decide(&self, wanted: Option<&Request>, applied: Applied) -> Option<Call> {
        let fresh_ban = self.requests(Action::Ban).any(|r| !r.restored);
        let unbans_only = self.events.iter().all(|e| e.action == Action::Unban);
        match wanted {
            Some(holder) if applied != Applied::Certain || fresh_ban => {
                let req = self
                    .requests(Action::Ban)
                    .next_back()
                    .cloned()
                    .unwrap_or_else(|| Request {
                        restored: true,
                        ..holder.clone()
                    });
                Some(Call::Ban(req))
            }
            Some(_) => None,
            None if applied != Applied::No || unbans_only => {
                let req = self
                    .requests(Action::Unban)
                    .next_back()
                    .or_else(|| self.events.iter().rev().find_map(|e| e.request.as_ref()))
                    .cloned()
                    .unwrap_or_else(|| Request {
                        ip: self.entry.clone(),
                        ipset: self.ipset.clone(),
                        ..Request::default()
                    });
                Some(Call::Unban(Request {
                    restored: false,
                    ..req
                }))
            }
            None => None,
        }
    }
}

/// The meta key of the cluster this state serves (see `cluster`).
pub const CLUSTER_ID: &str = "cluster_id";

/// Commits an event and updates the desired set, in one transaction: a
/// ban adds (or renews) its holder's wish, an unban releases it. With
/// `bound`, only while the state still serves that cluster (`None`
/// otherwise: another configuration re-bound the empty state meanwhile).
/// Returns the event's id.
pub fn enqueue(
    db: &mut Db,
    action: Action,
    entry: &str,
    holder: &str,
    req: &Request,
    bound: Option<&str>,
) -> rusqlite::Result<Option<i64>> {
    let now = now();
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(bound) = bound
        && meta::get(&tx, CLUSTER_ID)?.as_deref() != Some(bound)
    {
        return Ok(None);
    }
    let id = insert(&tx, action, entry, holder, req, LANE_FAIL2BAN, now)?;
    tx.commit()?;
    Ok(Some(id))
}

/// Inside the caller's write transaction: commits one event of lane 0 and
/// its change to the desired set, as [`enqueue`] does (`state::dns` queues
/// a host name's whole change in one transaction with it). Returns the
/// event's id.
pub(super) fn put(
    tx: &Connection,
    action: Action,
    entry: &str,
    holder: &str,
    req: &Request,
    now: f64,
) -> rusqlite::Result<i64> {
    insert(tx, action, entry, holder, req, LANE_FAIL2BAN, now)
}

/// Inside the caller's transaction: commits one event in `lane` and
/// updates the desired set as [`enqueue`] does. Returns the event's id.
pub fn insert(
    tx: &Connection,
    action: Action,
    entry: &str,
    holder: &str,
    req: &Request,
    lane: i64,
    now: f64,
) -> rusqlite::Result<i64> {
    let json = serde_json::to_string(req).expect("a request serialises");
    tx.execute(
        "INSERT INTO events (action, ipset, entry, holder, request, created, lane) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![action.as_str(), req.ipset, entry, holder, json, now, lane],
    )?;
    let id = tx.last_insert_rowid();
    match action {
        Action::Ban => desired::add(tx, &req.ipset, entry, holder, &json, req.expires(now))?,
        Action::Unban => desired::release(tx, &req.ipset, entry, holder)?,
    }
    Ok(id)
}

/// Whether the state still serves cluster `bound` (inside a transaction).
pub fn still_bound(tx: &Connection, bound: &str) -> rusqlite::Result<bool> {
    Ok(meta::get(tx, CLUSTER_ID)?.as_deref() == Some(bound))
}

/// Whether an event of lane 0 came after event `id`: a pass sending a
/// later lane looks again, so fail2ban's ban goes next.
pub fn urgent_since(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM events WHERE id > ?1 AND lane = 0 AND failed = 0)",
        params![id],
        |row| row.get(0),
    )
}

/// The ready entries, at most `limit`, lane by lane, in the order of each
/// one's first pending event, each with all its pending events. An entry is ready when
/// no back-off holds it. Read in one snapshot, and only while the state
/// serves cluster `bound` (`None` otherwise). Events whose request is
/// unreadable are marked failed and left out.
pub fn ready(
    db: &mut Db,
    bound: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Option<Vec<Group>>> {
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Deferred)?;
    if let Some(bound) = bound
        && meta::get(&tx, CLUSTER_ID)?.as_deref() != Some(bound)
    {
        return Ok(None);
    }
    let mut stmt = tx.prepare(
        "WITH ready AS (
             SELECT e.ipset, e.entry, MIN(e.id) AS first, MIN(e.lane) AS lane FROM events e
             LEFT JOIN holds h ON h.ipset = e.ipset AND h.entry = e.entry
             WHERE e.failed = 0 AND (h.next_try IS NULL OR h.next_try <= ?1)
             GROUP BY e.ipset, e.entry ORDER BY lane, first LIMIT ?2)
         SELECT e.id, e.action, e.ipset, e.entry, e.holder, e.request, r.lane FROM events e
         JOIN ready r ON r.ipset = e.ipset AND r.entry = e.entry
         WHERE e.failed = 0 ORDER BY r.lane, r.first, e.id",
    )?;
    let rows = stmt
        .query_map(params![now(), limit as i64], |row| {
            let json: String = row.get(5)?;
            Ok((
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(6)?,
                Event {
                    id: row.get(0)?,
                    action: Action::parse(&row.get::<_, String>(1)?),
                    holder: row.get(4)?,
                    request: serde_json::from_str(&json).ok(),
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(stmt);
    tx.commit()?;
    let mut groups: Vec<Group> = Vec::new();
    let mut broken = Vec::new();
    for (ipset, entry, lane, event) in rows {
        if event.request.is_none() {
            broken.push(event.id);
            continue;
        }
        match groups.last_mut() {
            Some(g) if g.ipset == ipset && g.entry == entry => g.events.push(event),
            _ => groups.push(Group {
                ipset,
                entry,
                events: vec![event],
                lane,
            }),
        }
    }
    for id in broken {
        db.conn().execute(
            "UPDATE events SET failed = 1, last_error = ?2 WHERE id = ?1",
            params![
                id,
                "its request in the queue is unreadable (state.db was edited or damaged); dropped"
            ],
        )?;
    }
    Ok(Some(groups))
}

/// What became of a group's try.
#[derive(Clone, Copy, Debug)]
pub enum Fate<'a> {
    /// Settled (PVE did it, it needed no call, or it is someone else's):
    /// the events are gone.
    Done,
    /// It can never succeed: the events are kept, marked failed, for
    /// `status`; the entry is free for later events.
    Failed(&'a str),
    /// A later try may work: the events stay and the entry backs off.
    /// With `whole_queue`, the background drainer waits for everything.
    Held { error: &'a str, whole_queue: bool },
}

/// Settles a group's try in one transaction: its events' fate, its hold,
/// and what PVE now holds (`changes`: (IPSet, entry, change), applied in
/// order, so the writes the call recorded come after the fallback).
pub fn settle(
    db: &mut Db,
    group: &Group,
    fate: Fate,
    changes: &[(String, String, Change)],
) -> rusqlite::Result<()> {
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    match fate {
        Fate::Done => {
            for id in group.ids() {
                tx.execute("DELETE FROM events WHERE id = ?1", params![id])?;
            }
            holds::clear(&tx, &group.ipset, &group.entry)?;
            holds::release_queue(&tx)?;
        }
        Fate::Failed(error) => {
            for id in group.ids() {
                tx.execute(
                    "UPDATE events SET attempts = attempts + 1, failed = 1, last_error = ?2 WHERE id = ?1",
                    params![id, error],
                )?;
            }
            holds::clear(&tx, &group.ipset, &group.entry)?;
            meta::set(&tx, "last_error", error)?;
        }
        Fate::Held { error, whole_queue } => {
            for id in group.ids() {
                tx.execute(
                    "UPDATE events SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                    params![id, error],
                )?;
            }
            let wait = holds::back_off(&tx, &group.ipset, &group.entry, error)?;
            if whole_queue {
                holds::hold_queue(&tx, wait)?;
            }
            meta::set(&tx, "last_error", error)?;
        }
    }
    for (ipset, entry, change) in changes {
        applied::change(&tx, ipset, entry, change)?;
    }
    tx.commit()
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

/// Whether events for this entry wait in the queue (sync leaves those alone).
pub fn has_pending(conn: &Connection, ipset: &str, entry: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM events WHERE ipset = ?1 AND entry = ?2 AND failed = 0 LIMIT 1",
        params![ipset, entry],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::desired::{ALL_JAILS, jail_holder};

    fn req(ip: &str) -> Request {
        Request {
            ip: ip.into(),
            ipset: "f2b".into(),
            ..Request::default()
        }
    }

    fn jailed(ip: &str, jail: &str) -> Request {
        Request {
            jail: Some(jail.into()),
            ..req(ip)
        }
    }

    fn put(db: &mut Db, action: Action, r: &Request) -> i64 {
        let holder = jail_holder(r.jail.as_deref(), action == Action::Ban);
        enqueue(db, action, &r.ip, &holder, r, None)
            .unwrap()
            .unwrap()
    }

    fn groups(db: &mut Db) -> Vec<Group> {
        ready(db, None, 100).unwrap().unwrap()
    }

    fn decide(db: &mut Db, g: &Group) -> Option<Call> {
        let wanted = desired::live(db.conn(), &g.ipset, &g.entry, now() as i64).unwrap();
        let applied = applied::get(db.conn(), &g.ipset, &g.entry).unwrap();
        g.decide(wanted.first().map(|d| &d.request), applied)
    }

    fn action(call: Option<Call>) -> Option<Action> {
        call.map(|c| c.action())
    }

    #[test]
    fn ban_then_unban_before_sending_cancels() {
        let mut db = Db::in_memory();
        put(&mut db, Action::Ban, &req("192.0.2.1"));
        put(&mut db, Action::Unban, &req("192.0.2.1"));
        let gs = groups(&mut db);
        assert_eq!(gs.len(), 1);
        assert_eq!(decide(&mut db, &gs[0]), None);
        assert!(desired::all(db.conn()).unwrap().is_empty());
    }

    #[test]
    fn a_ban_that_may_have_landed_is_cancelled_by_sending_the_unban() {
        let mut db = Db::in_memory();
        put(&mut db, Action::Ban, &req("192.0.2.1"));
        put(&mut db, Action::Unban, &req("192.0.2.1"));
        applied::change(db.conn(), "f2b", "192.0.2.1", &Change::Uncertain).unwrap();
        let gs = groups(&mut db);
        assert_eq!(action(decide(&mut db, &gs[0])), Some(Action::Unban));
    }

    #[test]
    fn repeated_bans_make_one_call() {
        let mut db = Db::in_memory();
        for _ in 0..3 {
            put(&mut db, Action::Ban, &req("192.0.2.1"));
        }
        let gs = groups(&mut db);
        assert_eq!(gs.len(), 1);
        assert_eq!(gs[0].events.len(), 3);
        assert_eq!(action(decide(&mut db, &gs[0])), Some(Action::Ban));
        let added = [("f2b".into(), "192.0.2.1".into(), Change::Certain)];
        settle(&mut db, &gs[0], Fate::Done, &added).unwrap();
        assert_eq!(
            applied::get(db.conn(), "f2b", "192.0.2.1").unwrap(),
            Applied::Certain
        );
        assert!(groups(&mut db).is_empty());
        // A fresh ban of an applied entry is sent anyway (someone may have
        // removed it in PVE); a restored one is not.
        put(&mut db, Action::Ban, &req("192.0.2.1"));
        let gs = groups(&mut db);
        assert_eq!(action(decide(&mut db, &gs[0])), Some(Action::Ban));
        settle(&mut db, &gs[0], Fate::Done, &[]).unwrap();
        put(
            &mut db,
            Action::Ban,
            &Request {
                restored: true,
                ..req("192.0.2.1")
            },
        );
        let gs = groups(&mut db);
        assert_eq!(decide(&mut db, &gs[0]), None);
    }

    #[test]
    fn lone_unban_is_sent_even_if_not_known_applied() {
        // PVE may hold it from before our state existed.
        let mut db = Db::in_memory();
        put(&mut db, Action::Unban, &req("192.0.2.1"));
        let gs = groups(&mut db);
        assert_eq!(action(decide(&mut db, &gs[0])), Some(Action::Unban));
    }

    #[test]
    fn an_unban_of_one_jail_leaves_another_jails_ban() {
        let mut db = Db::in_memory();
        put(&mut db, Action::Ban, &jailed("192.0.2.5", "sshd"));
        put(&mut db, Action::Ban, &jailed("192.0.2.5", "recidive"));
        let gs = groups(&mut db);
        settle(
            &mut db,
            &gs[0],
            Fate::Done,
            &[("f2b".into(), "192.0.2.5".into(), Change::Certain)],
        )
        .unwrap();
        put(&mut db, Action::Unban, &jailed("192.0.2.5", "sshd"));
        let gs = groups(&mut db);
        assert_eq!(decide(&mut db, &gs[0]), None, "recidive still holds it");
        settle(&mut db, &gs[0], Fate::Done, &[]).unwrap();
        // An unban without --jail releases every jail.
        put(&mut db, Action::Unban, &req("192.0.2.5"));
        assert_eq!(gs[0].events[0].holder, "jail:sshd");
        let gs = groups(&mut db);
        assert_eq!(gs[0].events[0].holder, ALL_JAILS);
        assert_eq!(action(decide(&mut db, &gs[0])), Some(Action::Unban));
    }

    #[test]
    fn a_held_entry_holds_its_later_events_and_not_others() {
        let mut db = Db::in_memory();
        put(&mut db, Action::Ban, &req("192.0.2.1"));
        let gs = groups(&mut db);
        let held = Fate::Held {
            error: "down",
            whole_queue: false,
        };
        settle(&mut db, &gs[0], held, &[]).unwrap();
        put(&mut db, Action::Unban, &req("192.0.2.1"));
        put(&mut db, Action::Ban, &req("192.0.2.2"));
        let gs = groups(&mut db);
        assert_eq!(gs.len(), 1);
        assert_eq!(gs[0].entry, "192.0.2.2");
        holds::release_all(db.conn()).unwrap();
        let gs = groups(&mut db);
        assert_eq!(gs.len(), 2);
        assert_eq!((gs[0].entry.as_str(), gs[0].events.len()), ("192.0.2.1", 2));
    }

    #[test]
    fn groups_keep_first_seen_order() {
        let mut db = Db::in_memory();
        for ip in ["192.0.2.2", "192.0.2.1", "192.0.2.2"] {
            put(&mut db, Action::Ban, &req(ip));
        }
        let order: Vec<_> = groups(&mut db).into_iter().map(|g| g.entry).collect();
        assert_eq!(order, ["192.0.2.2", "192.0.2.1"]);
    }

    #[test]
    fn a_lower_lane_goes_first_and_an_entry_keeps_its_events_together() {
        let mut db = Db::in_memory();
        let community = |db: &mut Db, ip: &str, action: Action| {
            let tx = db.conn_mut().transaction().unwrap();
            insert(
                &tx,
                action,
                ip,
                "crowdsec",
                &req(ip),
                LANE_CROWDSEC_COMMUNITY,
                now(),
            )
            .unwrap();
            tx.commit().unwrap();
        };
        community(&mut db, "192.0.2.1", Action::Ban);
        community(&mut db, "192.0.2.2", Action::Ban);
        let newest = 2;
        assert!(!urgent_since(db.conn(), newest).unwrap());
        put(&mut db, Action::Ban, &req("192.0.2.3"));
        // A fail2ban unban of a CrowdSec entry joins that entry's group.
        put(&mut db, Action::Unban, &req("192.0.2.2"));
        assert!(urgent_since(db.conn(), newest).unwrap());
        let gs = groups(&mut db);
        let order: Vec<(&str, i64, usize)> = gs
            .iter()
            .map(|g| (g.entry.as_str(), g.lane, g.events.len()))
            .collect();
        assert_eq!(
            order,
            [
                ("192.0.2.2", 0, 2),
                ("192.0.2.3", 0, 1),
                ("192.0.2.1", 2, 1)
            ]
        );
        assert_eq!(gs[0].events[0].action, Action::Ban);
    }

    #[test]
    fn failed_events_stop_and_unreadable_ones_are_dropped() {
        let mut db = Db::in_memory();
        let id = put(&mut db, Action::Ban, &req("192.0.2.1"));
        let gs = groups(&mut db);
        settle(
            &mut db,
            &gs[0],
            Fate::Held {
                error: "down",
                whole_queue: true,
            },
            &[],
        )
        .unwrap();
        assert_eq!(
            event_state(&db, id).unwrap(),
            EventState::Pending(Some("down".into()))
        );
        assert!(holds::queue_held_until(db.conn()).unwrap().is_some());
        settle(&mut db, &gs[0], Fate::Failed("refused"), &[]).unwrap();
        assert_eq!(
            event_state(&db, id).unwrap(),
            EventState::Failed("refused".into())
        );
        let bad = put(&mut db, Action::Ban, &req("192.0.2.3"));
        db.conn()
            .execute(
                "UPDATE events SET request = '{nope' WHERE id = ?1",
                params![bad],
            )
            .unwrap();
        assert!(groups(&mut db).is_empty());
        assert!(
            matches!(event_state(&db, bad).unwrap(), EventState::Failed(e) if e.contains("unreadable"))
        );
        let stats = crate::state::stats::stats(&db).unwrap();
        assert_eq!((stats.pending, stats.failed), (0, 2));
    }

    #[test]
    fn a_rebound_state_takes_no_event_and_gives_none() {
        let mut db = Db::in_memory();
        meta::set(db.conn(), CLUSTER_ID, "a").unwrap();
        let r = req("192.0.2.1");
        assert!(
            enqueue(&mut db, Action::Ban, &r.ip, "jail:-", &r, Some("a"))
                .unwrap()
                .is_some()
        );
        assert!(
            enqueue(&mut db, Action::Ban, &r.ip, "jail:-", &r, Some("b"))
                .unwrap()
                .is_none()
        );
        assert!(ready(&mut db, Some("b"), 10).unwrap().is_none());
        assert_eq!(ready(&mut db, Some("a"), 10).unwrap().unwrap().len(), 1);
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
