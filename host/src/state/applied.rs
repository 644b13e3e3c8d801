//! The `applied` table: what PVE holds that we wrote, with the comment we
//! wrote, and whether we are sure. A ban whose answer never came back (a
//! timeout, a killed drainer) may have landed: its entry is kept as
//! uncertain, so a later cancelling unban is still sent.

use rusqlite::{Connection, OptionalExtension, params};

/// What we know PVE holds of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Not there, as far as we wrote it.
    No,
    /// PVE confirmed it.
    Certain,
    /// It may be there: a try's answer never came back.
    Uncertain,
}

/// A change to what PVE holds of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// PVE added it, with this comment if known.
    Added(Option<String>),
    /// PVE confirmed it holds it (comment unchanged).
    Certain,
    /// It may or may not be there now.
    Uncertain,
    /// Not there (deleted, absent, or someone else's).
    Removed,
}

pub fn get(conn: &Connection, ipset: &str, entry: &str) -> rusqlite::Result<Applied> {
    let certain: Option<i64> = conn
        .query_row(
            "SELECT certain FROM applied WHERE ipset = ?1 AND entry = ?2",
            params![ipset, entry],
            |row| row.get(0),
        )
        .optional()?;
    Ok(match certain {
        None => Applied::No,
        Some(0) => Applied::Uncertain,
        Some(_) => Applied::Certain,
    })
}

pub fn change(
    conn: &Connection,
    ipset: &str,
    entry: &str,
    change: &Change,
) -> rusqlite::Result<()> {
    match change {
        Change::Added(comment) => conn.execute(
            "INSERT INTO applied (ipset, entry, comment, certain) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (ipset, entry) DO UPDATE SET comment = COALESCE(excluded.comment, comment), certain = 1",
            params![ipset, entry, comment],
        )?,
        Change::Certain => conn.execute(
            "INSERT INTO applied (ipset, entry, certain) VALUES (?1, ?2, 1)
             ON CONFLICT (ipset, entry) DO UPDATE SET certain = 1",
            params![ipset, entry],
        )?,
        Change::Uncertain => conn.execute(
            "INSERT INTO applied (ipset, entry, certain) VALUES (?1, ?2, 0)
             ON CONFLICT (ipset, entry) DO UPDATE SET certain = 0",
            params![ipset, entry],
        )?,
        Change::Removed => conn.execute(
            "DELETE FROM applied WHERE ipset = ?1 AND entry = ?2",
            params![ipset, entry],
        )?,
    };
    Ok(())
}

/// Marks an entry as maybe applied just before its ban leaves, so a kill
/// of the sender before the answer cannot make a later unban look like a
/// cancellation. Committed without waiting for the disk: it survives a
/// killed process, and the commit that settles the call syncs it.
pub fn mark_sending(conn: &Connection, ipset: &str, entry: &str) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let marked = change(conn, ipset, entry, &Change::Uncertain);
    conn.pragma_update(None, "synchronous", "FULL")?;
    marked
}

/// The entries of `ipset` we believe applied (certain or not).
pub fn entries(conn: &Connection, ipset: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT entry FROM applied WHERE ipset = ?1 ORDER BY entry")?;
    let rows = stmt.query_map(params![ipset], |row| row.get(0))?;
    rows.collect()
}

/// The comment we recorded for an entry we wrote, if any.
pub fn comment(conn: &Connection, ipset: &str, entry: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT comment FROM applied WHERE ipset = ?1 AND entry = ?2",
        params![ipset, entry],
        |row| row.get(0),
    )
    .optional()
    .map(Option::flatten)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::db::Db;

    #[test]
    fn changes_move_between_the_three_states() {
        let db = Db::in_memory();
        let c = db.conn();
        assert_eq!(get(c, "f", "1.2.3.4").unwrap(), Applied::No);
        change(c, "f", "1.2.3.4", &Change::Uncertain).unwrap();
        assert_eq!(get(c, "f", "1.2.3.4").unwrap(), Applied::Uncertain);
        change(
            c,
            "f",
            "1.2.3.4",
            &Change::Added(Some("x f2p:a/-/-".into())),
        )
        .unwrap();
        assert_eq!(get(c, "f", "1.2.3.4").unwrap(), Applied::Certain);
        change(c, "f", "1.2.3.4", &Change::Uncertain).unwrap();
        change(c, "f", "1.2.3.4", &Change::Certain).unwrap();
        assert_eq!(
            comment(c, "f", "1.2.3.4").unwrap().as_deref(),
            Some("x f2p:a/-/-")
        );
        change(c, "f", "1.2.3.4", &Change::Removed).unwrap();
        assert_eq!(get(c, "f", "1.2.3.4").unwrap(), Applied::No);
        assert!(entries(c, "f").unwrap().is_empty());
    }
}
