//! A task's reader, and the size and SHA-256 of its file for the manifest:
//! read once where the file is small enough to hold, else hashed as a stream.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::Task;
use crate::config::hex;
use crate::error::{Error, Result};
use crate::ingest;

/// Largest Parquet file that a task reads whole into memory to hash it and decode
/// it from the same bytes (larger files are hashed as a stream and read by range,
/// so memory stays bounded whatever the file's size).
pub(super) const IN_MEMORY_FILE_LIMIT: u64 = 64 << 20;

/// Opens a task's reader and, for the task that hashes its file, the file's size
/// and SHA-256. A whole Parquet file with its planned footer, up to
/// [`IN_MEMORY_FILE_LIMIT`], is read once: hashed and decoded from the same bytes.
pub(super) fn open_task(
    path: &Path,
    task: &Task,
    footer: Option<&ingest::Footer>,
    reading: ingest::Reading,
) -> Result<(u64, String, Box<dyn ingest::ChunkSource>)> {
    if let (true, None, Some(footer)) = (task.hash, &task.part, footer) {
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        if size <= IN_MEMORY_FILE_LIMIT {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let digest = hex(&Sha256::digest(&bytes));
            let size = bytes.len() as u64;
            let source = ingest::open_in_memory(path, bytes.into(), footer, reading)?;
            return Ok((size, digest, source));
        }
    }
    let (size, digest) = if task.hash {
        sha256_file(path)?
    } else {
        (0, String::new())
    };
    let source = ingest::open_with(path, task.part.as_ref(), footer, reading)?;
    Ok((size, digest, source))
}

fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((n, hex(&h.finalize())))
}
