//! Host sources: where collectors read a host's files, directories and
//! links, and the few things a file cannot tell (file-system usage, IPv4
//! addresses, the machine architecture, a command's output).
//!
//! [`LocalHost`] reads the running system (root `/`) or a fixture tree
//! below another root (tests, `root` in `minion.toml`); only the running
//! system answers commands and kernel queries. A remote host over SSH is
//! read through a [`crate::snapshot::Snapshot`] fetched in one round trip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::CollectError;

/// Size and use of a mounted file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Total size.
    pub size: u64,
    /// Free, root's reserve included.
    pub free: u64,
    /// Free for unprivileged users.
    pub available: u64,
}

/// What collectors read a host through. Paths are absolute paths on the
/// host (`/proc/meminfo`).
pub trait HostSource: Send + Sync {
    /// The path as errors name it (below a fixture root, the full path).
    fn display_path(&self, path: &str) -> PathBuf;

    /// A text file's contents.
    fn read(&self, path: &str) -> Result<String, CollectError>;

    /// A directory's entry names, sorted.
    fn list_dir(&self, path: &str) -> Result<Vec<String>, CollectError>;

    /// Where a symbolic link points, if `path` is one.
    fn read_link(&self, path: &str) -> Option<String>;

    /// Whether something exists at `path`.
    fn exists(&self, path: &str) -> bool;

    /// Whether `path` is a directory.
    fn is_dir(&self, path: &str) -> bool;

    /// Size and use of the file system mounted at `mountpoint`.
    fn fs_usage(&self, mountpoint: &str) -> Option<FsUsage>;

    /// IPv4 addresses (`address/prefix`) by interface, when the source can
    /// tell.
    fn ipv4_addrs(&self) -> Option<BTreeMap<String, Vec<String>>>;

    /// The machine architecture (`x86_64`), when the source can tell.
    fn arch(&self) -> Option<String>;

    /// Whether [`HostSource::run`] runs commands on this host.
    fn runs_commands(&self) -> bool;

    /// The standard output of `argv` run on the host.
    fn run(&self, argv: &[&str]) -> Result<Vec<u8>, CollectError>;

    /// Like [`HostSource::read`], but a missing or unreadable file is `None`.
    fn read_opt(&self, path: &str) -> Option<String> {
        self.read(path).ok()
    }
}

/// The local system below a root: `/` for the running system, another
/// directory for a fixture tree.
#[derive(Debug, Clone)]
pub struct LocalHost {
    root: PathBuf,
}

impl LocalHost {
    /// Reads below `root`.
    pub fn new(root: &Path) -> LocalHost {
        LocalHost {
            root: root.to_owned(),
        }
    }

    fn live(&self) -> bool {
        self.root == Path::new("/")
    }
}

impl HostSource for LocalHost {
    fn display_path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn read(&self, path: &str) -> Result<String, CollectError> {
        let path = self.display_path(path);
        std::fs::read_to_string(&path).map_err(|source| CollectError::Read { path, source })
    }

    fn list_dir(&self, path: &str) -> Result<Vec<String>, CollectError> {
        let path = self.display_path(path);
        let rd = std::fs::read_dir(&path).map_err(|source| CollectError::Read {
            path: path.clone(),
            source,
        })?;
        let mut names: Vec<String> = rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    fn read_link(&self, path: &str) -> Option<String> {
        std::fs::read_link(self.display_path(path))
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    }

    fn exists(&self, path: &str) -> bool {
        self.display_path(path).exists()
    }

    fn is_dir(&self, path: &str) -> bool {
        self.display_path(path).is_dir()
    }

    fn fs_usage(&self, mountpoint: &str) -> Option<FsUsage> {
        let st = nix::sys::statvfs::statvfs(&self.display_path(mountpoint)).ok()?;
        let frag = st.fragment_size();
        Some(FsUsage {
            size: st.blocks() * frag,
            free: st.blocks_free() * frag,
            available: st.blocks_available() * frag,
        })
    }

    fn ipv4_addrs(&self) -> Option<BTreeMap<String, Vec<String>>> {
        if !self.live() {
            return None;
        }
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
            return Some(out);
        };
        for a in addrs {
            let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
                continue;
            };
            let (Some(ip), Some(mask)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) else {
                continue;
            };
            let prefix = u32::from(mask.ip()).count_ones();
            out.entry(a.interface_name)
                .or_default()
                .push(format!("{}/{prefix}", ip.ip()));
        }
        Some(out)
    }

    fn arch(&self) -> Option<String> {
        Some(std::env::consts::ARCH.into())
    }

    fn runs_commands(&self) -> bool {
        self.live()
    }

    fn run(&self, argv: &[&str]) -> Result<Vec<u8>, CollectError> {
        let program = argv.first().copied().unwrap_or_default().to_owned();
        if !self.live() {
            return Err(CollectError::Parse {
                path: program.into(),
                reason: "commands run only on the live system (root /)".into(),
            });
        }
        crate::process::run_blocking(crate::process::Command::new(argv.iter().copied()))
            .map(|out| out.stdout)
            .map_err(|source| CollectError::Command { program, source })
    }
}
