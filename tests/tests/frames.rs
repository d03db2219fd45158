//! Hostile ZMTP peers that never authenticate, spoken by hand
//! ([`tests::zmtp`]): frame headers announcing absurd lengths, trickled
//! frames, silent connections and malformed greetings, on both of the
//! master's ports, and a stand-in master sending the same to a minion. After
//! each the daemon is alive, its memory has not followed what the peer
//! announced, and a real minion still answers.

use std::net::{Ipv4Addr, TcpListener};

use serde_json::json;
use tests::zmtp::{Zmtp, flags, frame, greeting, long_header, raise_nofile, ready_body, rss_bytes};
use tests::{Cluster, ClusterOpts, WAIT, free_port};

/// The master's default `max_frame_bytes`.
const FRAME_LIMIT: u64 = 4 << 20;
/// What the master may grow by beyond one frame at the limit: allocator
/// slack, log buffers, per-connection state of the attack's connections.
const RSS_MARGIN: u64 = 24 << 20;

const HUGE: [u64; 4] = [1 << 30, 1 << 40, 1 << 62, u64::MAX];

fn ping(c: &Cluster) {
    let (v, stderr, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0), "{stderr}");
}

fn ports(c: &Cluster) -> [(u16, &'static str); 2] {
    [(c.ret_port, "DEALER"), (c.publish_port, "SUB")]
}

/// Starts a master with one accepted minion that answers a ping, and
/// returns the master's resident memory then.
fn serving(opts: ClusterOpts) -> (Cluster, u64) {
    let mut c = Cluster::start(opts);
    c.start_accepted(&["web01"]);
    ping(&c);
    let rss = rss_bytes(c.master().pid());
    (c, rss)
}

fn assert_still_serving(c: &mut Cluster, rss_before: u64) {
    assert!(c.master_mut().is_running(), "the master died");
    let rss = rss_bytes(c.master().pid());
    eprintln!("master RSS before {rss_before} B, after {rss} B");
    assert!(
        rss < rss_before + FRAME_LIMIT + RSS_MARGIN,
        "master RSS grew from {rss_before} to {rss} bytes"
    );
    ping(c);
}

#[test]
fn frame_headers_announcing_huge_lengths_are_refused_before_allocating() {
    let (mut c, rss) = serving(ClusterOpts::default());
    for (port, socket_type) in ports(&c) {
        for len in HUGE {
            for flag_bits in [0, flags::MORE, flags::COMMAND] {
                let mut z = Zmtp::handshake(port, socket_type).expect("handshake");
                z.send(&long_header(flag_bits, len)).expect("header");
                // The start of the body; the peer may be gone already.
                let _ = z.send(&[0x5a; 4096]);
                assert!(
                    z.closed_within(WAIT),
                    "port {port}: a {len}-byte header (flags {flag_bits:#x}) left the connection open"
                );
            }
        }
        // The same during the handshake, in place of READY.
        for len in HUGE {
            let mut z = Zmtp::connect(port).expect("connect");
            z.greet().expect("greeting");
            z.send(&long_header(flags::COMMAND, len)).expect("header");
            assert!(z.closed_within(WAIT), "port {port}: {len}-byte READY");
        }
    }
    c.master().wait_for("exceeds the limit of 4194304 bytes");
    c.master().wait_for("exceeds the limit of 1024 bytes");
    assert_still_serving(&mut c, rss);
}

#[test]
fn a_trickled_gigabyte_frame_is_cut_off_at_the_limit() {
    let (mut c, rss) = serving(ClusterOpts::default());
    let cut_by = |sent: Option<u64>, what: &str| {
        let sent = sent.unwrap_or_else(|| panic!("{what}: the whole gigabyte was taken"));
        // The limit, plus what the two kernels' socket buffers absorbed.
        assert!(
            sent <= FRAME_LIMIT + (32 << 20),
            "{what}: {sent} bytes taken"
        );
    };
    for (port, socket_type) in ports(&c) {
        let mut z = Zmtp::handshake(port, socket_type).expect("handshake");
        z.send(&long_header(0, 1 << 30)).expect("header");
        cut_by(z.trickle(1 << 30, 1 << 20), "one 1 GiB frame");
    }
    // A multipart message of 1 MiB frames each under the frame limit is cut
    // at the message limit.
    let mut z = Zmtp::handshake(c.ret_port, "DEALER").expect("handshake");
    let part = frame(flags::MORE, &vec![0x5a; 1 << 20]);
    let mut sent = 0u64;
    let refused = (0..1024).find(|_| {
        let ok = z.send(&part).is_ok();
        sent += part.len() as u64;
        !ok
    });
    assert!(refused.is_some(), "1 GiB of message parts was taken");
    cut_by(Some(sent), "1 MiB message parts");
    c.master().wait_for("message of");
    assert_still_serving(&mut c, rss);
}

#[test]
fn malformed_greetings_commands_and_flags_are_dropped() {
    let (mut c, rss) = serving(ClusterOpts::default());
    let mut v2 = greeting();
    v2[10] = 2;
    let mut curve = greeting();
    curve[12..17].copy_from_slice(b"CURVE");
    let mut bad_sig = greeting();
    bad_sig[0] = 0x00;
    let mut unknown_cmd = vec![5];
    unknown_cmd.extend_from_slice(b"HELLO");
    let mut overlong_property = vec![5];
    overlong_property.extend_from_slice(b"READY");
    overlong_property.push(11);
    overlong_property.extend_from_slice(b"Socket-Type");
    overlong_property.extend_from_slice(&u32::MAX.to_be_bytes());
    overlong_property.extend_from_slice(b"DEALER");
    // Each must make the master close the connection during the handshake.
    let handshakes: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("bad signature", bad_sig.to_vec(), vec![]),
        ("ZMTP 2", v2.to_vec(), vec![]),
        (
            "unknown command",
            greeting().to_vec(),
            frame(flags::COMMAND, &unknown_cmd),
        ),
        (
            "overlong property",
            greeting().to_vec(),
            frame(flags::COMMAND, &overlong_property),
        ),
        (
            "empty command",
            greeting().to_vec(),
            frame(flags::COMMAND, &[]),
        ),
        (
            "message before READY",
            greeting().to_vec(),
            frame(0, b"hello"),
        ),
        (
            "bogus socket type",
            greeting().to_vec(),
            frame(flags::COMMAND, &ready_body("BOGUS")),
        ),
        (
            "incompatible socket type",
            greeting().to_vec(),
            frame(flags::COMMAND, &ready_body("PUB")),
        ),
        ("half a greeting", greeting()[..20].to_vec(), vec![]),
    ];
    for (port, _) in ports(&c) {
        for (what, first, then) in &handshakes {
            let mut z = Zmtp::connect(port).expect("connect");
            z.send(first).expect("greeting");
            if !then.is_empty() {
                let _ = z.send(then);
            }
            if *what == "half a greeting" {
                // Nothing more comes: the handshake deadline closes it (a
                // later test waits for that); here it is only left open.
                continue;
            }
            assert!(
                z.closed_within(WAIT),
                "port {port}: {what} left the connection open"
            );
        }
        let _ = curve; // CURVE is answered with our NULL greeting; the READY exchange then fails.
    }
    // After a good handshake: odd flags and stray commands.
    for (port, socket_type) in ports(&c) {
        for bytes in [
            vec![0xf8, 1, 0],
            frame(flags::COMMAND, &unknown_cmd),
            frame(flags::COMMAND, b"\x05READY"),
            frame(flags::COMMAND, &[200]),
        ] {
            let mut z = Zmtp::handshake(port, socket_type).expect("handshake");
            let _ = z.send(&bytes);
            let _ = z.send(&frame(0, b"\x01cmdb"));
        }
    }
    assert_still_serving(&mut c, rss);
}

#[test]
fn silent_connections_beyond_the_cap_are_closed_at_once() {
    raise_nofile();
    let (mut c, rss) = serving(ClusterOpts {
        master_extra: "auth_grace_secs = 600\nmax_unauthenticated = 100".into(),
    });
    // From 127.0.0.2, where no minion runs, so publish connections are not
    // trusted through their address either.
    let stranger = Ipv4Addr::new(127, 0, 0, 2);
    for (port, socket_type) in ports(&c) {
        let mut conns = Vec::new();
        for _ in 0..500 {
            let mut z = Zmtp::connect_from(stranger, port).expect("connect");
            // Beyond the cap the master may close before READY arrives.
            let _ = z.greet().and_then(|_| z.ready(socket_type));
            conns.push(z);
        }
        // The connections finish their handshakes concurrently, so which
        // hundred are kept is not known: wait until 400 are closed.
        let mut closed = vec![false; conns.len()];
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            for (z, done) in conns.iter_mut().zip(closed.iter_mut()) {
                *done = *done || z.is_closed_now();
            }
            let n = closed.iter().filter(|d| **d).count();
            if n >= 400 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "port {port}: only {n} of 500 closed"
            );
            std::thread::yield_now();
        }
        // A real minion is served meanwhile, and the hundred are still held
        // (until their grace ends).
        ping(&c);
        let open = conns
            .iter_mut()
            .map(|z| !z.is_closed_now())
            .filter(|o| *o)
            .count();
        assert_eq!(open, 100, "port {port} ({socket_type})");
    }
    c.master()
        .wait_for("too many connections that have not authenticated");
    assert_still_serving(&mut c, rss);
}

#[test]
fn silent_and_half_greeted_connections_are_closed_after_the_grace() {
    raise_nofile();
    let (mut c, rss) = serving(ClusterOpts {
        master_extra: "auth_grace_secs = 2".into(),
    });
    let stranger = Ipv4Addr::new(127, 0, 0, 2);
    for (port, socket_type) in ports(&c) {
        let mut conns = Vec::new();
        for i in 0..500 {
            let mut z = Zmtp::connect_from(stranger, port).expect("connect");
            match i % 3 {
                0 => {}
                1 => z.send(&greeting()[..20]).expect("half a greeting"),
                _ => z
                    .greet()
                    .and_then(|_| z.ready(socket_type))
                    .expect("handshake"),
            }
            conns.push(z);
        }
        for (i, z) in conns.iter_mut().enumerate() {
            assert!(
                z.closed_within(WAIT),
                "port {port}: silent connection {i} stayed open"
            );
        }
    }
    c.master().wait_for("dropped a connection");
    // The real minion's own connections were never cut.
    assert_eq!(
        c.minion("web01").count("reconnect"),
        0,
        "{}",
        c.minion("web01").logs()
    );
    assert_still_serving(&mut c, rss);
}

/// A stand-in master socket of `socket_type` on `listener`: it accepts the
/// minion, completes the handshake, then sends a frame header announcing
/// `HUGE[n]` bytes on the n-th connection, and waits for the minion to drop
/// it. Returns how many connections it attacked.
fn hostile_master(
    listener: TcpListener,
    socket_type: &'static str,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut served = 0;
        while served < HUGE.len() {
            let Ok(mut z) = Zmtp::accept(&listener) else {
                break;
            };
            if z.greet().and_then(|_| z.ready(socket_type)).is_err() {
                continue;
            }
            let _ = z.send(&long_header(0, HUGE[served]));
            let _ = z.send(&[0x5a; 4096]);
            assert!(
                z.closed_within(WAIT),
                "the minion kept a connection that announced {} bytes",
                HUGE[served]
            );
            served += 1;
        }
        served
    })
}

fn minion_alive_and_small(minion: &mut tests::Proc) {
    assert!(minion.is_running(), "the minion died:\n{}", minion.logs());
    let rss = rss_bytes(minion.pid());
    assert!(rss < 64 << 20, "minion RSS {rss} bytes\n{}", minion.logs());
    minion.wait_for("it sent a frame that was refused");
}

#[test]
fn a_request_port_announcing_huge_frames_leaves_the_minion_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let request = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let ret_port = request.local_addr().expect("addr").port();
    let attacks = hostile_master(request, "ROUTER");
    let cfg = dir.path().join("minion.toml");
    std::fs::write(
        &cfg,
        format!(
            "master = \"127.0.0.1\"\npublish_port = {}\nret_port = {ret_port}\n\
             state_dir = \"{}\"\nid = \"web01\"\nrandom_reauth_delay = 0.1\n\
             acceptance_wait_time = 0.1\nacceptance_wait_time_max = 0.2\nrequest_timeout = 1\n\
             collect_interval = 0\n",
            free_port(),
            dir.path().join("state").display()
        ),
    )
    .expect("config");
    let mut cmd = std::process::Command::new(tests::bin_dir().join("cmdb-minion"));
    cmd.arg("-c").arg(&cfg);
    let mut minion = tests::Proc::spawn("web01", cmd);
    assert_eq!(attacks.join().expect("stand-in master"), HUGE.len());
    minion_alive_and_small(&mut minion);
}

#[test]
fn a_publish_port_announcing_huge_frames_leaves_the_minion_running() {
    // A real master for auth and requests; a hostile PUB in its place.
    let mut c = Cluster::start(ClusterOpts::default());
    let publish = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let pub_port = publish.local_addr().expect("addr").port();
    let attacks = hostile_master(publish, "PUB");
    c.start_minion_with("web01", "web01", &format!("publish_port = {pub_port}"))
        .wait_for("key pending acceptance");
    c.key(&["-A", "-y"]);
    assert_eq!(attacks.join().expect("stand-in publisher"), HUGE.len());
    let minion = c.minions.get_mut("web01").expect("minion");
    assert!(minion.is_running(), "the minion died:\n{}", minion.logs());
    let rss = rss_bytes(minion.pid());
    assert!(rss < 64 << 20, "minion RSS {rss} bytes\n{}", minion.logs());
}
