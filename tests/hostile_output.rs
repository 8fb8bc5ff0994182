//! A hostile output folder (issue 11): `<out>/<period>` that is a symbolic link,
//! a file or a folder billxfer did not write is refused before anything is
//! written; stale temporary entries of any kind are cleaned; a symlinked `<out>`
//! is resolved once and used. In every case a victim folder beside the output
//! must survive byte for byte. docs/RELIABILITY.md lists the cases.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Output;

use common::{ok, repo, stderr, tree_bytes, Workdir};

const PERIOD: &str = "2026-10";

/// A temp folder with a victim folder of files that must never change, and `out/`.
fn setup() -> Workdir {
    let s = Workdir::new();
    s.write("victim/precious.txt", b"do not delete me\n");
    s.write("victim/nested/ledger.csv", b"a,b\n1,2\n");
    s.mkdir("out");
    s
}

/// `billxfer run` of sample_data/ for 2026-10 into `out/`.
fn run(s: &Workdir) -> Output {
    s.run([
        "run",
        "--quiet",
        "--period",
        PERIOD,
        "--config",
        repo().join("sample_data/billxfer.toml").to_str().unwrap(),
        "--out",
        s.join("out").to_str().unwrap(),
    ])
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
    let s = setup();
    let victim = s.join("victim");
    let before = tree_bytes(&victim);
    assert_eq!(before.len(), 2);
    let link = s.join("out").join(PERIOD);
    symlink(&victim, &link).unwrap();

    let o = run(&s);
    assert_refused(
        &o,
        &[
            &format!("{PERIOD} is a symbolic link to {}", victim.display()),
            "does not follow links out of its output folder",
            "remove the link or choose another --out",
        ],
    );
    assert_eq!(tree_bytes(&victim), before, "victim files changed");
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
        leftovers(&s.join("out")).is_empty(),
        "{:?}",
        leftovers(&s.join("out"))
    );
}

#[test]
fn a_period_that_is_a_file_is_refused_then_a_run_after_removing_it_succeeds() {
    let s = setup();
    let file = s.join("out").join(PERIOD);
    fs::write(&file, b"someone's notes\n").unwrap();

    let o = run(&s);
    assert_refused(
        &o,
        &[&format!("{PERIOD} is a file, not a folder"), "move it away"],
    );
    assert_eq!(fs::read(&file).unwrap(), b"someone's notes\n");
    assert!(
        leftovers(&s.join("out")).is_empty(),
        "{:?}",
        leftovers(&s.join("out"))
    );

    fs::remove_file(&file).unwrap();
    ok(&run(&s));
    assert!(file.join("manifest.json").is_file());
    assert!(leftovers(&s.join("out")).is_empty());
}

#[test]
fn a_period_that_is_a_fifo_is_refused() {
    let s = setup();
    let fifo = s.join("out").join(PERIOD);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let o = run(&s);
    assert_refused(&o, &["is a named pipe (FIFO), not a folder"]);
    assert!(fs::symlink_metadata(&fifo).is_ok());
    assert!(leftovers(&s.join("out")).is_empty());
}

#[test]
fn stale_temporary_file_and_symlink_are_removed_without_following() {
    let s = setup();
    let victim = s.join("victim");
    let before = tree_bytes(&victim);
    let out = s.join("out");
    fs::write(out.join(format!(".{PERIOD}.tmp-123")), b"stale").unwrap();
    symlink(&victim, out.join(format!(".{PERIOD}.tmp-456"))).unwrap();
    symlink(&victim, out.join(format!(".{PERIOD}.old-789"))).unwrap();

    ok(&run(&s));
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    assert_eq!(tree_bytes(&victim), before, "victim files changed");
    assert!(out.join(PERIOD).join("manifest.json").is_file());
}

#[test]
fn a_symlinked_out_folder_is_resolved_and_replaced_on_rerun() {
    let s = setup();
    fs::remove_dir(s.join("out")).unwrap();
    let real = s.join("real");
    fs::create_dir_all(&real).unwrap();
    symlink(&real, s.join("out")).unwrap();

    ok(&run(&s));
    let manifest = real.join(PERIOD).join("manifest.json");
    let first = fs::read(&manifest).unwrap();
    // Plant a file in the output: the second run must replace the folder whole.
    fs::write(real.join(PERIOD).join("stray.txt"), b"x").unwrap();
    ok(&run(&s));
    assert_eq!(fs::read(&manifest).unwrap(), first);
    assert!(!real.join(PERIOD).join("stray.txt").exists());
    assert!(fs::symlink_metadata(s.join("out"))
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
    let s = setup();
    let dir = s.join("out").join(PERIOD);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("budget.xlsx"), b"the user's own file").unwrap();
    let before = tree_bytes(&dir);

    let o = run(&s);
    assert_refused(
        &o,
        &[&format!(
            "{PERIOD} exists and is not a billxfer output (no manifest.json): \
             move it away or choose another --out"
        )],
    );
    assert_eq!(tree_bytes(&dir), before);
    assert!(leftovers(&s.join("out")).is_empty());

    // A manifest.json that is not billxfer's does not pass either.
    fs::write(dir.join("manifest.json"), b"{\"name\": \"mine\"}").unwrap();
    let o = run(&s);
    assert_refused(&o, &["is not a billxfer output (its manifest.json"]);
    assert_eq!(
        fs::read(dir.join("budget.xlsx")).unwrap(),
        b"the user's own file"
    );
}

#[test]
fn a_rerun_over_its_own_output_succeeds_with_identical_manifest() {
    let s = setup();
    let manifest = s.join("out").join(PERIOD).join("manifest.json");
    ok(&run(&s));
    let first = fs::read(&manifest).unwrap();
    let files = tree_bytes(&s.join("out").join(PERIOD));
    assert!(files.len() > 5, "{files:?}");
    ok(&run(&s));
    assert_eq!(fs::read(&manifest).unwrap(), first);
    assert_eq!(tree_bytes(&s.join("out").join(PERIOD)), files);
    assert!(leftovers(&s.join("out")).is_empty());
}
