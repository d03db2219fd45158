//! Compress and decompress individual blocks.
//!
//! These methods process all the input data at once.
//! It is therefore best used with relatively small blocks
//! (like small network packets).

mod compressor;
mod decompressor;

pub use self::compressor::Compressor;
pub use self::decompressor::Decompressor;

use std::io;

/// Compresses a single block of data to the given destination buffer.
///
/// Returns the number of bytes written, or an error if something happened
/// (for instance if the destination buffer was too small).
///
/// A level of `0` uses zstd's default (currently `3`).
pub fn compress_to_buffer(
    source: &[u8],
    destination: &mut [u8],
    level: i32,
) -> io::Result<usize> {
    with_compressor(|c| c.compress_to_buffer(source, destination, level))
}

/// Compresses a block of data and returns the compressed result.
///
/// A level of `0` uses zstd's default (currently `3`). Inputs shorter than
/// 512 bytes are compressed at level `-1` at most (cmdb patch).
pub fn compress(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    with_compressor(|c| c.compress(data, small_input_level(data, level)))
}

// cmdb patch: inputs shorter than this are compressed at `SMALL_LEVEL`.
const SMALL_INPUT: usize = 512;

// cmdb patch: a negative (fast) level, which stores literals as they are
// instead of building a Huffman table for them.
const SMALL_LEVEL: i32 = -1;

// cmdb patch: the level `compress` uses for `data`. sled compresses every
// record it logs, most of them a few hundred bytes (an insert into a tree
// node); building entropy tables for so little cost more than half of the
// compression time of a master storing a fleet's ping returns, and saves
// a few bytes at most. Larger inputs (whole nodes, documents) keep the
// caller's level. The output is a zstd frame either way.
fn small_input_level(data: &[u8], level: i32) -> i32 {
    if data.len() < SMALL_INPUT {
        level.min(SMALL_LEVEL)
    } else {
        level
    }
}

// cmdb patch: the free functions reuse one context per thread. Creating a
// zstd context and its workspace (hundreds of KB, zeroed) for every block
// cost more than compressing a small block; callers such as sled compress
// every value they write through `compress`. A context carries no state from
// one block to the next (each call passes its level and starts a new frame),
// so the output is byte for byte what a new context would produce.
thread_local! {
    static COMPRESSOR: std::cell::RefCell<Compressor> =
        std::cell::RefCell::new(Compressor::new());
    static DECOMPRESSOR: std::cell::RefCell<Decompressor> =
        std::cell::RefCell::new(Decompressor::new());
}

// cmdb patch: runs `f` with this thread's compressor, or with a new one if
// the thread's is in use or already torn down (thread exit).
fn with_compressor<T>(f: impl FnOnce(&mut Compressor) -> T) -> T {
    let mut f = Some(f);
    let reused = COMPRESSOR.try_with(|cell| {
        cell.try_borrow_mut()
            .ok()
            .map(|mut c| (f.take().expect("called once"))(&mut c))
    });
    match reused {
        Ok(Some(out)) => out,
        _ => (f.take().expect("called once"))(&mut Compressor::new()),
    }
}

// cmdb patch: as `with_compressor`, for decompression.
fn with_decompressor<T>(f: impl FnOnce(&mut Decompressor) -> T) -> T {
    let mut f = Some(f);
    let reused = DECOMPRESSOR.try_with(|cell| {
        cell.try_borrow_mut()
            .ok()
            .map(|mut d| (f.take().expect("called once"))(&mut d))
    });
    match reused {
        Ok(Some(out)) => out,
        _ => (f.take().expect("called once"))(&mut Decompressor::new()),
    }
}

/// Deompress a single block of data to the given destination buffer.
///
/// Returns the number of bytes written, or an error if something happened
/// (for instance if the destination buffer was too small).
pub fn decompress_to_buffer(
    source: &[u8],
    destination: &mut [u8],
) -> io::Result<usize> {
    with_decompressor(|d| d.decompress_to_buffer(source, destination))
}

/// Decompresses a block of data and returns the decompressed result.
///
/// The decompressed data should be less than `capacity` bytes,
/// or an error will be returned.
pub fn decompress(data: &[u8], capacity: usize) -> io::Result<Vec<u8>> {
    with_decompressor(|d| d.decompress(data, capacity))
}

#[cfg(test)]
mod tests {
    use super::{compress, decompress};

    #[test]
    fn test_direct() {
        // Can we include_str!("assets/example.txt")?
        // It's excluded from the packaging step, so maybe not.
        let text = include_str!("../../assets/example.txt");
        crate::test_cycle_unwrap(
            text.as_bytes(),
            |data| compress(data, 1),
            |data| decompress(data, text.len()),
        );
    }
}
