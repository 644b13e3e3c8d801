//! The intake worker: one thread with its own policy instance and database
//! connection that takes the local API's requests one at a time. A ban or
//! unban is validated, checked against `[rules]` and committed (fsync'd)
//! exactly as the CLI does it (`ban::queue_event`), then the sender is
//! woken; the answer leaves only after the commit. It never waits behind a
//! PVE write: sending is the sender's.

use super::worker::{Wake, open};
use crate::cli::{Flush, Status};
use crate::commands::cluster::{self, Bound};
use crate::commands::local_api::{self, Answer, ApiRequest, Op};
use crate::commands::{ban, flush, status};
use crate::config::Config;
use crate::error::{Kind, Result};
use crate::log;
use crate::runtime::Source;
use crate::runtime::session::Session;
use crate::state::db::Db;
use crate::state::queue::Action;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How often the intake reads again what `fail2pvefw dns` keeps (its
/// accept lists and protected addresses).
const REFRESH: Duration = Duration::from_secs(30);

/// What the intake is asked.
pub enum Job {
    Api {
        request: ApiRequest,
        reply: Sender<Answer>,
    },
    Reload(Arc<Config>),
    Stop,
}

pub struct Intake {
    config: Arc<Config>,
    config_key: PathBuf,
    source: Source,
    db: Db,
    bound: Bound,
    session: Session,
    wake: Sender<Wake>,
    refreshed: Instant,
}

impl Intake {
    pub fn new(config: Arc<Config>, source: Source, wake: Sender<Wake>) -> Result<Intake> {
        let (db, bound, session) = open(&config, &source)?;
        Ok(Intake {
            config_key: local_api::config_key(&config.path),
            config,
            source,
            db,
            bound,
            session,
            wake,
            refreshed: Instant::now(),
        })
    }

    /// Takes jobs until `Stop`; the jobs already sent are answered first.
    pub fn run(mut self, jobs: Receiver<Job>) {
        loop {
            let job = match jobs.recv_timeout(REFRESH) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.refresh();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            match job {
                Job::Api { request, reply } => {
                    if self.refreshed.elapsed() > REFRESH {
                        self.refresh();
                    }
                    let answer = self.handle(request);
                    let _ = reply.send(answer);
                }
                Job::Reload(config) => self.reload(config),
                Job::Stop => {
                    while let Ok(Job::Api { request, reply }) = jobs.try_recv() {
                        let _ = reply.send(self.handle(request));
                    }
                    return;
                }
            }
        }
    }

    fn refresh(&mut self) {
        self.refreshed = Instant::now();
        match cluster::dns_known(&self.config, &self.db) {
            Ok(known) => {
                self.session.know(&known);
                self.bound.dns = known;
            }
            Err(f) => log::warn(&format!("serve: cannot read what `dns` keeps: {f}")),
        }
    }

    fn reload(&mut self, config: Arc<Config>) {
        match open(&config, &self.source) {
            Ok((db, bound, session)) => {
                self.db = db;
                self.bound = bound;
                self.session = session;
                self.config_key = local_api::config_key(&config.path);
                self.config = config;
            }
            Err(f) => log::warn(&format!(
                "serve: the new configuration cannot be used ({f}); the old one stays"
            )),
        }
    }

    /// A policy that trapped cannot be called again: a fresh instance.
    fn renew_session(&mut self) {
        match Session::open(
            &self.config,
            self.source.clone(),
            self.bound.node_addresses.clone(),
        ) {
            Ok(mut session) => {
                session.know(&self.bound.dns);
                self.session = session;
            }
            Err(f) => log::warn(&format!("serve: cannot renew the policy instance: {f}")),
        }
    }

    /// One request's answer.
    pub fn handle(&mut self, request: ApiRequest) -> Answer {
        if let Some(theirs) = &request.config
            && local_api::config_key(theirs) != self.config_key
        {
            return Answer::refused(
                local_api::OTHER_CONFIG,
                format!(
                    "this service runs '{}', not '{}'",
                    self.config.path.display(),
                    theirs.display()
                ),
            );
        }
        match request.op {
            Op::Ban(event) => self.event(Action::Ban, &event),
            Op::Unban(event) => self.event(Action::Unban, &event),
            Op::Flush {
                jail,
                remove,
                crowdsec,
            } => {
                let flush = Flush {
                    jail,
                    remove,
                    crowdsec,
                };
                let answer = flush::queue_flush(&mut self.db, &self.bound, &flush);
                if let Ok((_, true)) = &answer {
                    let _ = self.wake.send(Wake::Queued);
                }
                Answer::of(answer.map(|(text, _)| text))
            }
            Op::Start { ipset } => {
                let ipset = ipset.unwrap_or_else(|| self.config.ipset.clone());
                let answer = self.session.start(&ipset);
                self.policy_answer(answer, "start")
            }
            Op::Check { ipset } => {
                let ipset = ipset.unwrap_or_else(|| self.config.ipset.clone());
                let answer = self.session.check(&ipset);
                self.policy_answer(answer, "check")
            }
            Op::Status {
                ipset,
                json,
                prometheus,
            } => {
                let status = Status {
                    json,
                    prometheus,
                    ipset,
                };
                Answer::of(status::report(
                    &self.config,
                    &mut self.session,
                    &self.db,
                    &status,
                ))
            }
            Op::Ping => Answer::done(format!("fail2pvefw serve {}", env!("CARGO_PKG_VERSION"))),
        }
    }

    fn policy_answer(
        &mut self,
        answer: Result<crate::runtime::session::Answer<String>>,
        what: &str,
    ) -> Answer {
        match answer {
            Ok(answer) => Answer::of(answer.map_err(|r| r.failure.context(what))),
            Err(trap) => {
                self.renew_session();
                Answer::failed(&trap)
            }
        }
    }

    fn event(&mut self, action: Action, event: &local_api::Event) -> Answer {
        let req = event.request(&self.config.ipset);
        let queued = ban::queue_event(
            &self.config,
            &mut self.session,
            &mut self.db,
            &self.bound,
            &req,
            action,
        );
        match queued {
            Ok(queued) => {
                let _ = self.wake.send(Wake::Queued);
                let mut answer = Answer::done(queued.note.unwrap_or_default());
                answer.entry = Some(queued.entry);
                answer.event = Some(queued.id);
                answer
            }
            Err(failure) => {
                if failure.kind == Kind::Config {
                    // Maybe a trap of the policy: start from a fresh instance.
                    self.renew_session();
                }
                Answer::failed(&failure)
            }
        }
    }
}
