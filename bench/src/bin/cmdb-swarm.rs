//! `cmdb-swarm`: simulates many minions in one process against a master.
//!
//! Prints progress to stderr each second and, on stdout, one JSON line each
//! time every minion is online (`{"event":"all_online",...}`). Runs until
//! SIGTERM or Ctrl-C. Exit codes: 0 after a clean stop, 1 on a bad config.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;
use bench::swarm::{Stats, SwarmConfig, run};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Simulate many minions against a cmdb master.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The master's config file (for its ports; the address is 127.0.0.1
    /// when the master binds every interface).
    #[arg(short, long)]
    config: PathBuf,
    /// Minions to simulate.
    #[arg(long)]
    count: usize,
    /// Id prefix.
    #[arg(long, default_value = "swarm-")]
    id_prefix: String,
    /// Fraction of churning facts that change between collects.
    #[arg(long, default_value_t = 0.01)]
    churn: f64,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 30.0)]
    heartbeat: f64,
    /// New connections per second while starting.
    #[arg(long, default_value_t = 2000.0)]
    connect_rate: f64,
    /// Seconds to wait for one reply.
    #[arg(long, default_value_t = 10.0)]
    request_timeout: f64,
    /// Longest random delay before reconnecting, seconds.
    #[arg(long, default_value_t = 10.0)]
    reconnect_jitter: f64,
    /// Longest random delay before asking for a rotated session key,
    /// seconds (a minion's `rotation_spread`).
    #[arg(long, default_value_t = 2.0)]
    rotation_spread: f64,
}

fn main() -> anyhow::Result<()> {
    // As the master: with huge pages the swarm spent a fifth of its CPU
    // zeroing 2 MiB pages.
    daemon::no_transparent_huge_pages();
    let cli = Cli::parse();
    if let Ok((soft, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    let text = std::fs::read_to_string(&cli.config)
        .with_context(|| format!("reading {}", cli.config.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", cli.config.display()))?;
    let get = |k: &str, d: i64| table.get(k).and_then(|v| v.as_integer()).unwrap_or(d);
    let interface = table
        .get("interface")
        .and_then(|v| v.as_str())
        .unwrap_or("0.0.0.0");
    let master = if interface == "0.0.0.0" {
        "127.0.0.1"
    } else {
        interface
    }
    .to_owned();
    let cfg = SwarmConfig {
        master,
        publish_port: u16::try_from(get("publish_port", 4505))?,
        ret_port: u16::try_from(get("ret_port", 4506))?,
        count: cli.count,
        prefix: cli.id_prefix,
        churn: cli.churn,
        heartbeat_secs: cli.heartbeat,
        connect_per_sec: cli.connect_rate,
        request_timeout: cli.request_timeout,
        reconnect_jitter: cli.reconnect_jitter,
        rotation_spread: cli.rotation_spread,
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let stats = Arc::new(Stats::default());
        let cancel = CancellationToken::new();
        let swarm = tokio::spawn(run(cfg.clone(), stats.clone(), cancel.clone()));
        let started = Instant::now();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut was_full = false;
        let stop = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        tokio::pin!(stop);
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {
                    eprintln!(
                        "swarm: online {}/{} ever {} pending {} returns {} reconnects {} handovers {} late_keys {}",
                        stats.online.load(Ordering::Relaxed), cfg.count, stats.ever.load(Ordering::Relaxed),
                        stats.pending.load(Ordering::Relaxed), stats.returns.load(Ordering::Relaxed),
                        stats.reconnects.load(Ordering::Relaxed), stats.handovers.load(Ordering::Relaxed),
                        stats.late_keys.load(Ordering::Relaxed)
                    );
                }
                _ = poll.tick() => {
                    let full = stats.online.load(Ordering::Relaxed) >= cfg.count;
                    let event = if full && !was_full {
                        Some(format!("{{\"event\":\"all_online\",\"count\":{},\"secs\":{:.3}}}", cfg.count, started.elapsed().as_secs_f64()))
                    } else if !full && was_full {
                        Some(format!("{{\"event\":\"lost\",\"online\":{},\"secs\":{:.3}}}", stats.online.load(Ordering::Relaxed), started.elapsed().as_secs_f64()))
                    } else {
                        None
                    };
                    if let Some(e) = event {
                        println!("{e}");
                        eprintln!("{e}");
                    }
                    was_full = full;
                }
            }
        }
        cancel.cancel();
        let _ = swarm.await;
    });
    Ok(())
}
