//! Publishing a run: the output folder's lock, the month built in a hidden
//! temporary folder and swapped into `<out>/<period>` in one step, crash
//! recovery, and the checks that keep billxfer from replacing or deleting
//! anything it did not write (docs/ARCHITECTURE.md, "Atomic output").

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};

/// What a directory entry is, in words, for error messages (`ft` from `symlink_metadata`).
fn kind_of(ft: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a folder"
    } else if ft.is_file() {
        "a file"
    } else if ft.is_fifo() {
        "a named pipe (FIFO)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a folder"
    }
}

/// Whether `path` is a real folder (a symbolic link to one is not).
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

/// Removes a folder tree, its subfolders in parallel (an old output holds thousands of files).
/// Never follows a symbolic link: the root must be a real folder (checked with
/// `symlink_metadata`), and entries are told apart by `DirEntry::file_type`, which
/// does not follow links, so a link inside is removed as a link.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let ft = fs::symlink_metadata(dir)?.file_type();
    if !ft.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!(
                "{} is {}, not a folder: not removed",
                dir.display(),
                kind_of(ft)
            ),
        ));
    }
    let entries: Vec<_> = fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>()?;
    entries
        .par_iter()
        .try_for_each(|e| -> std::io::Result<()> {
            if e.file_type()?.is_dir() {
                remove_tree(&e.path())
            } else {
                fs::remove_file(e.path())
            }
        })?;
    fs::remove_dir(dir)
}

/// Removes one entry of billxfer's own naming (`.<period>.tmp-*`, `.<period>.old-*`),
/// whatever it has become, without following links: a real folder with its tree,
/// anything else (file, symbolic link, FIFO, socket) with `remove_file`. Missing is fine.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => remove_tree(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Flushes every file of the filesystem holding `dir` to disk (Linux `syncfs`).
fn sync_filesystem(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir)?;
    // SAFETY: `d` is an open descriptor for the duration of the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Flushes a folder's entries (renames) to disk; best effort.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Linux `renameat2(a, b, flags)`.
fn rename2(a: &Path, b: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let cb = CString::new(b.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call;
    // renameat2 only reads them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether a `renameat2` error means the filesystem or kernel lacks the flag.
fn unsupported(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSYS) || e.raw_os_error() == Some(libc::EINVAL)
}

/// Atomically exchanges two paths (`RENAME_EXCHANGE`). Benefit: a crash can never
/// leave the period folder missing. Neither path is followed if it is a link.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    rename2(a, b, libc::RENAME_EXCHANGE)
}

/// Renames `a` to `b` only if `b` does not exist (`RENAME_NOREPLACE`, or a plain
/// rename where the filesystem lacks it).
fn rename_noreplace(a: &Path, b: &Path) -> std::io::Result<()> {
    match rename2(a, b, libc::RENAME_NOREPLACE) {
        Err(e) if unsupported(&e) => fs::rename(a, b),
        r => r,
    }
}

/// Holds the output folder's lock for the duration of a run.
pub struct OutputLock {
    _file: File,
    dir: PathBuf,
}

impl OutputLock {
    /// The output folder, resolved: write inside this path, not the one given.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Creates `out` if needed, resolves it once with `fs::canonicalize` and takes the
/// lock on `<real out>/.billxfer.lock`, failing at once if another run holds it.
///
/// Symbolic links: `out` itself may be a link (or lie under one); it is resolved
/// here, once, and the run locks, recovers and writes inside the real folder
/// ([`OutputLock::dir`]), so two spellings of one folder share one lock. Below that
/// folder nothing is followed: a `<out>/<period>` that is a link is refused by
/// [`write_atomically_with`] before anything is written.
pub fn lock_output(out: &Path) -> Result<OutputLock> {
    fs::create_dir_all(out).map_err(|e| Error::Output {
        path: out.into(),
        source: e,
    })?;
    let dir = fs::canonicalize(out).map_err(|e| Error::Output {
        path: out.into(),
        source: e,
    })?;
    let path = dir.join(".billxfer.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Output {
            path: path.clone(),
            source: e,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(OutputLock { _file: file, dir }),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked(format!(
            "another billxfer run is writing to {} (lock {}); wait for it to finish",
            out.display(),
            path.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(Error::Output { path, source: e }),
    }
}

/// Removes entries left by an interrupted run (run it under the lock), restoring the
/// previous output if a run died between moving it aside and putting the new one in place.
///
/// Stale `.<period>.tmp-*` and `.<period>.old-*` entries of any kind are removed:
/// folders with their tree, files, links and the rest with `remove_file` (a link is
/// never followed). An `.old-` entry is restored as `<period>` only if it is a real
/// folder and nothing at all (not even a dangling link) is at `<period>`.
pub fn recover(out: &Path, period: &str) -> Result<()> {
    let final_dir = out.join(period);
    let Ok(entries) = fs::read_dir(out) else {
        return Ok(());
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    let (old_prefix, tmp_prefix) = (format!(".{period}.old-"), format!(".{period}.tmp-"));
    for name in names {
        let path = out.join(&name);
        let fail = |e| Error::Output {
            path: path.clone(),
            source: e,
        };
        if name.starts_with(&old_prefix) {
            let final_missing = matches!(fs::symlink_metadata(&final_dir),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound);
            if final_missing && is_real_dir(&path) {
                fs::rename(&path, &final_dir).map_err(fail)?;
            } else {
                remove_entry(&path).map_err(fail)?;
            }
        } else if name.starts_with(&tmp_prefix) {
            remove_entry(&path).map_err(fail)?;
        }
    }
    Ok(())
}

/// The part of `manifest.json` that marks a folder as billxfer's output: every
/// manifest billxfer writes (see [`render`]) has these two keys.
#[derive(serde::Deserialize)]
struct ManifestMark {
    billxfer_version: String,
    billing_period: String,
}

/// Why `dir` is not billxfer's output for `period`, or `None` if it is: it must
/// hold a regular `manifest.json` (not a link) that parses as JSON with a string
/// `billxfer_version` and `billing_period` equal to `period`.
fn not_billxfer_output(dir: &Path, period: &str) -> Option<&'static str> {
    let path = dir.join("manifest.json");
    if !fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file()) {
        return Some("no manifest.json");
    }
    let parsed = File::open(&path)
        .ok()
        .and_then(|f| serde_json::from_reader::<_, ManifestMark>(std::io::BufReader::new(f)).ok());
    match parsed {
        Some(m) if !m.billxfer_version.is_empty() && m.billing_period == period => None,
        _ => Some("its manifest.json was not written by billxfer for this period"),
    }
}

/// Refuses, before anything is written, a `<out>/<period>` that billxfer must not
/// replace: a symbolic link (never followed out of the output folder), anything
/// that is not a folder (file, FIFO, socket, device), or a folder billxfer did not
/// write. Returns whether a previous billxfer output is there.
fn check_replaceable(final_dir: &Path, period: &str) -> Result<bool> {
    let refuse = |reason: String| Error::UnsafeOutput {
        path: final_dir.into(),
        reason,
    };
    let ft = match fs::symlink_metadata(final_dir) {
        Ok(m) => m.file_type(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Error::Output {
                path: final_dir.into(),
                source: e,
            })
        }
    };
    if ft.is_symlink() {
        let target = fs::read_link(final_dir)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "an unreadable target".into());
        return Err(refuse(format!(
            "is a symbolic link to {target}; billxfer replaces that folder whole and does not \
             follow links out of its output folder: remove the link or choose another --out"
        )));
    }
    if !ft.is_dir() {
        return Err(refuse(format!(
            "is {}, not a folder; billxfer writes the month as a folder there and does not \
             delete what it did not create: move it away or choose another --out",
            kind_of(ft)
        )));
    }
    if let Some(why) = not_billxfer_output(final_dir, period) {
        return Err(refuse(format!(
            "exists and is not a billxfer output ({why}): move it away or choose another --out"
        )));
    }
    Ok(true)
}

/// Writes all files into a temporary folder, then swaps it into `<out>/<period>`.
pub fn write_atomically(out: &Path, period: &str, files: &[(PathBuf, Vec<u8>)]) -> Result<PathBuf> {
    Ok(write_atomically_with(out, period, files, |_| Ok((Vec::new(), ())))?.0)
}

/// [`write_atomically`], with `build` writing large files straight into the
/// folder being built (the run's one pass writes the exports there): they are
/// published, or discarded, with everything else. `build` returns further
/// files to write (the invoices, the exports' listing) and a value handed back.
///
/// `out` should be the resolved folder ([`OutputLock::dir`]). Before anything is
/// written, `<out>/<period>` is refused if it is a symbolic link, not a folder, or a
/// folder without billxfer's manifest (see `check_replaceable`): only billxfer's own
/// output is ever replaced, and on any error nothing is published. Once the new
/// output is published, failing to delete the previous one (left under the
/// temporary name) is not an error: the next run's [`recover`] removes it.
pub fn write_atomically_with<T>(
    out: &Path,
    period: &str,
    files: &[(PathBuf, Vec<u8>)],
    build: impl FnOnce(&Path) -> Result<(Vec<(PathBuf, Vec<u8>)>, T)>,
) -> Result<(PathBuf, T)> {
    let pid = std::process::id();
    let tmp = out.join(format!(".{period}.tmp-{pid}"));
    let final_dir = out.join(period);
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |e| Error::Output { path, source: e }
    };
    let previous = check_replaceable(&final_dir, period)?;
    remove_entry(&tmp).map_err(err(&tmp))?;
    let written = (|| -> Result<T> {
        // Folders first, then the files in parallel: with thousands of orgs the
        // write phase is thousands of small file creations.
        fs::create_dir(&tmp).map_err(err(&tmp))?;
        let dirs: std::collections::BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|(rel, _)| tmp.join(rel).parent().map(Path::to_path_buf))
            .collect();
        for d in &dirs {
            fs::create_dir_all(d).map_err(err(d))?;
        }
        let (more, value) = build(&tmp)?;
        for (rel, _) in &more {
            if let Some(d) = tmp.join(rel).parent() {
                fs::create_dir_all(d).map_err(err(d))?;
            }
        }
        files
            .par_iter()
            .chain(more.par_iter())
            .try_for_each(|(rel, bytes)| -> Result<()> {
                let path = tmp.join(rel);
                let f = File::create(&path).map_err(err(&path))?;
                let mut w = BufWriter::new(f);
                w.write_all(bytes).map_err(err(&path))?;
                w.flush().map_err(err(&path))
            })?;
        // One syncfs for the whole folder instead of an fsync per file: with
        // thousands of orgs, per-file fsyncs dominated the write phase.
        sync_filesystem(&tmp).map_err(err(&tmp))?;
        Ok(value)
    })();
    let value = match written {
        Ok(v) => v,
        Err(e) => {
            let _ = remove_entry(&tmp);
            return Err(e);
        }
    };
    let discard = |e: Error| {
        let _ = remove_entry(&tmp);
        e
    };
    // Checked again just before the swap: the write phase can be long.
    if check_replaceable(&final_dir, period).map_err(discard)? != previous {
        return Err(discard(Error::UnsafeOutput {
            path: final_dir.clone(),
            reason: "changed while the month was being written; nothing was replaced: run again"
                .into(),
        }));
    }
    if previous {
        // Swap the new folder and the previous one in one step (renameat2
        // RENAME_EXCHANGE): at every instant <out>/<period> is one complete
        // output. The old one, now under the temporary name, is then deleted,
        // best effort: the new output is published whatever happens next, and
        // what is left is removed by the next run's `recover`. `remove_tree`
        // refuses anything but a real folder.
        match exchange(&tmp, &final_dir) {
            Ok(()) => {
                sync_dir(out);
                let _ = remove_tree(&tmp);
                return Ok((final_dir, value));
            }
            Err(e) if unsupported(&e) => {}
            Err(e) => {
                return Err(discard(Error::Output {
                    path: final_dir,
                    source: e,
                }))
            }
        }
    }
    // First output for the period, or a filesystem without exchange: move aside, then in.
    let old = out.join(format!(".{period}.old-{pid}"));
    if previous {
        remove_entry(&old).map_err(err(&old)).map_err(discard)?;
        fs::rename(&final_dir, &old)
            .map_err(err(&final_dir))
            .map_err(discard)?;
    }
    if let Err(e) = rename_noreplace(&tmp, &final_dir) {
        // Put the previous output back before reporting.
        if previous {
            let _ = fs::rename(&old, &final_dir);
        }
        return Err(discard(Error::Output {
            path: final_dir,
            source: e,
        }));
    }
    sync_dir(out);
    if previous {
        // Published: the previous output is deleted best effort (see above).
        let _ = remove_tree(&old);
    }
    Ok((final_dir, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_previous_output_whole() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let mark = (
            PathBuf::from("manifest.json"),
            br#"{"billxfer_version": "0", "billing_period": "2026-03"}"#.to_vec(),
        );
        let one = [(PathBuf::from("a.txt"), b"one".to_vec()), mark.clone()];
        let two = [(PathBuf::from("b.txt"), b"two".to_vec()), mark];
        write_atomically(out, "2026-03", &one).unwrap();
        write_atomically(out, "2026-03", &two).unwrap();
        assert!(!out.join("2026-03/a.txt").exists());
        assert_eq!(fs::read(out.join("2026-03/b.txt")).unwrap(), b"two");
        let leftovers: Vec<_> = fs::read_dir(out)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn recover_restores_an_output_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        fs::create_dir_all(out.join(".2026-03.old-1")).unwrap();
        fs::write(out.join(".2026-03.old-1/x"), b"prev").unwrap();
        fs::create_dir_all(out.join(".2026-03.tmp-2")).unwrap();
        recover(out, "2026-03").unwrap();
        assert_eq!(fs::read(out.join("2026-03/x")).unwrap(), b"prev");
        assert!(!out.join(".2026-03.tmp-2").exists());
    }

    #[test]
    fn a_second_lock_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock_output(dir.path()).unwrap();
        let err = lock_output(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("another billxfer run"), "{err}");
    }

    #[test]
    fn remove_tree_never_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::create_dir_all(victim.join("sub")).unwrap();
        fs::write(victim.join("keep"), b"keep").unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(&tree).unwrap();
        std::os::unix::fs::symlink(&victim, tree.join("link")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("root-link")).unwrap();
        assert!(remove_tree(&dir.path().join("root-link")).is_err());
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(fs::read(victim.join("keep")).unwrap(), b"keep");
        assert!(victim.join("sub").is_dir());
    }

    #[test]
    fn recover_removes_stale_entries_of_any_kind_and_restores_only_real_folders() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let victim = dir.path().join("victim");
        fs::create_dir_all(&out).unwrap();
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("keep"), b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, out.join(".2026-03.old-1")).unwrap();
        fs::write(out.join(".2026-03.old-2"), b"file").unwrap();
        fs::write(out.join(".2026-03.tmp-3"), b"file").unwrap();
        std::os::unix::fs::symlink(&victim, out.join(".2026-03.tmp-4")).unwrap();
        recover(&out, "2026-03").unwrap();
        assert_eq!(
            fs::read_dir(&out).unwrap().count(),
            0,
            "nothing restored or left"
        );
        assert_eq!(fs::read(victim.join("keep")).unwrap(), b"keep");
    }

    #[test]
    fn a_symlinked_or_foreign_period_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let victim = out.join("victim");
        fs::create_dir_all(&victim).unwrap();
        std::os::unix::fs::symlink(&victim, out.join("2026-03")).unwrap();
        fs::write(out.join("2026-04"), b"mine").unwrap();
        fs::create_dir_all(out.join("2026-05")).unwrap();
        let files = [(PathBuf::from("a.txt"), b"one".to_vec())];
        for (period, says) in [
            ("2026-03", "is a symbolic link to"),
            ("2026-04", "is a file, not a folder"),
            ("2026-05", "is not a billxfer output (no manifest.json)"),
        ] {
            let e = write_atomically(out, period, &files)
                .err()
                .map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains(says)),
                "{period}: {e:?}"
            );
            assert!(!out
                .join(format!(".{period}.tmp-{}", std::process::id()))
                .exists());
        }
        assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);
        assert_eq!(fs::read(out.join("2026-04")).unwrap(), b"mine");
    }
}
