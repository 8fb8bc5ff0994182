//! Beyond one machine (feature `distributed`): the month-end run as an Apache
//! DataFusion Ballista job, with the same bytes as a run here (docs/DISTRIBUTED.md).
//!
//! The driver plans the month as a run here does ([`pipeline::plan_month`]),
//! then submits one physical plan:
//!
//! ```text
//! FinishOrgsExec          per org: month-end pricing, invoices (and exports)
//!   RepartitionExec       hash by org: the shuffle (Ballista's stage boundary)
//!     RateTasksExec       row-group tasks: normalize and rate, partial ledgers
//! ```
//!
//! Executors run billxfer's own code for both nodes (they travel through
//! [`codec::BillxferCodec`]); the driver gathers every org's finished month and
//! writes and publishes the output exactly as a run here does.

pub mod codec;
mod exec;
pub mod roles;

pub use exec::{FinishOrgsExec, RateTasksExec};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::export::{ExportOptions, ExportSet};
use crate::pipeline::{ExportTo, InputFile, Month, Task, Work};
use crate::types::BillingPeriod;

/// What every task of a job needs, sent with the plan: the config to load, the
/// planned files and tasks, and where exports go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    /// The config file, at a path every executor reads (shared storage).
    pub config: PathBuf,
    /// SHA-256 of the config file's bytes as the driver read them.
    pub config_sha256: String,
    /// The period.
    pub period: BillingPeriod,
    /// Every input file of the period, as the driver planned them.
    pub files: Vec<InputFile>,
    /// Every task, in plan order.
    pub tasks: Vec<Task>,
    /// Exports and the output folder being built (shared storage), if any.
    pub exports: Option<(ExportOptions, PathBuf)>,
}

impl JobSpec {
    /// The spec of `month`, planned from `config`, whose file every executor reads.
    pub fn new(
        config: &Config,
        month: &Month,
        exports: Option<(ExportOptions, PathBuf)>,
    ) -> Result<JobSpec> {
        // Executors run in other folders, on other machines: every path they get is absolute.
        let absolute = |p: &Path| std::path::absolute(p).map_err(|e| Error::io(p, e));
        let mut files = month.files.clone();
        for f in &mut files {
            f.path = absolute(&f.path)?;
        }
        let exports = match exports {
            Some((options, root)) => Some((options, absolute(&root)?)),
            None => None,
        };
        Ok(JobSpec {
            config: absolute(&config.path)?,
            config_sha256: config.digest.clone(),
            period: month.period,
            files,
            tasks: month.tasks.clone(),
            exports,
        })
    }

    /// Loads the job's config on an executor, refusing one that differs from
    /// the driver's (an executor must rate with the same plans).
    pub fn load_config(&self) -> Result<Config> {
        let config = Config::load(&self.config)?;
        if config.digest != self.config_sha256 {
            return Err(Error::input(
                &self.config,
                format!(
                    "the config file this executor reads (sha256 {}) differs from the driver's ({}); every executor must read the same file",
                    config.digest, self.config_sha256
                ),
            ));
        }
        Ok(config)
    }

    /// Where the job writes exports, if it writes any.
    pub fn export_to(&self) -> Option<ExportTo<'_>> {
        self.exports
            .as_ref()
            .filter(|(options, _)| options.set != ExportSet::None)
            .map(|(options, root)| ExportTo {
                options: *options,
                root,
            })
    }

    /// The job's work.
    pub fn work(&self) -> Work<'_> {
        Work {
            period: self.period,
            files: &self.files,
            tasks: &self.tasks,
        }
    }
}

/// The engine named in the manifest of a cluster run (the one field in which
/// its outputs differ from a run here).
pub const ENGINE: &str = "ballista 55";
