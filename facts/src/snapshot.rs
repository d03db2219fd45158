//! A host read ahead in one round trip: what the collectors read (their
//! [`Probe`]s) is gathered by one POSIX shell script run on the host
//! ([`script`]), whose answer is framed by a random boundary line and
//! parsed into a [`Snapshot`], a [`HostSource`] the same collectors then
//! read. Over SSH this costs one command per host instead of one per
//! file. Text before the first boundary (banners, a noisy shell start-up
//! file) is ignored; an answer without the closing boundary is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use thiserror::Error;

use crate::source::{FsUsage, HostSource};
use crate::{CollectError, Collector};

/// Something a collector reads from a host. A path may hold shell globs
/// (`/sys/block/*/size`), expanded on the host, and be several paths
/// separated by spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Files' contents.
    File(&'static str),
    /// Files of one line (sysfs and procfs attributes), read by the shell
    /// itself: no process per file.
    Line(&'static str),
    /// Directories' entry names.
    Dir(&'static str),
    /// Symbolic links' targets.
    Link(&'static str),
    /// Whether paths exist.
    Exists(&'static str),
    /// Size and use of every mounted file system that is not a pseudo one.
    MountUsage,
    /// IPv4 addresses by interface.
    Ipv4,
    /// The machine architecture.
    Arch,
    /// A command's standard output, when its program is installed.
    Command(&'static [&'static str]),
}

/// Why a host's answer could not be read as a snapshot.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Nothing in the answer was framed by the boundary.
    #[error("the host's answer holds no facts (it began {start:?})")]
    NoFacts {
        /// The first bytes of the answer, lossily decoded.
        start: String,
    },
    /// The closing boundary never came.
    #[error("the host's answer was cut short after {bytes} bytes")]
    CutShort {
        /// How many bytes came.
        bytes: usize,
    },
}

/// The script that gathers `probes` on a host, framing each part with
/// `boundary` (which must be a word of letters and digits the files are
/// unlikely to hold: make it random).
pub fn script(boundary: &str, probes: &[Probe]) -> String {
    let mut s = String::new();
    s.push_str("LC_ALL=C; export LC_ALL\n");
    s.push_str(&format!("B={boundary}\n"));
    s.push_str("h() { printf '\\n%s %s %s\\n' \"$B\" \"$1\" \"$2\"; }\n");
    s.push_str(
        "f() { for p in \"$@\"; do if [ -f \"$p\" ]; then h F \"$p\"; cat -- \"$p\" 2>/dev/null || h X \"$p\"; fi; done; }\n",
    );
    s.push_str(
        "r() { for p in \"$@\"; do v=; if [ -f \"$p\" ] && { IFS= read -r v < \"$p\" || [ -n \"$v\" ]; } 2>/dev/null; then h F \"$p\"; printf '%s\\n' \"$v\"; fi; done; }\n",
    );
    s.push_str(
        "d() { for p in \"$@\"; do if [ -d \"$p\" ]; then h D \"$p\"; for e in \"$p\"/* \"$p\"/.[!.]* \"$p\"/..?*; do if [ -e \"$e\" ] || [ -L \"$e\" ]; then printf '%s\\n' \"${e##*/}\"; fi; done; fi; done; }\n",
    );
    s.push_str(
        "l() { for p in \"$@\"; do if [ -L \"$p\" ]; then h L \"$p\"; readlink -- \"$p\"; fi; done; }\n",
    );
    s.push_str(
        "e() { for p in \"$@\"; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then h E \"$p\"; fi; done; }\n",
    );
    let mut seen = BTreeSet::new();
    for probe in probes {
        if !seen.insert(format!("{probe:?}")) {
            continue;
        }
        match probe {
            Probe::File(p) => s.push_str(&format!("f {p}\n")),
            Probe::Line(p) => s.push_str(&format!("r {p}\n")),
            Probe::Dir(p) => s.push_str(&format!("d {p}\n")),
            Probe::Link(p) => s.push_str(&format!("l {p}\n")),
            Probe::Exists(p) => s.push_str(&format!("e {p}\n")),
            Probe::MountUsage => {
                let pseudo = crate::collectors::mounts::PSEUDO.join("|");
                s.push_str(&format!(
                    "while read -r dev mp fs rest; do case \"$fs\" in {pseudo}) ;; *) \
                     u=$(stat -f -c '%S %b %f %a' -- \"$mp\" 2>/dev/null) && {{ h S \"$mp\"; printf '%s' \"$u\"; }} ;; \
                     esac; done < /proc/mounts\n"
                ));
            }
            Probe::Ipv4 => s.push_str(
                "if command -v ip >/dev/null 2>&1; then h I -; ip -o -4 addr show 2>/dev/null; fi\n",
            ),
            Probe::Arch => s.push_str("h A -; uname -m\n"),
            Probe::Command(argv) => {
                let Some(program) = argv.first() else {
                    continue;
                };
                let quoted: Vec<String> = argv
                    .iter()
                    .map(|a| {
                        shlex::try_quote(a)
                            .map(|q| q.into_owned())
                            .unwrap_or_default()
                    })
                    .collect();
                let key = shlex::try_quote(&argv.join(" "))
                    .map(|q| q.into_owned())
                    .unwrap_or_default();
                s.push_str(&format!(
                    "if command -v {program} >/dev/null 2>&1; then h C {key}; {} 2>/dev/null; fi\n",
                    quoted.join(" ")
                ));
            }
        }
    }
    s.push_str("h END -\n");
    s
}

/// The probes of `collectors`.
pub fn probes_of(collectors: impl IntoIterator<Item = Collector>) -> Vec<Probe> {
    collectors
        .into_iter()
        .flat_map(|c| c.probes().iter().copied())
        .collect()
}

/// A host as read by [`script`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// File contents by path.
    files: BTreeMap<String, Vec<u8>>,
    /// Directory entry names by path, sorted.
    dirs: BTreeMap<String, Vec<String>>,
    /// Link targets by path.
    links: BTreeMap<String, String>,
    /// Paths known to exist.
    present: BTreeSet<String>,
    /// File-system usage by mount point.
    usage: BTreeMap<String, FsUsage>,
    /// IPv4 addresses by interface, when `ip` answered.
    ipv4: Option<BTreeMap<String, Vec<String>>>,
    /// The machine architecture.
    arch: Option<String>,
    /// Command outputs by the command's words joined with spaces.
    commands: BTreeMap<String, Vec<u8>>,
}

/// Where `needle` occurs in `hay`, in order, without overlaps.
fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..].windows(needle.len()).position(|w| w == needle) {
            Some(at) => {
                out.push(i + at);
                i += at + needle.len();
            }
            None => break,
        }
    }
    out
}

fn parse_usage(text: &str) -> Option<FsUsage> {
    let n: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [frag, blocks, free, avail] = n.as_slice() else {
        return None;
    };
    Some(FsUsage {
        size: blocks.checked_mul(*frag)?,
        free: free.checked_mul(*frag)?,
        available: avail.checked_mul(*frag)?,
    })
}

/// Parses `ip -o -4 addr show` into addresses by interface.
pub fn parse_ip_addr(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [_, name, "inet", addr, ..] = f.as_slice() {
            let name = name.split('@').next().unwrap_or_default();
            out.entry(name.to_owned())
                .or_default()
                .push((*addr).to_owned());
        }
    }
    out
}

impl Snapshot {
    /// Parses a host's answer to [`script`] run with `boundary`.
    pub fn parse(boundary: &str, answer: &[u8]) -> Result<Snapshot, SnapshotError> {
        let needle = format!("\n{boundary} ");
        let marks = find_all(answer, needle.as_bytes());
        if marks.is_empty() {
            let start = &answer[..answer.len().min(120)];
            return Err(SnapshotError::NoFacts {
                start: String::from_utf8_lossy(start).into_owned(),
            });
        }
        let mut snap = Snapshot::default();
        let mut last: Option<(u8, String)> = None;
        let mut complete = false;
        for (n, at) in marks.iter().enumerate() {
            let start = at + needle.len();
            let end = marks.get(n + 1).copied().unwrap_or(answer.len());
            let part = &answer[start..end];
            let (header, body) = match part.iter().position(|b| *b == b'\n') {
                Some(nl) => (&part[..nl], &part[nl + 1..]),
                None => (part, &part[part.len()..]),
            };
            let header = String::from_utf8_lossy(header);
            let Some((kind, path)) = header.split_once(' ') else {
                continue;
            };
            let path = path.to_owned();
            let text = || String::from_utf8_lossy(body).into_owned();
            match kind {
                "F" => {
                    snap.files.insert(path.clone(), body.to_vec());
                }
                "D" => {
                    let mut names: Vec<String> = text().lines().map(str::to_owned).collect();
                    names.sort();
                    snap.dirs.insert(path.clone(), names);
                }
                "L" => {
                    snap.links
                        .insert(path.clone(), text().trim_end().to_owned());
                }
                "E" => {
                    snap.present.insert(path.clone());
                }
                "S" => {
                    if let Some(u) = parse_usage(&text()) {
                        let mp = crate::collectors::mounts::unescape(&path);
                        snap.usage.insert(mp, u);
                    }
                }
                "I" => snap.ipv4 = Some(parse_ip_addr(&text())),
                "A" => snap.arch = Some(text().trim().to_owned()).filter(|a| !a.is_empty()),
                "C" => {
                    snap.commands.insert(path.clone(), body.to_vec());
                }
                "X" => {
                    // The read of the part just before failed half-way.
                    match last.take() {
                        Some((b'F', p)) if p == path => {
                            snap.files.remove(&p);
                        }
                        Some((b'D', p)) if p == path => {
                            snap.dirs.remove(&p);
                        }
                        _ => {}
                    }
                    continue;
                }
                "END" => {
                    complete = true;
                    break;
                }
                _ => continue,
            }
            last = Some((kind.as_bytes()[0], path));
        }
        if !complete {
            return Err(SnapshotError::CutShort {
                bytes: answer.len(),
            });
        }
        Ok(snap)
    }
}

fn missing(path: &str) -> CollectError {
    CollectError::Read {
        path: PathBuf::from(path),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found on the host"),
    }
}

impl HostSource for Snapshot {
    fn display_path(&self, path: &str) -> PathBuf {
        PathBuf::from(path)
    }

    fn read(&self, path: &str) -> Result<String, CollectError> {
        let bytes = self.files.get(path).ok_or_else(|| missing(path))?;
        String::from_utf8(bytes.clone()).map_err(|_| CollectError::Read {
            path: PathBuf::from(path),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ),
        })
    }

    fn list_dir(&self, path: &str) -> Result<Vec<String>, CollectError> {
        self.dirs.get(path).cloned().ok_or_else(|| missing(path))
    }

    fn read_link(&self, path: &str) -> Option<String> {
        self.links.get(path).cloned()
    }

    fn exists(&self, path: &str) -> bool {
        self.present.contains(path)
            || self.files.contains_key(path)
            || self.dirs.contains_key(path)
            || self.links.contains_key(path)
    }

    fn is_dir(&self, path: &str) -> bool {
        self.dirs.contains_key(path)
    }

    fn fs_usage(&self, mountpoint: &str) -> Option<FsUsage> {
        self.usage.get(mountpoint).copied()
    }

    fn ipv4_addrs(&self) -> Option<BTreeMap<String, Vec<String>>> {
        self.ipv4.clone()
    }

    fn arch(&self) -> Option<String> {
        self.arch.clone()
    }

    fn runs_commands(&self) -> bool {
        true
    }

    fn run(&self, argv: &[&str]) -> Result<Vec<u8>, CollectError> {
        self.commands
            .get(&argv.join(" "))
            .cloned()
            .ok_or_else(|| CollectError::Parse {
                path: argv.first().copied().unwrap_or_default().into(),
                reason: "not installed on the host".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Collector, LocalHost, collect_from};
    use std::collections::BTreeSet;
    use std::path::Path;

    const B: &str = "cmdbB0und4ry";

    fn run_here(probes: &[Probe]) -> Vec<u8> {
        let out = crate::process::run_blocking(
            crate::process::Command::new(["/bin/sh", "-s"]).stdin(script(B, probes).into_bytes()),
        )
        .expect("sh");
        out.stdout
    }

    #[test]
    fn this_host_read_ahead_gives_the_facts_read_in_place() {
        let all = probes_of(Collector::ALL);
        let snap = Snapshot::parse(B, &run_here(&all)).expect("parse");
        let ahead = collect_from(&snap, &BTreeSet::new(), "me");
        let here = collect_from(&LocalHost::new(Path::new("/")), &BTreeSet::new(), "me");
        for key in [
            "kernel",
            "kernelrelease",
            "kernelversion",
            "osarch",
            "os",
            "os_family",
            "osrelease",
            "num_cpus",
            "cpu",
            "cpu_flags",
            "mem_total_bytes",
            "machine_id",
            "virtual",
            "timezone",
            "host",
            "fqdn",
            "dns",
            "disks",
            "partitions",
            "hwaddr_interfaces",
            "default_gateway",
            "packages",
            "gpus",
            "ipv4",
            "ipv6",
            "boot_time",
        ] {
            assert_eq!(ahead.get(key), here.get(key), "{key}");
        }
        let mounts_ahead = ahead["mounts"].as_object().expect("mounts");
        let mounts_here = here["mounts"].as_object().expect("mounts");
        assert_eq!(
            mounts_ahead.keys().collect::<Vec<_>>(),
            mounts_here.keys().collect::<Vec<_>>()
        );
        assert_eq!(ahead.get("_errors"), here.get("_errors"));
    }

    #[test]
    fn garbage_and_cut_answers_are_refused_and_failed_reads_dropped() {
        let e = Snapshot::parse(B, b"Welcome!\nno facts here").expect_err("garbage");
        assert!(e.to_string().contains("Welcome!"), "{e}");
        let e = Snapshot::parse(B, format!("\n{B} F /etc/x\nabc").as_bytes()).expect_err("cut");
        assert!(matches!(e, SnapshotError::CutShort { .. }), "{e}");
        let answer = format!(
            "motd\n{B} junk\n{B} F /etc/a\none\n{B} F /etc/b\nhalf\n{B} X /etc/b\n{B} D /d\nz\ny\n{B} ?? what\n{B} END -\n"
        );
        let snap = Snapshot::parse(B, format!("\n{answer}").as_bytes()).expect("parse");
        assert_eq!(snap.read("/etc/a").expect("a"), "one");
        assert!(snap.read("/etc/b").is_err());
        assert_eq!(snap.list_dir("/d").expect("d"), vec!["y", "z"]);
        assert!(!snap.exists("/nothing"));
    }

    proptest::proptest! {
        #[test]
        fn any_answer_parses_or_is_refused_without_a_panic(
            parts in proptest::collection::vec(
                (proptest::sample::select(vec!["F", "D", "L", "E", "S", "I", "A", "C", "X", "END", "", "??"]),
                 "[ -~\n]{0,40}"),
                0..12,
            ),
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut answer = noise;
            for (kind, body) in parts {
                answer.extend_from_slice(format!("\n{B} {kind} {body}").as_bytes());
            }
            if let Ok(snap) = Snapshot::parse(B, &answer) {
                let _ = collect_from(&snap, &BTreeSet::new(), "x");
            }
        }
    }

    #[test]
    fn ip_addr_lines() {
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                    3: eth0@if9    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\n";
        let m = parse_ip_addr(text);
        assert_eq!(m["lo"], vec!["127.0.0.1/8"]);
        assert_eq!(m["eth0"], vec!["10.0.0.5/24"]);
    }
}
