//! Running system tools as argument vectors (never through a shell unless a
//! state asks for one explicitly, as `cmd.run` does).

use std::process::{Command, Stdio};

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Exit code (128 + signal when killed).
    pub code: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Process id.
    pub pid: u32,
}

impl Ran {
    /// Whether it exited 0.
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// Runs `argv` with extra environment variables.
pub fn run_env(argv: &[&str], env: &[(&str, &str)], cwd: Option<&str>) -> Result<Ran, String> {
    run_full(argv, env, cwd, None)
}

/// Runs `argv` with `input` on its standard input.
pub fn run_input(argv: &[&str], input: &str) -> Result<Ran, String> {
    run_full(argv, &[], None, Some(input))
}

fn run_full(
    argv: &[&str],
    env: &[(&str, &str)],
    cwd: Option<&str>,
    input: Option<&str>,
) -> Result<Ran, String> {
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let mut c = Command::new(prog);
    c.args(args).stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(dir) = cwd {
        c.current_dir(dir);
    }
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{prog}: {e}"))?;
    let pid = child.id();
    let mut child = child;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{prog}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{prog}: {e}"))?;
    use std::os::unix::process::ExitStatusExt;
    let code = out
        .status
        .code()
        .or_else(|| out.status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    Ok(Ran {
        code,
        stdout: protocol::text::backslash_escape(&out.stdout)
            .trim_end()
            .to_owned(),
        stderr: protocol::text::backslash_escape(&out.stderr)
            .trim_end()
            .to_owned(),
        pid,
    })
}

/// Runs `argv`.
pub fn run(argv: &[&str]) -> Result<Ran, String> {
    run_env(argv, &[], None)
}

/// Runs a command string through `/bin/sh -c` (for `cmd.run` and its
/// `unless`/`onlyif` conditions, whose text is the operator's own).
pub fn shell(cmd: &str, cwd: Option<&str>) -> Result<Ran, String> {
    run_env(&["/bin/sh", "-c", cmd], &[], cwd)
}

/// Whether an executable is on the usual system paths.
pub fn have(tool: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(tool).exists())
}
