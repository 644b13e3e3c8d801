//! The tables of `state.db` (schema version 3, kept in `PRAGMA
//! user_version`) and the migrations from versions 1 and 2.
//!
//! Version 1 (fail2pvefw 0.1) kept the back-off on each event and one
//! desired row per entry; version 2 keeps the back-off per entry (`holds`:
//! while an entry is held, none of its events is sent, so a later unban can
//! never overtake an earlier ban), one desired row per holder (`jail:NAME`),
//! and what PVE holds of ours with the comment we wrote and whether we are
//! sure (`applied.certain`: 0 after a ban whose answer never came back).
//! Version 3 adds the lane of each event (fail2ban's before CrowdSec's, so
//! a ban never waits behind a blocklist) and the CrowdSec decisions the
//! LAPI holds (`crowdsec_decisions`, see `state::crowdsec`).

use rusqlite::Connection;
use std::time::Duration;

/// Bumped when `SCHEMA` changes; kept in `PRAGMA user_version`.
pub const VERSION: i64 = 3;

/// Version 3, created `IF NOT EXISTS` so racing processes agree.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS policy_store (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

-- Ban and unban events not yet settled, in commit order. The events of one
-- entry take effect in that order; they are sent as one decision.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL CHECK (action IN ('ban', 'unban')),
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,            -- the exact string PVE stores
    holder TEXT NOT NULL,           -- who asks: jail:NAME, jail:- (no --jail), jail:* (unban of all jails)
    request TEXT NOT NULL,          -- the request as JSON
    created REAL NOT NULL,          -- Unix seconds
    attempts INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,  -- 1: dropped (PVE or the host refused it for good)
    last_error TEXT,
    lane INTEGER NOT NULL DEFAULT 0 -- 0 fail2ban and the rest, 1 CrowdSec local, 2 CrowdSec community
);
CREATE INDEX IF NOT EXISTS events_by_entry ON events (ipset, entry);

-- Back-off per entry: while next_try is ahead, none of its events is sent.
CREATE TABLE IF NOT EXISTS holds (
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,
    next_try REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (ipset, entry)
) WITHOUT ROWID;

-- Who wants an entry banned now, until when; an entry stays in PVE while
-- any live holder remains. `sync` re-adds what PVE lacks.
CREATE TABLE IF NOT EXISTS desired (
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,
    holder TEXT NOT NULL,
    request TEXT NOT NULL,
    expires INTEGER,                -- Unix seconds; NULL: permanent
    PRIMARY KEY (ipset, entry, holder)
) WITHOUT ROWID;

-- What PVE holds that we wrote: certain = 1 PVE confirmed it, 0 it may be
-- there (a ban whose answer never came back).
CREATE TABLE IF NOT EXISTS applied (
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,
    comment TEXT,
    certain INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (ipset, entry)
) WITHOUT ROWID;

-- The CrowdSec decisions the LAPI holds for our filters, one per
-- (scope, value, type) as the LAPI keeps them, and what became of each.
CREATE TABLE IF NOT EXISTS crowdsec_decisions (
    scope TEXT NOT NULL,            -- 'Ip' | 'Range', as the LAPI said it
    value TEXT NOT NULL,            -- verbatim
    type TEXT NOT NULL,             -- 'ban', ...
    lapi_id INTEGER NOT NULL,       -- the last id seen for it
    origin TEXT NOT NULL,
    scenario TEXT NOT NULL,
    expires INTEGER NOT NULL,       -- Unix seconds: arrival + duration
    seen INTEGER NOT NULL,          -- Unix seconds it first came
    entry TEXT,                     -- what PVE would store; NULL until validated or when invalid
    verdict TEXT NOT NULL DEFAULT 'new', -- new | chosen | over-entries | over-bytes | aggregated | invalid | rule
    why TEXT,                       -- words for status
    generation INTEGER NOT NULL,    -- the full pull that last listed it
    PRIMARY KEY (scope, value, type)
);
CREATE INDEX IF NOT EXISTS crowdsec_decisions_by_entry ON crowdsec_decisions (entry);

-- last_error, the cluster this state serves, the nodes' addresses, counters.
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

/// Version 1 to 2, inside the caller's transaction. Events keep their ids
/// and order; a pending event's back-off becomes its entry's hold; each
/// desired row gets the holder of its jail; applied rows are certain.
const FROM_V1: &str = "
CREATE TABLE events_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL CHECK (action IN ('ban', 'unban')),
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,
    holder TEXT NOT NULL,
    request TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
INSERT INTO events_v2 (id, action, ipset, entry, holder, request, created, attempts, failed, last_error)
    SELECT id, action, ipset, entry,
        CASE
            WHEN json_valid(request) AND json_type(request, '$.jail') = 'text'
                THEN 'jail:' || json_extract(request, '$.jail')
            WHEN action = 'ban' THEN 'jail:-'
            ELSE 'jail:*'
        END,
        request, created, attempts, failed, last_error
    FROM events;
CREATE TABLE holds (
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,
    next_try REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (ipset, entry)
) WITHOUT ROWID;
INSERT INTO holds (ipset, entry, next_try, attempts, last_error)
    SELECT ipset, entry, MAX(next_try), MAX(attempts),
        (SELECT last_error FROM events l WHERE l.ipset = e.ipset AND l.entry = e.entry
            AND l.last_error IS NOT NULL ORDER BY l.id DESC LIMIT 1)
    FROM events e WHERE failed = 0 AND next_try > 0 GROUP BY ipset, entry;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_by_entry ON events (ipset, entry);

CREATE TABLE desired_v2 (
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,
    holder TEXT NOT NULL,
    request TEXT NOT NULL,
    expires INTEGER,
    PRIMARY KEY (ipset, entry, holder)
) WITHOUT ROWID;
INSERT INTO desired_v2 (ipset, entry, holder, request, expires)
    SELECT ipset, entry, 'jail:' || COALESCE(jail, '-'), request, expires FROM desired;
DROP TABLE desired;
ALTER TABLE desired_v2 RENAME TO desired;

ALTER TABLE applied ADD COLUMN comment TEXT;
ALTER TABLE applied ADD COLUMN certain INTEGER NOT NULL DEFAULT 1;
";

/// Version 2 to 3: every queued event is fail2ban's (lane 0); the
/// CrowdSec table is created by [`SCHEMA`].
const FROM_V2: &str = "
ALTER TABLE events ADD COLUMN lane INTEGER NOT NULL DEFAULT 0;
";

/// Brings a database to [`VERSION`]: creates the tables of a new one, or
/// migrates a version 1 one, in one transaction, once; later opens only
/// read `user_version`. Many processes may race to create or migrate;
/// the one that gets the write lock first does it, the others see it done.
/// Switching to WAL can answer "busy" without waiting, so it is retried.
pub fn prepare(conn: &Connection) -> Result<(), String> {
    let version = user_version(conn).map_err(|e| e.to_string())?;
    if version == VERSION {
        return Ok(());
    }
    check_known(version)?;
    let mut tries = 0;
    loop {
        let result = conn
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|_| conn.execute_batch("BEGIN IMMEDIATE"))
            .and_then(|_| upgrade(conn));
        match result {
            Ok(Ok(())) => return conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
            Ok(Err(refused)) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(refused);
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 100 =>
            {
                let _ = conn.execute_batch("ROLLBACK");
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.to_string());
            }
        }
    }
}

/// Inside the write transaction: looks at the version again (another
/// process may have done it meanwhile) and does what is left.
fn upgrade(conn: &Connection) -> rusqlite::Result<Result<(), String>> {
    let version = user_version(conn)?;
    if let Err(refused) = check_known(version) {
        return Ok(Err(refused));
    }
    if version == 1 {
        conn.execute_batch(FROM_V1)?;
    }
    if version == 1 || version == 2 {
        conn.execute_batch(FROM_V2)?;
    }
    if version != VERSION {
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", VERSION)?;
    }
    Ok(Ok(()))
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// 0 (a new file), 1 and 2 (migrated) and 3 are known; a later version was
/// written by a newer fail2pvefw, whose events we must not misread.
fn check_known(version: i64) -> Result<(), String> {
    if (0..=VERSION).contains(&version) {
        return Ok(());
    }
    Err(format!(
        "it has schema version {version}, written by a newer fail2pvefw (this one knows up to {VERSION}); \
         its queued events are kept as they are"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version 1 exactly as fail2pvefw 0.1 created it.
    const V1: &str = "
        CREATE TABLE policy_store (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (namespace, key)) WITHOUT ROWID;
        CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT,
            action TEXT NOT NULL CHECK (action IN ('ban', 'unban')), ipset TEXT NOT NULL,
            entry TEXT NOT NULL, request TEXT NOT NULL, created REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0, last_error TEXT);
        CREATE INDEX events_by_entry ON events (ipset, entry);
        CREATE TABLE desired (ipset TEXT NOT NULL, entry TEXT NOT NULL, request TEXT NOT NULL,
            jail TEXT, expires INTEGER, PRIMARY KEY (ipset, entry)) WITHOUT ROWID;
        CREATE TABLE applied (ipset TEXT NOT NULL, entry TEXT NOT NULL,
            PRIMARY KEY (ipset, entry)) WITHOUT ROWID;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        PRAGMA user_version = 1;";

    #[test]
    fn version_1_keeps_events_holds_holders_and_applied() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(
            r#"INSERT INTO events (action, ipset, entry, request, created, attempts, next_try, last_error)
                 VALUES ('ban', 'f2b', '192.0.2.1', '{"ip":"192.0.2.1","ipset":"f2b","jail":"sshd","restored":false}', 1, 3, 9e9, 'down'),
                        ('unban', 'f2b', '192.0.2.2', '{"ip":"192.0.2.2","ipset":"f2b","restored":false}', 2, 0, 0, NULL),
                        ('ban', 'f2b', '192.0.2.3', 'garbage', 3, 0, 0, NULL);
               INSERT INTO desired VALUES ('f2b', '192.0.2.1', '{}', 'sshd', NULL), ('f2b', '192.0.2.4', '{}', NULL, 5);
               INSERT INTO applied VALUES ('f2b', '192.0.2.4');
               INSERT INTO meta VALUES ('last_error', 'down');"#,
        )
        .unwrap();
        prepare(&conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), VERSION);
        let holders: Vec<(i64, String)> = conn
            .prepare("SELECT id, holder FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            holders,
            [
                (1, "jail:sshd".to_string()),
                (2, "jail:*".to_string()),
                (3, "jail:-".to_string())
            ]
        );
        let hold: (String, f64, i64, String) = conn
            .query_row(
                "SELECT entry, next_try, attempts, last_error FROM holds",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(hold, ("192.0.2.1".into(), 9e9, 3, "down".into()));
        let desired: Vec<String> = conn
            .prepare("SELECT holder FROM desired ORDER BY entry")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(desired, ["jail:sshd", "jail:-"]);
        let certain: i64 = conn
            .query_row("SELECT certain FROM applied", [], |r| r.get(0))
            .unwrap();
        assert_eq!(certain, 1);
        // A new event gets the next id: AUTOINCREMENT survived.
        conn.execute(
            "INSERT INTO events (action, ipset, entry, holder, request, created) VALUES ('ban', 'f2b', 'x', 'jail:-', '{}', 4)",
            [],
        )
        .unwrap();
        assert_eq!(conn.last_insert_rowid(), 4);
        // Preparing again is a no-op.
        prepare(&conn).unwrap();
    }

    #[test]
    fn version_2_keeps_its_events_in_lane_0() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        prepare(&conn).unwrap();
        // Back to a version 2 database, as fail2pvefw 0.1 with issue 10 left it.
        conn.execute_batch(
            "DROP TABLE crowdsec_decisions; ALTER TABLE events DROP COLUMN lane;
             INSERT INTO events (action, ipset, entry, holder, request, created)
                 VALUES ('ban', 'f2b', '192.0.2.1', 'jail:sshd', '{}', 1);
             PRAGMA user_version = 2;",
        )
        .unwrap();
        prepare(&conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), VERSION);
        let lane: i64 = conn
            .query_row("SELECT lane FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(lane, 0);
        conn.query_row("SELECT COUNT(*) FROM crowdsec_decisions", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE events (x); PRAGMA user_version = 7;")
            .unwrap();
        let e = prepare(&conn).unwrap_err();
        assert!(e.contains("schema version 7"), "{e}");
        assert_eq!(user_version(&conn).unwrap(), 7);
    }
}
