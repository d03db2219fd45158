//! Fleet pings and collects through a master cluster of two peers on this
//! machine (see `bench::cluster`): one PostgreSQL server and one NATS
//! server, two masters sharing them, and one `cmdb-swarm` of N minions
//! connected to each peer.
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! target/release/examples/cluster_speed 9000 5 3
//! ```
//! Arguments: minions per peer (9000), pings (5), collects (3). Prints each
//! job's wall time, the returns it got, and the CPU seconds of each master,
//! each swarm and PostgreSQL over it. `bash bench/run.sh --cluster 9000`
//! runs the same and writes its section of BENCHMARKS.md, with the floor.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, pings, collects) = (arg(0, 9000), arg(1, 5), arg(2, 3));
    let run = bench::cluster::run(n, pings, collects)?;
    println!(
        "ping median {:.2} s, collect median {:.2} s ({} minions over two peers)",
        run.median("test.ping").unwrap_or(0.0),
        run.median("collect").unwrap_or(0.0),
        run.minions
    );
    println!(
        "peak RSS: master A {:.0} MiB, master B {:.0} MiB",
        run.peak_rss_mib[0], run.peak_rss_mib[1]
    );
    Ok(())
}
