//! The policy's key-value store (the `store` capability's backend): the
//! `policy_store` table of `state.db`, one namespace per policy (its
//! identity's name).

use super::db::Db;
use rusqlite::{OptionalExtension, params};

impl Db {
    pub fn get(&self, ns: &str, key: &str) -> rusqlite::Result<Option<String>> {
        self.conn()
            .query_row(
                "SELECT value FROM policy_store WHERE namespace = ?1 AND key = ?2",
                params![ns, key],
                |row| row.get(0),
            )
            .optional()
    }

    pub fn set(&self, ns: &str, key: &str, value: &str) -> rusqlite::Result<()> {
        self.conn().execute(
            "INSERT INTO policy_store (namespace, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
            params![ns, key, value],
        )?;
        Ok(())
    }

    pub fn delete(&self, ns: &str, key: &str) -> rusqlite::Result<()> {
        self.conn().execute(
            "DELETE FROM policy_store WHERE namespace = ?1 AND key = ?2",
            params![ns, key],
        )?;
        Ok(())
    }

    pub fn keys(&self, ns: &str, prefix: &str) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.conn().prepare(
            "SELECT key FROM policy_store WHERE namespace = ?1 AND substr(key, 1, length(?2)) = ?2 ORDER BY key",
        )?;
        let rows = stmt.query_map(params![ns, prefix], |row| row.get(0))?;
        rows.collect()
    }

    /// Moves every key of namespace `from` into `to`, when `to` holds none
    /// (one transaction): the store of a policy keyed by its file's name
    /// before it declared an identity. Returns how many keys moved.
    pub fn move_namespace(&mut self, from: &str, to: &str) -> rusqlite::Result<usize> {
        let tx = self.conn_mut().transaction()?;
        let taken: i64 = tx.query_row(
            "SELECT COUNT(*) FROM policy_store WHERE namespace = ?1",
            params![to],
            |row| row.get(0),
        )?;
        if taken > 0 {
            return Ok(0);
        }
        let moved = tx.execute(
            "UPDATE policy_store SET namespace = ?2 WHERE namespace = ?1",
            params![from, to],
        )?;
        tx.commit()?;
        Ok(moved)
    }

    /// Bytes of keys and values a namespace holds, for its quota.
    pub fn usage(&self, ns: &str) -> rusqlite::Result<u64> {
        self.conn().query_row(
            "SELECT COALESCE(SUM(length(key) + length(value)), 0) FROM policy_store WHERE namespace = ?1",
            params![ns],
            |row| row.get::<_, i64>(0).map(|n| n as u64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        Db::open(dir.path()).unwrap().set("p", "k", "v").unwrap();
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.get("p", "k").unwrap().as_deref(), Some("v"));
        assert_eq!(db.get("other", "k").unwrap(), None);
    }

    #[test]
    fn a_namespace_moves_only_into_an_empty_one() {
        let mut db = Db::in_memory();
        db.set("file-stem", "k", "v").unwrap();
        db.set("file-stem", "l", "w").unwrap();
        db.set("taken", "x", "y").unwrap();
        assert_eq!(db.move_namespace("file-stem", "taken").unwrap(), 0);
        assert_eq!(db.move_namespace("file-stem", "identity").unwrap(), 2);
        assert_eq!(db.keys("identity", "").unwrap(), ["k", "l"]);
        assert!(db.keys("file-stem", "").unwrap().is_empty());
        assert_eq!(db.move_namespace("file-stem", "identity").unwrap(), 0);
    }

    #[test]
    fn keys_by_prefix_are_sorted_and_literal() {
        let db = Db::in_memory();
        for k in ["b/2", "b/1", "a", "b%"] {
            db.set("p", k, "x").unwrap();
        }
        assert_eq!(db.keys("p", "b/").unwrap(), ["b/1", "b/2"]);
        assert_eq!(db.keys("p", "b%").unwrap(), ["b%"]);
        db.delete("p", "b/1").unwrap();
        assert_eq!(db.keys("p", "b").unwrap(), ["b%", "b/2"]);
    }
}
