//! The service's periodic work: a list of tasks, each one small
//! registration (a name, a period, a function of the worker), run in the
//! sender's thread one at a time. A task marked `on_wake` also runs at
//! once when the local API committed an event.

use crate::error::Failure;
use crate::log;
use std::time::{Duration, Instant};

/// What a task does with the worker it runs on.
pub type Run<W> = fn(&mut W) -> Result<(), Failure>;

struct Task<W> {
    name: &'static str,
    period: Duration,
    next: Instant,
    on_wake: bool,
    run: Run<W>,
}

/// The tasks of one worker.
pub struct Scheduler<W> {
    tasks: Vec<Task<W>>,
}

impl<W> Default for Scheduler<W> {
    fn default() -> Self {
        Scheduler { tasks: Vec::new() }
    }
}

impl<W> Scheduler<W> {
    /// Runs `run` every `period`, the first time after `first`.
    pub fn every(
        &mut self,
        name: &'static str,
        period: Duration,
        first: Duration,
        run: Run<W>,
    ) -> &mut Self {
        self.tasks.push(Task {
            name,
            period,
            next: Instant::now() + first,
            on_wake: false,
            run,
        });
        self
    }

    /// The task registered last also runs when the worker is woken.
    pub fn on_wake(&mut self) -> &mut Self {
        if let Some(task) = self.tasks.last_mut() {
            task.on_wake = true;
        }
        self
    }

    /// The names, in order (for the log and tests).
    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|t| t.name).collect()
    }

    /// How long until the next task is due.
    pub fn until_next(&self) -> Duration {
        let now = Instant::now();
        self.tasks
            .iter()
            .map(|t| t.next.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(3600))
    }

    /// Runs every task that is due (and, when `woken`, every `on_wake`
    /// one); a failure is logged and the task runs again next period.
    pub fn run_due(&mut self, worker: &mut W, woken: bool) {
        for task in &mut self.tasks {
            let now = Instant::now();
            if now < task.next && !(woken && task.on_wake) {
                continue;
            }
            if let Err(failure) = (task.run)(worker) {
                log::warn(&format!("serve: {}: {failure}", task.name));
            }
            task.next = Instant::now() + task.period;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counts {
        fast: u32,
        slow: u32,
    }

    #[test]
    fn due_tasks_run_and_wake_runs_only_on_wake_tasks() {
        let mut s = Scheduler::<Counts>::default();
        s.every("fast", Duration::ZERO, Duration::ZERO, |c| {
            c.fast += 1;
            Ok(())
        })
        .on_wake()
        .every(
            "slow",
            Duration::from_secs(60),
            Duration::from_secs(60),
            |c| {
                c.slow += 1;
                Err(Failure::pve("down"))
            },
        );
        assert_eq!(s.names(), ["fast", "slow"]);
        let mut c = Counts::default();
        s.run_due(&mut c, false);
        s.run_due(&mut c, true);
        assert_eq!((c.fast, c.slow), (2, 0));
        assert!(s.until_next() <= Duration::from_secs(60));
    }
}
