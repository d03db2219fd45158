//! `cmdb events`: follows the master's event bus, like Salt's
//! `state.event`.
//!
//! Exit codes: 0 when the master ends the stream (it stopped), 1 when it
//! refuses the request or cannot be reached.

use std::io::Write;

use anyhow::Context;

use crate::client::{Client, Endpoint, segment};

/// How events print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventFormat {
    /// The tag, then the data as compact JSON, on one line.
    Text,
    /// Each event as one JSON object per line (`tag`, `time_ms`, `data`).
    Json,
}

/// Prints events whose tag matches `tag` until the master ends the stream.
pub fn follow(socket: &Endpoint, tag: Option<&str>, out: EventFormat) -> anyhow::Result<u8> {
    let client = Client::new(socket).with_context(|| crate::run::unreachable(socket))?;
    let uri = match tag {
        Some(t) => format!("/v1/events?tag={}", segment(t)),
        None => "/v1/events".to_owned(),
    };
    let mut problem = None;
    let stdout = std::io::stdout();
    client
        .follow(
            &uri,
            |_, data| {
                let mut w = stdout.lock();
                match out {
                    EventFormat::Json => writeln!(w, "{data}")?,
                    EventFormat::Text => {
                        let v: serde_json::Value =
                            serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
                        writeln!(w, "{}\t{}", v["tag"].as_str().unwrap_or("?"), v["data"])?;
                    }
                }
                w.flush()?;
                Ok(true)
            },
            &mut problem,
        )
        .with_context(|| crate::run::unreachable(socket))?;
    if let Some(message) = problem {
        anyhow::bail!("{message}");
    }
    Ok(0)
}
