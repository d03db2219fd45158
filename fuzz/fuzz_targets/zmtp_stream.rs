//! The ZMTP decoder (greeting, commands, frame headers and bodies) on an
//! arbitrary byte stream delivered in reads split at arbitrary points, with
//! the frame and message limits the master sets. Whatever a frame header
//! announces, nothing larger than the limits is buffered or allocated
//! (libFuzzer's malloc limit catches a large reservation), decoded messages
//! stay within the message limit, and after an error the stream ends.
#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{AsyncRead, StreamExt};
use libfuzzer_sys::fuzz_target;
use zeromq::SocketOptions;
use zeromq::__bench::{Message, zmq_framed_read_with_options};

const MAX_FRAME: usize = 64 * 1024;
const MAX_MESSAGE: usize = 128 * 1024;

/// Hands out `data` in reads whose sizes follow a small generator.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    state: u32,
}

impl AsyncRead for Chunked {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pos >= this.data.len() {
            return Poll::Ready(Ok(0));
        }
        this.state ^= this.state << 13;
        this.state ^= this.state >> 17;
        this.state ^= this.state << 5;
        let want = match this.state % 8 {
            0 => 1,
            1 => 9,
            2..=5 => 1 + (this.state >> 8) as usize % 64,
            _ => 1 + (this.state >> 8) as usize % 8192,
        };
        let n = want.min(buf.len()).min(this.data.len() - this.pos);
        buf[..n].copy_from_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(n))
    }
}

fn greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[12..16].copy_from_slice(b"NULL");
    g
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    let Some((&seed, rest)) = rest.split_first() else { return };
    // Half of the inputs get a valid greeting in front, so the fuzzer spends
    // its time on commands and frames.
    let mut data = Vec::with_capacity(rest.len() + 64);
    if mode & 1 == 1 {
        data.extend_from_slice(&greeting());
    }
    data.extend_from_slice(rest);
    let mut options = SocketOptions::default();
    options.max_frame_size(MAX_FRAME).max_message_size(MAX_MESSAGE);
    let reader = Chunked {
        data,
        pos: 0,
        state: u32::from(seed) | 0x1_0000,
    };
    let mut framed = zmq_framed_read_with_options(reader, Arc::new(options));
    futures::executor::block_on(async {
        let mut failed = false;
        while let Some(item) = framed.next().await {
            assert!(!failed, "the stream went on after an error");
            match item {
                Ok(Message::Message(m)) => {
                    let total: usize = m.iter().map(|f| f.len()).sum();
                    assert!(total <= MAX_MESSAGE, "a {total}-byte message passed the limit");
                }
                Ok(_) => {}
                Err(_) => failed = true,
            }
        }
    });
});
