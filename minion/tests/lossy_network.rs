//! The session and delivery machines (`minion::machine`) driven over a
//! simulated network that drops, delays and reorders messages, against a
//! model of the master that restarts, rotates its session key and
//! publishes jobs meanwhile. Whatever the faults, once they stop every job
//! must end with exactly one stored return per minion, and no return may be
//! given up or dropped.
//!
//! The simulation runs on virtual time (no sleeps); each seed is one run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use minion::machine::{
    AuthAnswer, AuthWait, Beat, Delivery, Next, Publish, Reconnect, Sent, Session, Step, Timing,
    publish,
};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A fraction in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// The faults of one run.
#[derive(Clone, Copy)]
struct Faults {
    /// Share of requests, replies and publishes lost.
    drop: f64,
    /// Longest extra delay of a message, seconds (messages overtake each
    /// other within it).
    jitter: f64,
    /// Faults happen until this time; after it the network is clean.
    until: f64,
}

type Job = u32;

#[derive(Debug, Clone)]
enum Request {
    Auth,
    Heartbeat,
    Missed,
    Return(Job),
}

#[derive(Debug, Clone)]
enum Reply {
    Auth {
        epoch: u64,
    },
    Heartbeat {
        boot: u64,
        epoch: u64,
        pending: Vec<Job>,
    },
    Jobs(Vec<Job>),
    Ack(Job),
}

#[derive(Debug)]
enum Event {
    /// A minion's timer for connecting again.
    Connect(usize),
    /// A minion's next heartbeat (with the session number it was set in).
    Beat(usize, u64),
    /// A request reaches the master.
    AtMaster(usize, u64, Request),
    /// A reply reaches a minion.
    AtMinion(usize, u64, Reply),
    /// A request's answer is given up on.
    Timeout(usize, u64),
    /// A publish of a job under a session key epoch reaches a minion.
    Published(usize, Job, u64),
    /// A session key handed over on the publish channel reaches a minion.
    Handed(usize, u64),
    /// A return's next try is due.
    Retry(usize, Job),
    /// A delayed rekey is due (with the session number).
    Rekey(usize, u64),
    /// The master publishes a new job.
    NewJob,
    /// The master is killed; it starts again a moment later.
    Crash,
    /// The master is back.
    Start,
    /// The master rotates its session key.
    Rotate,
}

struct Master {
    up: bool,
    boot: u64,
    epoch: u64,
    jobs: Vec<Job>,
    /// Returns stored, by job and minion, and how many times each was
    /// offered (duplicates are acknowledged, not stored again).
    stored: BTreeMap<(Job, usize), u32>,
}

impl Master {
    fn pending(&self, m: usize) -> Vec<Job> {
        self.jobs
            .iter()
            .copied()
            .filter(|j| !self.stored.contains_key(&(*j, m)))
            .collect()
    }
}

#[derive(Default)]
struct Minion {
    /// Session number; events of older sessions are ignored.
    session_no: u64,
    session: Option<Session>,
    connecting: bool,
    auth_wait: Option<AuthWait>,
    reconnect: Reconnect,
    epoch: u64,
    seen: BTreeSet<Job>,
    deliveries: HashMap<Job, Delivery>,
    /// Requests in flight: id -> what was asked.
    inflight: HashMap<u64, Request>,
    rekeying: bool,
    given_up: Vec<Job>,
}

struct Sim {
    now: f64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Event>,
    rng: Rng,
    faults: Faults,
    t: Timing,
    master: Master,
    minions: Vec<Minion>,
    next_req: u64,
    next_job: Job,
}

const REQUEST_TIMEOUT: f64 = 10.0;

impl Sim {
    fn at(&mut self, delay: f64, e: Event) {
        self.seq += 1;
        let when = ((self.now + delay.max(0.0)) * 1e6) as u64;
        self.queue.push(Reverse((when, self.seq)));
        self.events.insert(self.seq, e);
    }

    fn faulty(&self) -> bool {
        self.now < self.faults.until
    }

    fn lost(&mut self) -> bool {
        let p = if self.faulty() { self.faults.drop } else { 0.0 };
        self.rng.chance(p)
    }

    fn delay(&mut self) -> f64 {
        let j = if self.faulty() {
            self.faults.jitter
        } else {
            0.01
        };
        0.001 + self.rng.unit() * j
    }

    fn send(&mut self, m: usize, req: Request) {
        self.next_req += 1;
        let id = self.next_req;
        self.minions[m].inflight.insert(id, req.clone());
        self.at(REQUEST_TIMEOUT, Event::Timeout(m, id));
        if !self.lost() {
            let d = self.delay();
            self.at(d, Event::AtMaster(m, id, req));
        }
    }

    fn reply(&mut self, m: usize, id: u64, reply: Reply) {
        if !self.lost() {
            let d = self.delay();
            self.at(d, Event::AtMinion(m, id, reply));
        }
    }

    fn end_session(&mut self, m: usize) {
        let mi = &mut self.minions[m];
        let established = mi.session.is_some();
        mi.session = None;
        mi.connecting = false;
        mi.auth_wait = None;
        mi.rekeying = false;
        mi.session_no += 1;
        // The session's own requests end with it; returns go on being
        // tried (their answers still count).
        mi.inflight.retain(|_, r| matches!(r, Request::Return(_)));
        mi.reconnect.ended(established);
        let d = mi.reconnect.delay(&self.t, self.rng.unit());
        self.at(d, Event::Connect(m));
    }

    /// A job this minion may not have run yet: run it (at once) and
    /// deliver its return.
    fn take_job(&mut self, m: usize, job: Job) {
        if !self.minions[m].seen.insert(job) {
            return;
        }
        let d = Delivery::new(self.now, &self.t);
        self.minions[m].deliveries.insert(job, d);
        self.try_return(m, job);
    }

    fn try_return(&mut self, m: usize, job: Job) {
        if self.minions[m].session.is_some() {
            self.send(m, Request::Return(job));
        } else {
            self.sent(m, job, Sent::Failed);
        }
    }

    fn sent(&mut self, m: usize, job: Job, sent: Sent) {
        let jitter = self.rng.unit();
        let (now, t) = (self.now, self.t.clone());
        let Some(d) = self.minions[m].deliveries.get_mut(&job) else {
            return;
        };
        match d.after(sent, now, &t, jitter) {
            Next::Done => {
                self.minions[m].deliveries.remove(&job);
            }
            Next::RetryAfter(w) => self.at(w, Event::Retry(m, job)),
            Next::Keep => self.at(t.retry_first, Event::Retry(m, job)),
            Next::Drop | Next::GiveUp | Next::ReplaceWithError => {
                self.minions[m].deliveries.remove(&job);
                self.minions[m].given_up.push(job);
            }
        }
    }

    fn established(&mut self, m: usize, epoch: u64) {
        let now = self.now;
        let first = {
            let mi = &mut self.minions[m];
            mi.connecting = false;
            mi.auth_wait = None;
            mi.epoch = epoch;
            let s = Session::new(now);
            let first = s.first_heartbeat(&self.t, self.rng.unit());
            mi.session = Some(s);
            mi.reconnect.ended(true);
            first
        };
        let no = self.minions[m].session_no;
        self.at(first, Event::Beat(m, no));
        self.send(m, Request::Missed);
    }

    fn step(&mut self, e: Event) {
        match e {
            Event::Connect(m) => {
                let mi = &mut self.minions[m];
                if mi.session.is_some() || mi.connecting {
                    return;
                }
                mi.connecting = true;
                mi.auth_wait.get_or_insert_with(|| AuthWait::new(&self.t));
                if self.master.up {
                    self.send(m, Request::Auth);
                } else {
                    // The connection is refused at once.
                    self.end_session(m);
                }
            }
            Event::AtMaster(m, id, req) => {
                if !self.master.up {
                    return;
                }
                let reply = match req {
                    Request::Auth => Reply::Auth {
                        epoch: self.master.epoch,
                    },
                    Request::Heartbeat => Reply::Heartbeat {
                        boot: self.master.boot,
                        epoch: self.master.epoch,
                        pending: self.master.pending(m),
                    },
                    Request::Missed => Reply::Jobs(self.master.pending(m)),
                    Request::Return(job) => {
                        *self.master.stored.entry((job, m)).or_default() += 1;
                        Reply::Ack(job)
                    }
                };
                self.reply(m, id, reply);
            }
            Event::Timeout(m, id) => {
                let Some(req) = self.minions[m].inflight.remove(&id) else {
                    return;
                };
                self.failed(m, req);
            }
            Event::AtMinion(m, id, reply) => {
                // A reply after its request timed out is ignored.
                if self.minions[m].inflight.remove(&id).is_none() {
                    return;
                }
                self.answered(m, reply);
            }
            Event::Beat(m, no) => {
                // The next is set when this one is answered or given up.
                if self.minions[m].session_no == no && self.minions[m].session.is_some() {
                    self.send(m, Request::Heartbeat);
                }
            }
            Event::Published(m, job, epoch) => {
                if self.minions[m].session.is_none() {
                    return;
                }
                let held = self.minions[m].epoch;
                match publish(epoch, held, &self.t, self.rng.unit()) {
                    Publish::Open => self.take_job(m, job),
                    Publish::Drop => {}
                    Publish::Rekey(d) => self.rekey_after(m, d),
                }
            }
            Event::Handed(m, epoch) => {
                let mi = &mut self.minions[m];
                if mi.session.is_some() && epoch > mi.epoch {
                    mi.epoch = epoch;
                }
            }
            Event::Retry(m, job) => {
                if self.minions[m].deliveries.contains_key(&job) {
                    self.try_return(m, job);
                }
            }
            Event::Rekey(m, no) => {
                let mi = &mut self.minions[m];
                mi.rekeying = false;
                if mi.session_no == no && mi.session.is_some() {
                    self.send(m, Request::Auth);
                }
            }
            Event::NewJob => {
                if !self.master.up {
                    return;
                }
                self.next_job += 1;
                let job = self.next_job;
                self.master.jobs.push(job);
                let epoch = self.master.epoch;
                for m in 0..self.minions.len() {
                    if !self.lost() {
                        let d = self.delay();
                        self.at(d, Event::Published(m, job, epoch));
                    }
                }
            }
            Event::Crash => {
                self.master.up = false;
                let back = 1.0 + self.rng.unit() * 5.0;
                self.at(back, Event::Start);
            }
            Event::Start => {
                self.master.up = true;
                self.master.boot += 1;
            }
            Event::Rotate => {
                if !self.master.up {
                    return;
                }
                self.master.epoch += 1;
                let epoch = self.master.epoch;
                for m in 0..self.minions.len() {
                    if !self.lost() {
                        let d = self.delay();
                        self.at(d, Event::Handed(m, epoch));
                    }
                }
            }
        }
    }

    fn rekey_after(&mut self, m: usize, d: f64) {
        if self.minions[m].rekeying {
            return;
        }
        self.minions[m].rekeying = true;
        let no = self.minions[m].session_no;
        self.at(d, Event::Rekey(m, no));
    }

    fn failed(&mut self, m: usize, req: Request) {
        match req {
            Request::Auth => {
                if self.minions[m].session.is_none() {
                    // The attempt failed: connect again later.
                    self.end_session(m);
                }
            }
            Request::Heartbeat => self.beat(m, Beat::Failed),
            Request::Missed => {}
            Request::Return(job) => self.sent(m, job, Sent::Failed),
        }
    }

    fn answered(&mut self, m: usize, reply: Reply) {
        match reply {
            Reply::Auth { epoch } => {
                if self.minions[m].session.is_some() {
                    // A rekey: take the key, then fetch what was missed.
                    self.minions[m].epoch = epoch;
                    self.send(m, Request::Missed);
                    return;
                }
                // Every key is accepted here; the wait machine says so.
                let jitter = self.rng.unit();
                let t = self.t.clone();
                let mi = &mut self.minions[m];
                let wait = mi.auth_wait.get_or_insert_with(|| AuthWait::new(&t));
                assert_eq!(wait.after(AuthAnswer::Accepted, &t, jitter), None);
                self.established(m, epoch);
            }
            Reply::Heartbeat {
                boot,
                epoch,
                pending,
            } => {
                let unseen_jobs = pending.iter().any(|j| !self.minions[m].seen.contains(j));
                self.beat(
                    m,
                    Beat::Answer {
                        boot_id: boot,
                        session_epoch: epoch,
                        unseen_jobs,
                    },
                );
            }
            Reply::Jobs(jobs) => {
                for job in jobs {
                    self.take_job(m, job);
                }
            }
            Reply::Ack(job) => self.sent(m, job, Sent::Acked),
        }
    }

    fn beat(&mut self, m: usize, beat: Beat) {
        let held = self.minions[m].epoch;
        let jitter = self.rng.unit();
        let t = self.t.clone();
        let no = self.minions[m].session_no;
        let Some(session) = self.minions[m].session.as_mut() else {
            return;
        };
        let steps = session.heartbeat(beat, held, &t, jitter);
        let next = session.next_heartbeat(self.now, &t);
        self.at(next, Event::Beat(m, no));
        for step in steps {
            match step {
                Step::Continue => {}
                Step::FetchMissed => self.send(m, Request::Missed),
                Step::Rekey(d) => self.rekey_after(m, d),
                Step::Reconnect(_) => {
                    self.end_session(m);
                    return;
                }
            }
        }
    }

    fn run(&mut self, until: f64) {
        while let Some(Reverse((when, seq))) = self.queue.pop() {
            self.now = when as f64 / 1e6;
            if self.now > until {
                break;
            }
            if let Some(e) = self.events.remove(&seq) {
                self.step(e);
            }
        }
    }
}

/// One run: `minions` minions, `jobs` jobs and `crashes` master crashes
/// and `rotations` key rotations spread over the faulty first part.
fn simulate(
    seed: u64,
    minions: usize,
    jobs: u32,
    crashes: u32,
    rotations: u32,
    faults: Faults,
) -> Sim {
    let mut sim = Sim {
        now: 0.0,
        seq: 0,
        queue: BinaryHeap::new(),
        events: HashMap::new(),
        rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        faults,
        t: Timing::default(),
        master: Master {
            up: true,
            boot: 1,
            epoch: 1,
            jobs: Vec::new(),
            stored: BTreeMap::new(),
        },
        minions: (0..minions).map(|_| Minion::default()).collect(),
        next_req: 0,
        next_job: 0,
    };
    for m in 0..minions {
        let d = sim.rng.unit() * 2.0;
        sim.at(d, Event::Connect(m));
    }
    for _ in 0..jobs {
        let d = 5.0 + sim.rng.unit() * (faults.until - 10.0);
        sim.at(d, Event::NewJob);
    }
    for _ in 0..crashes {
        let d = 5.0 + sim.rng.unit() * (faults.until - 10.0);
        sim.at(d, Event::Crash);
    }
    for _ in 0..rotations {
        let d = 5.0 + sim.rng.unit() * (faults.until - 10.0);
        sim.at(d, Event::Rotate);
    }
    // After the faults, time for every backoff to run out.
    sim.run(faults.until + 1200.0);
    sim
}

fn check(sim: &Sim, seed: u64) {
    let jobs = &sim.master.jobs;
    for m in 0..sim.minions.len() {
        let mi = &sim.minions[m];
        assert!(
            mi.given_up.is_empty(),
            "seed {seed}: minion {m} gave up on {:?}",
            mi.given_up
        );
        for job in jobs {
            assert!(
                sim.master.stored.contains_key(&(*job, m)),
                "seed {seed}: job {job} has no return from minion {m} (seen: {}, delivering: {})",
                mi.seen.contains(job),
                mi.deliveries.contains_key(job)
            );
        }
        assert!(
            mi.session.is_some(),
            "seed {seed}: minion {m} is not connected at the end"
        );
        assert_eq!(
            mi.epoch, sim.master.epoch,
            "seed {seed}: minion {m} holds an old session key"
        );
    }
    // Stored once each: a return offered twice was acknowledged twice
    // but is one entry.
    assert_eq!(sim.master.stored.len(), jobs.len() * sim.minions.len());
}

#[test]
fn every_job_returns_once_over_a_network_that_drops_a_fifth_of_all_messages() {
    let faults = Faults {
        drop: 0.2,
        jitter: 2.0,
        until: 600.0,
    };
    let mut dup = 0;
    for seed in 1..=40 {
        let sim = simulate(seed, 12, 8, 2, 2, faults);
        check(&sim, seed);
        dup += sim.master.stored.values().filter(|n| **n > 1).count();
    }
    // With a fifth of the acknowledgements lost, some returns must have
    // been sent again (and stored once).
    assert!(
        dup > 0,
        "no return was ever sent twice: the faults did not bite"
    );
}

#[test]
fn every_job_returns_once_when_half_of_all_messages_are_lost() {
    let faults = Faults {
        drop: 0.5,
        jitter: 5.0,
        until: 900.0,
    };
    for seed in 100..=120 {
        let sim = simulate(seed, 8, 6, 3, 3, faults);
        check(&sim, seed);
    }
}

#[test]
fn a_clean_network_needs_no_second_try() {
    let faults = Faults {
        drop: 0.0,
        jitter: 0.05,
        until: 300.0,
    };
    for seed in 1..=5 {
        let sim = simulate(seed, 10, 5, 0, 0, faults);
        check(&sim, seed);
        assert!(sim.master.stored.values().all(|n| *n == 1), "seed {seed}");
    }
}
