//! Helpers shared by the integration tests: a [`Workdir`] (a temporary folder to
//! write a month into and run billxfer in), folder walks, JSON and manifest
//! reading, and the `../shared/data` rule. Each test crate uses a subset, hence
//! the module-wide `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;

/// The partner and one org `acme` (management account 111111111111, accounts
/// 111111111112 and 011111111111) billing `input/*` from 2026-01: the hostile cases' month.
pub const ACME_CONFIG: &str = r#"
[partner]
id = "partner"
name = "Partner"
management_account = "900000000001"

[[orgs]]
id = "acme"
name = "Acme"
management_account = "111111111111"
accounts = ["111111111112", "011111111111"]
files = ["input/*"]
plan = "basic"
transfer = { start = "2026-01" }
"#;

/// The billxfer binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_billxfer"))
}

/// Runs the billxfer binary with `args` (in the test's own working folder).
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    bin().args(args).output().expect("run billxfer")
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bytes of a case file under tests/cases/.
pub fn case_file(name: &str) -> Vec<u8> {
    let p = repo().join("tests/cases").join(name);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A file or folder under `../shared/data/`, or `None` (after saying so) when it
/// is not there. With `CI=true` a missing one fails the test instead of skipping it.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let p = repo().join("../shared/data").join(rel);
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing",
        p.display()
    );
    eprintln!("skipping: {} not present", p.display());
    None
}

/// Asserts success (showing stdout and stderr otherwise) and returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "billxfer failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A run's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A JSON file, parsed.
pub fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The entry of org `org` in a manifest's `orgs`.
pub fn manifest_org(manifest: &Value, org: &str) -> Value {
    manifest["orgs"]
        .as_array()
        .unwrap_or_else(|| panic!("no orgs in the manifest: {manifest}"))
        .iter()
        .find(|o| o["org_id"] == org)
        .unwrap_or_else(|| panic!("no org `{org}` in the manifest"))
        .clone()
}

/// `billxfer run` of sample_data/ for 2026-10 into `out` (`--quiet`, then
/// `extra`), asserted to succeed; returns `out/2026-10`.
pub fn run_sample(out: &Path, extra: &[&str]) -> PathBuf {
    run_october(&repo().join("sample_data/billxfer.toml"), out, extra)
}

/// `billxfer run --config <config>` for 2026-10 into `out` (`--quiet`, then
/// `extra`), asserted to succeed; returns `out/2026-10`.
pub fn run_october(config: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    run_period(config, "2026-10", out, extra)
}

/// Runs `period` with `config` into `out` (quiet, plus `extra`); returns the period folder.
pub fn run_period(config: &Path, period: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "run",
        "--config",
        config.to_str().unwrap(),
        "--period",
        period,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ok(&run(&args));
    out.join(period)
}

/// A real legacy CUR CSV nobody on the project wrote (focus_converters' anonymous
/// AWS export, 1,281 rows of November 2023), under `../shared/data/`.
pub const ANONYMOUS_CUR: &str =
    "focus_converters/focus_converter_base/tests/provider_config_tests/aws/sample-anonymous-aws-export-dataset.csv";

/// A config billing [`ANONYMOUS_CUR`] (at `data`) as org `anon` on the basic plan.
pub fn anonymous_cur_config(data: &Path) -> String {
    format!(
        "[partner]\nid = \"partner\"\nname = \"P\"\nmanagement_account = \"999999999999\"\n\n[actual]\nmode = \"billed\"\n\n[[orgs]]\nid = \"anon\"\nname = \"Anonymous\"\nmanagement_account = \"123412340534\"\nfiles = [{:?}]\nplan = \"basic\"\ntransfer = {{ start = \"2023-11\", source_payer = true }}\n",
        data.to_str().unwrap()
    )
}

/// A temporary folder, removed when dropped, to write a month into and run
/// billxfer in (the style of ripgrep's and xsv's test `Workdir`).
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Default for Workdir {
    fn default() -> Workdir {
        Workdir::new()
    }
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the folder.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating its parent folders) and returns its path.
    pub fn write(&self, rel: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }

    /// Creates a folder (and its parents) and returns its path.
    pub fn mkdir(&self, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.join(rel);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }

    /// The config path, `billxfer.toml` in the folder.
    pub fn config(&self) -> PathBuf {
        self.join("billxfer.toml")
    }

    /// Writes `billxfer.toml` and returns its path.
    pub fn write_config(&self, text: impl AsRef<[u8]>) -> PathBuf {
        self.write("billxfer.toml", text)
    }

    /// The billxfer binary, to run in the folder.
    pub fn command(&self) -> Command {
        let mut c = bin();
        c.current_dir(self.path());
        c
    }

    /// Runs billxfer with `args` in the folder.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command().args(args).output().expect("run billxfer")
    }

    /// Runs `billxfer <cmd> --config <folder>/billxfer.toml --period <period>`,
    /// with `--out <folder>/out` for `run`, then `extra`.
    pub fn run_config(&self, cmd: &str, period: &str, extra: &[&str]) -> Output {
        let mut c = self.command();
        c.arg(cmd)
            .arg("--config")
            .arg(self.config())
            .args(["--period", period]);
        if cmd == "run" {
            c.arg("--out").arg(self.join("out"));
        }
        c.args(extra).output().expect("run billxfer")
    }

    /// A file in the folder, as text.
    pub fn read(&self, rel: impl AsRef<Path>) -> String {
        let p = self.join(rel);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// A file in the folder, as bytes.
    pub fn read_bytes(&self, rel: impl AsRef<Path>) -> Vec<u8> {
        let p = self.join(rel);
        fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// A JSON file in the folder, parsed.
    pub fn json(&self, rel: impl AsRef<Path>) -> Value {
        json(&self.join(rel))
    }
}

/// Every file under `dir` (recursively, not following links) whose extension is
/// `ext`, sorted.
pub fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .flatten()
        {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every entry under `dir` (recursively, not following links), relative path ->
/// bytes: a file's content, a symbolic link's target. For byte-identity checks.
pub fn tree_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .flatten()
        {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_symlink() {
                let target = fs::read_link(&p).unwrap();
                out.insert(rel, target.into_os_string().into_encoded_bytes());
            } else if ft.is_file() {
                out.insert(rel, fs::read(&p).unwrap());
            } else {
                panic!("{}: not a file, folder or link", p.display());
            }
        }
    }
    out
}

/// A Parquet file of one record batch of `columns` (all nullable).
pub fn parquet_bytes(columns: Vec<(&str, arrow::array::ArrayRef)>) -> Vec<u8> {
    use arrow::datatypes::{Field, Schema};
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf
}

/// A file's values as text: Parquet decoded (every non-timestamp column as
/// text, so doubles and decimals are seen as numbers), anything else as is.
pub fn readable_text(path: &str, bytes: &[u8]) -> String {
    use arrow::array::Array;
    if !path.ends_with(".parquet") {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::copy_from_slice(bytes),
    )
    .and_then(|b| b.build())
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = String::new();
    for batch in reader {
        let batch = batch.unwrap();
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            out.push_str(f.name());
            out.push('\n');
            if matches!(f.data_type(), arrow::datatypes::DataType::Timestamp(_, _)) {
                continue;
            }
            match arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8) {
                Ok(s) => {
                    let s = s
                        .as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .unwrap();
                    for v in s.iter().flatten() {
                        out.push_str(v);
                        out.push('\n');
                    }
                }
                Err(_) => out.push_str(&format!("{c:?}\n")),
            }
        }
    }
    out
}
