//! A minion's decisions about its session with the master, without I/O:
//! how long to wait before connecting again, how long to wait while the
//! key is pending, when to heartbeat, what a heartbeat answer means (the
//! master restarted, the session key rotated, jobs were missed, the master
//! stopped answering), whether a publish can be read with the key held,
//! and how a return is retried until the master acknowledges it.
//!
//! The minion's session ([`crate::session`], [`crate::executor`]) and the
//! benchmark's swarm of simulated minions both drive these machines; they
//! only do the sending, receiving and sleeping. Time is passed in as
//! seconds on the caller's clock and randomness as a fraction in [0, 1),
//! so the machines can be run over a simulated network in tests.

use protocol::ErrorKind;

/// The timings a session follows (a minion's from its config).
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// Seconds between heartbeats in a settled session.
    pub heartbeat: f64,
    /// Seconds between heartbeats early in a session (at most `heartbeat`).
    pub early_heartbeat: f64,
    /// How long a session counts as early, seconds.
    pub early_for: f64,
    /// First wait while the key is pending; doubles up to the max.
    pub acceptance_wait: f64,
    /// Longest wait between auth attempts and between connection attempts.
    pub acceptance_wait_max: f64,
    /// Longest random delay before a new session after one ended well.
    pub reauth_delay: f64,
    /// Longest random delay before asking for a rotated session key.
    pub rotation_spread: f64,
    /// Heartbeats in a row without an answer that end the session.
    pub misses_allowed: u32,
    /// First wait before sending a return again; doubles up to the max.
    pub retry_first: f64,
    /// Longest wait between two tries of a return.
    pub retry_max: f64,
    /// Seconds after which a return the master does not take is dropped
    /// (`None`: never, it is kept until acknowledged).
    pub give_up_after: Option<f64>,
}

impl Default for Timing {
    /// A minion's timings with its default config.
    fn default() -> Self {
        crate::MinionConfig::default().timing()
    }
}

/// A delay scaled by a random factor in [1 - spread/2, 1 + spread/2).
fn spread(d: f64, spread: f64, jitter: f64) -> f64 {
    (d * (1.0 - spread / 2.0 + spread * jitter)).max(0.0)
}

/// Waits between connection attempts: a random part of `reauth_delay`
/// after a session that was established, a doubling wait (capped at
/// `acceptance_wait_max`, with jitter) after attempts that failed.
#[derive(Debug, Default, Clone)]
pub struct Reconnect {
    failures: u32,
}

impl Reconnect {
    /// Records how the last attempt ended: `established` when the session
    /// got as far as being accepted.
    pub fn ended(&mut self, established: bool) {
        if established {
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
        }
    }

    /// Attempts that failed in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Seconds to wait before the next attempt.
    pub fn delay(&self, t: &Timing, jitter: f64) -> f64 {
        if self.failures == 0 {
            return t.reauth_delay * jitter;
        }
        let backoff = (t.acceptance_wait * f64::from(1u32 << self.failures.min(6)))
            .min(t.acceptance_wait_max);
        backoff * (0.5 + jitter / 2.0)
    }
}

/// Which of a minion's listed masters to connect to. A session that was
/// established is taken up again on the same master (it may only have
/// restarted); an attempt that failed moves on to the next master at once,
/// and only after every master failed in a row does the minion wait (see
/// [`Reconnect`]). It stays on the master it reached: there is no failing
/// back to the first.
#[derive(Debug, Clone)]
pub struct Failover {
    count: usize,
    at: usize,
    failed_in_row: usize,
}

impl Failover {
    /// Over `count` masters (at least one), starting with the one at
    /// `start` (taken modulo `count`).
    pub fn new(count: usize, start: usize) -> Failover {
        let count = count.max(1);
        Failover {
            count,
            at: start % count,
            failed_in_row: 0,
        }
    }

    /// The index of the master to try next.
    pub fn current(&self) -> usize {
        self.at
    }

    /// Records how the attempt on the current master ended. Returns true
    /// when the next master is to be tried at once, false when the caller
    /// waits first: after a session, or once every master failed in a row.
    pub fn ended(&mut self, established: bool) -> bool {
        if established {
            self.failed_in_row = 0;
            return false;
        }
        self.failed_in_row += 1;
        self.at = (self.at + 1) % self.count;
        !self.failed_in_row.is_multiple_of(self.count)
    }
}

/// What the master said to an auth request, as far as waiting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAnswer {
    /// Accepted: the session goes on.
    Accepted,
    /// The key waits for an operator.
    Pending,
    /// The key was rejected, or another key holds the id.
    Refused,
}

/// Waits between auth attempts on one connection.
#[derive(Debug, Clone)]
pub struct AuthWait {
    wait: f64,
}

impl AuthWait {
    /// The first wait of a connection.
    pub fn new(t: &Timing) -> Self {
        AuthWait {
            wait: t.acceptance_wait,
        }
    }

    /// Seconds to wait before asking again after `answer` (`None` when
    /// accepted: no more asking).
    pub fn after(&mut self, answer: AuthAnswer, t: &Timing, jitter: f64) -> Option<f64> {
        let wait = match answer {
            AuthAnswer::Accepted => return None,
            AuthAnswer::Pending => self.wait,
            AuthAnswer::Refused => t.acceptance_wait_max,
        };
        self.wait = (wait * 2.0).min(t.acceptance_wait_max);
        Some(spread(wait, 0.5, jitter))
    }
}

/// How a heartbeat went.
#[derive(Debug, Clone, PartialEq)]
pub enum Beat {
    /// The master answered.
    Answer {
        /// The master's boot id.
        boot_id: u64,
        /// The master's session key epoch.
        session_epoch: u64,
        /// Whether it named a job for this minion that it has not seen.
        unseen_jobs: bool,
    },
    /// The master no longer accepts this minion's key.
    NotAccepted,
    /// No answer (timeout, broken link, refused for a passing reason).
    Failed,
}

/// What a session does after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing more.
    Continue,
    /// Ask the master for the jobs it published while they were missed.
    FetchMissed,
    /// Ask for the current session key after this many seconds.
    Rekey(f64),
    /// End the session and connect again.
    Reconnect(Why),
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The master's boot id changed.
    MasterRestarted,
    /// Heartbeats went unanswered `misses_allowed` times in a row.
    MasterSilent,
    /// The master no longer accepts the key.
    NotAccepted,
}

/// What to do with a publish under a session key epoch.
#[derive(Debug, Clone, PartialEq)]
pub enum Publish {
    /// Open it with the key held.
    Open,
    /// It is under a newer key: drop it and ask for the key (the job is
    /// fetched as missed afterwards).
    Rekey(f64),
    /// It is under an older key: drop it.
    Drop,
}

/// What to do with a publish sealed under `epoch` while holding the
/// session key of epoch `held`.
pub fn publish(epoch: u64, held: u64, t: &Timing, jitter: f64) -> Publish {
    match epoch.cmp(&held) {
        std::cmp::Ordering::Equal => Publish::Open,
        std::cmp::Ordering::Greater => Publish::Rekey(t.rotation_spread * jitter),
        std::cmp::Ordering::Less => Publish::Drop,
    }
}

/// One established session's heartbeats. The session key epoch `held`
/// is the caller's (it holds the key).
#[derive(Debug, Clone)]
pub struct Session {
    started: f64,
    boot: Option<u64>,
    misses: u32,
}

impl Session {
    /// A session established at `now`.
    pub fn new(now: f64) -> Self {
        Session {
            started: now,
            boot: None,
            misses: 0,
        }
    }

    /// Seconds from the start to the first heartbeat: soon, since
    /// publishes sent while the subscription was joining are lost and the
    /// heartbeat's answer names them.
    pub fn first_heartbeat(&self, t: &Timing, jitter: f64) -> f64 {
        (1.0 + jitter).min(t.heartbeat)
    }

    /// Seconds from a heartbeat's outcome at `now` to the next: at most
    /// `early_heartbeat` apart early in a session (a reconnect storm is
    /// when publishes are likeliest lost) and after one went unanswered
    /// (the master may have restarted: find out soon), `heartbeat` else.
    pub fn next_heartbeat(&self, now: f64, t: &Timing) -> f64 {
        if now - self.started < t.early_for || self.misses > 0 {
            t.early_heartbeat.min(t.heartbeat)
        } else {
            t.heartbeat
        }
    }

    /// What a heartbeat's outcome asks for, in order, while holding the
    /// session key of epoch `held`.
    pub fn heartbeat(&mut self, beat: Beat, held: u64, t: &Timing, jitter: f64) -> Vec<Step> {
        match beat {
            Beat::Answer {
                boot_id,
                session_epoch,
                unseen_jobs,
            } => {
                self.misses = 0;
                if self.boot.is_some_and(|b| b != boot_id) {
                    return vec![Step::Reconnect(Why::MasterRestarted)];
                }
                self.boot = Some(boot_id);
                let mut steps = Vec::new();
                if session_epoch > held {
                    // Fetching missed jobs follows the new key.
                    steps.push(Step::Rekey(t.rotation_spread * jitter));
                } else if unseen_jobs {
                    steps.push(Step::FetchMissed);
                }
                steps
            }
            Beat::NotAccepted => vec![Step::Reconnect(Why::NotAccepted)],
            Beat::Failed => {
                self.misses += 1;
                if self.misses >= t.misses_allowed {
                    vec![Step::Reconnect(Why::MasterSilent)]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

/// How one try of sending a return went.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// The master acknowledged it: stored.
    Acked,
    /// The master refused it as too large.
    TooLarge,
    /// The master refused it for good (malformed, not its job, ...).
    Refused(ErrorKind),
    /// No answer, an unexpected answer, or a refusal that may pass
    /// (internal error, key not accepted yet, a limit reached).
    Failed,
    /// The connection is gone: the session ended.
    LinkGone,
}

/// What to do with a return next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Acknowledged: forget it.
    Done,
    /// Send an error naming its size in its place, at once.
    ReplaceWithError,
    /// Refused for good: forget it.
    Drop,
    /// Try again after this many seconds.
    RetryAfter(f64),
    /// Keep it for the next session.
    Keep,
    /// Tried for `give_up_after` seconds: forget it.
    GiveUp,
}

/// A return being delivered: tried until acknowledged, with a doubling
/// wait (capped, with jitter) between tries.
#[derive(Debug, Clone)]
pub struct Delivery {
    started: f64,
    tries: u32,
    wait: f64,
}

impl Delivery {
    /// A return first sent at `now`.
    pub fn new(now: f64, t: &Timing) -> Self {
        Delivery {
            started: now,
            tries: 0,
            wait: t.retry_first,
        }
    }

    /// Tries that failed so far.
    pub fn failures(&self) -> u32 {
        self.tries
    }

    /// What follows a try that went as `sent` at `now`.
    pub fn after(&mut self, sent: Sent, now: f64, t: &Timing, jitter: f64) -> Next {
        match sent {
            Sent::Acked => return Next::Done,
            Sent::TooLarge => return Next::ReplaceWithError,
            Sent::Refused(kind)
                if !matches!(
                    kind,
                    ErrorKind::Internal | ErrorKind::NotAccepted | ErrorKind::LimitReached
                ) =>
            {
                return Next::Drop;
            }
            Sent::LinkGone => return Next::Keep,
            Sent::Refused(_) | Sent::Failed => {}
        }
        self.tries += 1;
        if t.give_up_after.is_some_and(|g| now - self.started >= g) {
            return Next::GiveUp;
        }
        let d = self.wait * (0.5 + jitter);
        self.wait = (self.wait * 2.0).min(t.retry_max);
        Next::RetryAfter(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backs_off_after_failures_and_not_after_a_session() {
        let t = Timing::default();
        let mut r = Reconnect::default();
        assert!(r.delay(&t, 0.5) <= t.reauth_delay);
        r.ended(false);
        let one = r.delay(&t, 1.0);
        r.ended(false);
        let two = r.delay(&t, 1.0);
        assert!(two > one, "{one} then {two}");
        for _ in 0..20 {
            r.ended(false);
        }
        assert!(r.delay(&t, 1.0) <= t.acceptance_wait_max);
        r.ended(true);
        assert_eq!(r.failures(), 0);
        assert_eq!(r.delay(&t, 0.0), 0.0);
    }

    #[test]
    fn failover_tries_each_master_once_before_waiting_and_stays_where_it_got_in() {
        let mut f = Failover::new(3, 4);
        assert_eq!(f.current(), 1);
        assert!(f.ended(false), "the next master is tried at once");
        assert_eq!(f.current(), 2);
        assert!(f.ended(false));
        assert_eq!(f.current(), 0);
        assert!(!f.ended(false), "all three failed: wait");
        assert_eq!(f.current(), 1);
        assert!(f.ended(false));
        assert_eq!(f.current(), 2);
        assert!(!f.ended(true), "a session ended: the usual delay");
        assert_eq!(f.current(), 2, "the master that answered is kept");
        assert!(f.ended(false));
        assert!(f.ended(false));
        assert!(!f.ended(false));
        let mut one = Failover::new(1, 0);
        assert!(!one.ended(false), "a single master: always wait");
        assert_eq!(one.current(), 0);
    }

    #[test]
    fn pending_waits_double_up_to_the_max_and_refusals_wait_the_max() {
        let t = Timing::default();
        let mut w = AuthWait::new(&t);
        let waits: Vec<f64> = (0..5)
            .map(|_| w.after(AuthAnswer::Pending, &t, 0.5).expect("a wait"))
            .collect();
        assert_eq!(waits, vec![10.0, 20.0, 40.0, 60.0, 60.0]);
        let mut w = AuthWait::new(&t);
        assert_eq!(w.after(AuthAnswer::Refused, &t, 0.5), Some(60.0));
        assert_eq!(w.after(AuthAnswer::Accepted, &t, 0.5), None);
    }

    #[test]
    fn heartbeats_are_early_then_settle() {
        let t = Timing::default();
        let s = Session::new(100.0);
        assert_eq!(s.next_heartbeat(101.0, &t), 5.0);
        assert_eq!(s.next_heartbeat(131.0, &t), 30.0);
        assert!(s.first_heartbeat(&t, 0.99) < 2.0);
        // After an unanswered one, the next comes soon.
        let mut s = s;
        assert!(s.heartbeat(Beat::Failed, 1, &t, 0.5).is_empty());
        assert_eq!(s.next_heartbeat(200.0, &t), 5.0);
    }

    #[test]
    fn a_new_boot_id_ends_the_session_and_two_silent_beats_do() {
        let t = Timing::default();
        let mut s = Session::new(0.0);
        let answer = |boot_id| Beat::Answer {
            boot_id,
            session_epoch: 1,
            unseen_jobs: false,
        };
        assert!(s.heartbeat(answer(7), 1, &t, 0.5).is_empty());
        assert!(s.heartbeat(Beat::Failed, 1, &t, 0.5).is_empty());
        assert!(s.heartbeat(answer(7), 1, &t, 0.5).is_empty());
        assert!(s.heartbeat(Beat::Failed, 1, &t, 0.5).is_empty());
        assert_eq!(
            s.heartbeat(Beat::Failed, 1, &t, 0.5),
            vec![Step::Reconnect(Why::MasterSilent)]
        );
        let mut s = Session::new(0.0);
        s.heartbeat(answer(7), 1, &t, 0.5);
        assert_eq!(
            s.heartbeat(answer(8), 1, &t, 0.5),
            vec![Step::Reconnect(Why::MasterRestarted)]
        );
        assert_eq!(
            s.heartbeat(Beat::NotAccepted, 1, &t, 0.5),
            vec![Step::Reconnect(Why::NotAccepted)]
        );
    }

    #[test]
    fn a_newer_epoch_asks_for_the_key_and_unseen_jobs_are_fetched() {
        let t = Timing::default();
        let mut s = Session::new(0.0);
        let steps = s.heartbeat(
            Beat::Answer {
                boot_id: 1,
                session_epoch: 4,
                unseen_jobs: true,
            },
            3,
            &t,
            0.5,
        );
        assert_eq!(steps, vec![Step::Rekey(15.0)]);
        let steps = s.heartbeat(
            Beat::Answer {
                boot_id: 1,
                session_epoch: 4,
                unseen_jobs: true,
            },
            4,
            &t,
            0.5,
        );
        assert_eq!(steps, vec![Step::FetchMissed]);
        assert_eq!(publish(4, 4, &t, 0.1), Publish::Open);
        assert_eq!(publish(3, 4, &t, 0.1), Publish::Drop);
        assert_eq!(publish(5, 4, &t, 0.1), Publish::Rekey(3.0));
    }

    #[test]
    fn a_return_is_retried_with_doubling_waits_until_acked_or_given_up() {
        let t = Timing {
            give_up_after: Some(100.0),
            ..Timing::default()
        };
        let mut d = Delivery::new(0.0, &t);
        let mut waits = Vec::new();
        for _ in 0..8 {
            match d.after(Sent::Failed, 1.0, &t, 0.5) {
                Next::RetryAfter(w) => waits.push(w),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(waits, vec![0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
        assert_eq!(d.failures(), 8);
        assert_eq!(
            d.after(Sent::Refused(ErrorKind::Internal), 2.0, &t, 0.5),
            Next::RetryAfter(30.0)
        );
        assert_eq!(d.after(Sent::LinkGone, 3.0, &t, 0.5), Next::Keep);
        assert_eq!(d.after(Sent::Failed, 100.0, &t, 0.5), Next::GiveUp);
        let mut d = Delivery::new(0.0, &t);
        assert_eq!(
            d.after(Sent::Refused(ErrorKind::Malformed), 0.0, &t, 0.5),
            Next::Drop
        );
        assert_eq!(
            d.after(Sent::TooLarge, 0.0, &t, 0.5),
            Next::ReplaceWithError
        );
        assert_eq!(d.after(Sent::Acked, 0.0, &t, 0.5), Next::Done);
        let never = Timing {
            give_up_after: None,
            ..Timing::default()
        };
        let mut d = Delivery::new(0.0, &never);
        assert!(matches!(
            d.after(Sent::Failed, 1e9, &never, 0.5),
            Next::RetryAfter(_)
        ));
    }
}
