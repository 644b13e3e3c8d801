//! The imports natively: each answered by the running [`super::TestHost`].

use pve_model::Caller;
use serde_json::Value;

use super::guard::Checked;
use super::{Answer, Call, STORE_QUOTA, State, with};
use crate::tag;
use crate::types::{Error, Level, Response};

pub fn request(method: &str, path: &str, params: &[(&str, &str)]) -> Result<Response, Error> {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    with(|state| {
        let outcome = state.request(method, path, &params);
        let answer = match &outcome {
            Ok(response) => Answer::Status(response.status),
            Err(Error::Denied(why)) => Answer::Denied(why.clone()),
            Err(Error::NotOurs(why)) => Answer::NotOurs(why.clone()),
            Err(other) => Answer::Failed(other.clone()),
        };
        state.calls.push(Call {
            method: method.to_string(),
            path: path.to_string(),
            params,
            answer,
        });
        outcome
    })
}

impl State {
    fn request(
        &mut self,
        method: &str,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Response, Error> {
        if self.sealed {
            return Err(Error::Denied(
                "no PVE request while the policy chooses what gets in (admit is pure)".into(),
            ));
        }
        let settings = self.settings.clone();
        let checked = self
            .guard
            .check(method, path, params, |name| settings.get(name).cloned())
            .map_err(Error::Denied)?;
        if let Some(respond) = &mut self.respond
            && let Some(answer) = respond(method, path, params)
        {
            return answer;
        }
        match checked {
            Checked::Pass | Checked::Add => Ok(self.pve(method, path, params)),
            Checked::Change { cidr } => self.change(method, path, params, &cidr),
        }
    }

    /// One request to the PVE model, as the token of the host.
    fn pve(&mut self, method: &str, path: &str, params: &[(String, String)]) -> Response {
        self.cluster.set_time(self.now);
        let r = self.cluster.handle(method, path, params, &Caller::FULL);
        Response {
            status: r.status,
            reason: r.reason,
            body: r.body,
        }
    }

    /// A PUT or DELETE of one entry: read it, send it only if it is ours,
    /// with the read's digest (as the host's `pve` capability).
    fn change(
        &mut self,
        method: &str,
        path: &str,
        params: &[(String, String)],
        cidr: &str,
    ) -> Result<Response, Error> {
        let read = self.pve("GET", path, &[]);
        if read.status == 400 && method == "DELETE" {
            return Ok(Response {
                status: 200,
                reason: "OK".into(),
                body: r#"{"data":null}"#.into(),
            });
        }
        if !read.is_success() {
            return Ok(read);
        }
        let data = read.data().unwrap_or(Value::Null);
        let comment = data.get("comment").and_then(Value::as_str);
        let instance = tag::tag_name(&self.guard.instance);
        if !tag::is_ours(comment, &instance) {
            return Err(Error::NotOurs(format!(
                "not ours ({} carries no tag {}{instance}/…)",
                comment.map_or_else(
                    || format!("{cidr} has no comment, so it"),
                    |c| format!("comment '{c}'")
                ),
                tag::PREFIX
            )));
        }
        let mut sent = params.to_vec();
        if let Some(digest) = data.get("digest").and_then(Value::as_str) {
            sent.push(("digest".into(), digest.to_string()));
        }
        Ok(self.pve(method, path, &sent))
    }
}

pub fn store_get(key: &str) -> Option<String> {
    with(|s| s.store.get(key).cloned())
}

pub fn store_set(key: &str, value: &str) -> Result<(), Error> {
    with(|s| {
        let used: usize = s.store.iter().map(|(k, v)| k.len() + v.len()).sum();
        let old = s.store.get(key).map_or(0, |v| key.len() + v.len());
        if used - old + key.len() + value.len() > STORE_QUOTA {
            return Err(Error::Denied(format!(
                "the policy store is limited to {STORE_QUOTA} bytes; '{key}' would exceed it"
            )));
        }
        s.store.insert(key.to_string(), value.to_string());
        Ok(())
    })
}

pub fn store_delete(key: &str) {
    with(|s| {
        s.store.remove(key);
    })
}

pub fn store_keys(prefix: &str) -> Vec<String> {
    with(|s| {
        s.store
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    })
}

pub fn now() -> u64 {
    with(|s| s.now)
}

pub fn local_offset(_at: i64) -> i32 {
    with(|s| s.offset)
}

pub fn log(level: Level, message: &str) {
    with(|s| s.logs.push((level, message.to_string())))
}

pub fn setting(name: &str) -> Option<String> {
    with(|s| s.settings.get(name).cloned())
}
