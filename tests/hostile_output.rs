//! A hostile output folder (issue 11): `<out>/<period>` that is a symbolic link,
//! a file or a folder billxfer did not write is refused before anything is
//! written; stale temporary entries of any kind are cleaned; a symlinked `<out>`
//! is resolved once and used. In every case a victim folder beside the output
//! must survive byte for byte. docs/RELIABILITY.md lists the cases.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{bin, ok, repo};

const PERIOD: &str = "2026-10";

/// A temp folder with a victim folder of files that must never change.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::create_dir_all(victim.join("nested")).unwrap();
        fs::write(victim.join("precious.txt"), b"do not delete me\n").unwrap();
        fs::write(victim.join("nested/ledger.csv"), b"a,b\n1,2\n").unwrap();
        fs::create_dir_all(dir.path().join("out")).unwrap();
        Setup { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run(&self) -> Output {
        bin()
            .args(["run", "--quiet", "--period", PERIOD, "--config"])
            .arg(repo().join("sample_data/billxfer.toml"))
            .arg("--out")
            .arg(self.path("out"))
            .output()
            .unwrap()
    }
}

/// Every file under `dir` (not following links), relative path -> bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, acc: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &path, acc);
            } else if ft.is_symlink() {
                acc.insert(
                    rel,
                    fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else {
                acc.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut acc = BTreeMap::new();
    walk(dir, dir, &mut acc);
    acc
}

/// Names in `out` starting with `.2026-10.` (temporary or moved-aside entries).
fn leftovers(out: &Path) -> Vec<String> {
    fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".{PERIOD}.")))
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_refused(o: &Output, says: &[&str]) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "run must fail; stderr:\n{err}");
    assert_eq!(o.status.code(), Some(1), "stderr:\n{err}");
    for s in says {
        assert!(err.contains(s), "stderr must contain {s:?}:\n{err}");
    }
    err
}

#[test]
fn a_period_folder_that_is_a_symlink_is_refused_and_its_target_kept() {
    let s = Setup::new();
    let victim = s.path("victim");
    let before = snapshot(&victim);
    assert_eq!(before.len(), 2);
    let link = s.path("out").join(PERIOD);
    symlink(&victim, &link).unwrap();

    let o = s.run();
    assert_refused(
        &o,
        &[
            &format!("{PERIOD} is a symbolic link to {}", victim.display()),
            "does not follow links out of its output folder",
            "remove the link or choose another --out",
        ],
    );
    assert_eq!(snapshot(&victim), before, "victim files changed");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(&link).unwrap(), victim);
    assert!(
        !victim.join("manifest.json").exists(),
        "published into the victim"
    );
    assert!(
        leftovers(&s.path("out")).is_empty(),
        "{:?}",
        leftovers(&s.path("out"))
    );
}

#[test]
fn a_period_that_is_a_file_is_refused_then_a_run_after_removing_it_succeeds() {
    let s = Setup::new();
    let file = s.path("out").join(PERIOD);
    fs::write(&file, b"someone's notes\n").unwrap();

    let o = s.run();
    assert_refused(
        &o,
        &[&format!("{PERIOD} is a file, not a folder"), "move it away"],
    );
    assert_eq!(fs::read(&file).unwrap(), b"someone's notes\n");
    assert!(
        leftovers(&s.path("out")).is_empty(),
        "{:?}",
        leftovers(&s.path("out"))
    );

    fs::remove_file(&file).unwrap();
    ok(&s.run());
    assert!(file.join("manifest.json").is_file());
    assert!(leftovers(&s.path("out")).is_empty());
}

#[test]
fn a_period_that_is_a_fifo_is_refused() {
    let s = Setup::new();
    let fifo = s.path("out").join(PERIOD);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let o = s.run();
    assert_refused(&o, &["is a named pipe (FIFO), not a folder"]);
    assert!(fs::symlink_metadata(&fifo).is_ok());
    assert!(leftovers(&s.path("out")).is_empty());
}

#[test]
fn stale_temporary_file_and_symlink_are_removed_without_following() {
    let s = Setup::new();
    let victim = s.path("victim");
    let before = snapshot(&victim);
    let out = s.path("out");
    fs::write(out.join(format!(".{PERIOD}.tmp-123")), b"stale").unwrap();
    symlink(&victim, out.join(format!(".{PERIOD}.tmp-456"))).unwrap();
    symlink(&victim, out.join(format!(".{PERIOD}.old-789"))).unwrap();

    ok(&s.run());
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    assert_eq!(snapshot(&victim), before, "victim files changed");
    assert!(out.join(PERIOD).join("manifest.json").is_file());
}

#[test]
fn a_symlinked_out_folder_is_resolved_and_replaced_on_rerun() {
    let s = Setup::new();
    fs::remove_dir(s.path("out")).unwrap();
    let real = s.path("real");
    fs::create_dir_all(&real).unwrap();
    symlink(&real, s.path("out")).unwrap();

    ok(&s.run());
    let manifest = real.join(PERIOD).join("manifest.json");
    let first = fs::read(&manifest).unwrap();
    // Plant a file in the output: the second run must replace the folder whole.
    fs::write(real.join(PERIOD).join("stray.txt"), b"x").unwrap();
    ok(&s.run());
    assert_eq!(fs::read(&manifest).unwrap(), first);
    assert!(!real.join(PERIOD).join("stray.txt").exists());
    assert!(fs::symlink_metadata(s.path("out"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(
        real.join(".billxfer.lock").exists(),
        "lock not in the real folder"
    );
    assert!(leftovers(&real).is_empty(), "{:?}", leftovers(&real));
}

#[test]
fn a_period_folder_billxfer_did_not_write_is_refused() {
    let s = Setup::new();
    let dir = s.path("out").join(PERIOD);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("budget.xlsx"), b"the user's own file").unwrap();
    let before = snapshot(&dir);

    let o = s.run();
    assert_refused(
        &o,
        &[&format!(
            "{PERIOD} exists and is not a billxfer output (no manifest.json): \
             move it away or choose another --out"
        )],
    );
    assert_eq!(snapshot(&dir), before);
    assert!(leftovers(&s.path("out")).is_empty());

    // A manifest.json that is not billxfer's does not pass either.
    fs::write(dir.join("manifest.json"), b"{\"name\": \"mine\"}").unwrap();
    let o = s.run();
    assert_refused(&o, &["is not a billxfer output (its manifest.json"]);
    assert_eq!(
        fs::read(dir.join("budget.xlsx")).unwrap(),
        b"the user's own file"
    );
}

#[test]
fn a_rerun_over_its_own_output_succeeds_with_identical_manifest() {
    let s = Setup::new();
    let manifest = s.path("out").join(PERIOD).join("manifest.json");
    ok(&s.run());
    let first = fs::read(&manifest).unwrap();
    let files = snapshot(&s.path("out").join(PERIOD));
    assert!(files.len() > 5, "{files:?}");
    ok(&s.run());
    assert_eq!(fs::read(&manifest).unwrap(), first);
    assert_eq!(snapshot(&s.path("out").join(PERIOD)), files);
    assert!(leftovers(&s.path("out")).is_empty());
}
