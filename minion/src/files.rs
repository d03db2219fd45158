//! Files over the request socket: reading `cmdb://` paths from the master's
//! file roots in chunks (checked against the master's SHA-256) and pushing
//! files into this minion's own directory on the master.

use std::io::Read;
use std::path::Path;

use protocol::{FilePush, FileRead, ReplyBody, RequestBody};
use sha2::{Digest, Sha256};

use crate::session::Minion;

/// Chunk size asked for and sent.
const CHUNK: u32 = 1024 * 1024;

/// Fetches `cmdb://path` (given without the scheme) from the master.
pub async fn fetch(m: &Minion, path: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut want_hash: Option<Vec<u8>> = None;
    loop {
        let link = m.link().ok_or("not connected to the master")?;
        let req = RequestBody::FileRead(FileRead {
            path: path.to_owned(),
            offset: out.len() as u64,
            len: CHUNK,
        });
        let reply = link.request(req, false).await.map_err(|e| e.to_string())?;
        let ReplyBody::FileData { data, size, sha256 } = reply.body else {
            return Err("unexpected answer to a file read".into());
        };
        if let Some(h) = sha256 {
            want_hash = Some(h.into_vec());
        }
        out.extend_from_slice(&data);
        if out.len() as u64 >= size || data.is_empty() {
            break;
        }
    }
    let got = Sha256::digest(&out).to_vec();
    match want_hash {
        Some(h) if h == got => Ok(out),
        Some(_) => Err(format!(
            "cmdb://{path} changed or was damaged in transfer (SHA-256 mismatch)"
        )),
        None => Err(format!("cmdb://{path}: the master sent no checksum")),
    }
}

/// Lists the files below `cmdb://path` (a directory) on the master.
pub async fn list(m: &Minion, path: &str) -> Result<Vec<states::roots::Listed>, String> {
    let link = m.link().ok_or("not connected to the master")?;
    let req = RequestBody::FileList(protocol::FileList {
        path: path.to_owned(),
    });
    let reply = link.request(req, false).await.map_err(|e| e.to_string())?;
    let ReplyBody::FileList { files } = reply.body else {
        return Err("unexpected answer to a file listing".into());
    };
    Ok(files
        .into_iter()
        .map(|f| states::roots::Listed {
            path: f.path,
            size: f.size,
            sha256: f.sha256,
        })
        .collect())
}

/// Pushes the local file `local` to the master as `remote` (a relative path
/// inside this minion's directory there). Returns the bytes sent.
pub async fn push(m: &Minion, local: &Path, remote: &str) -> Result<u64, String> {
    let mut f = std::fs::File::open(local).map_err(|e| format!("{}: {e}", local.display()))?;
    let mut hasher = Sha256::new();
    let mut whole = Vec::new();
    f.read_to_end(&mut whole)
        .map_err(|e| format!("{}: {e}", local.display()))?;
    hasher.update(&whole);
    let sum = hasher.finalize().to_vec();
    let chunks: Vec<&[u8]> = if whole.is_empty() {
        vec![&[][..]]
    } else {
        whole.chunks(CHUNK as usize).collect()
    };
    let mut offset = 0u64;
    let n = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let last = i + 1 == n;
        let link = m.link().ok_or("not connected to the master")?;
        let req = RequestBody::FilePush(FilePush {
            path: remote.to_owned(),
            offset,
            data: chunk.to_vec(),
            last,
            sha256: last.then(|| sum.clone()),
        });
        let reply = link.request(req, false).await.map_err(|e| e.to_string())?;
        let ReplyBody::FileStored { size } = reply.body else {
            return Err("unexpected answer to a file push".into());
        };
        offset = size;
    }
    Ok(offset)
}
