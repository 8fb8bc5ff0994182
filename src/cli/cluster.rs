//! `billxfer cluster scheduler|executor`: the roles of a Ballista cluster that
//! runs billxfer's month-end job (`billxfer run --cluster df://HOST:PORT`).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Arguments of `billxfer cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Which role this process plays.
    #[command(subcommand)]
    pub role: ClusterRole,
}

/// A cluster role.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterRole {
    /// Run a scheduler: it plans each job's stages and hands tasks to executors.
    #[command(
        long_about = "Run a Ballista scheduler that knows billxfer's operators. Jobs come from `billxfer run --cluster df://ADDR`. It stops on Ctrl-C or SIGTERM.\n\nExample:\n  billxfer cluster scheduler --bind 127.0.0.1:50050"
    )]
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050", value_parser = parse_addr)]
        bind: SocketAddr,
    },
    /// Run an executor: it rates row-group tasks and finishes orgs for the scheduler.
    #[command(
        long_about = "Run a Ballista executor with billxfer's operators. It registers with the scheduler, runs tasks on --cores cores, writes shuffle files under --work-dir, and writes exports into the run's output folder, so the inputs, the config and the output folder must be at the same paths on every executor and on the driver (shared storage). It stops on Ctrl-C or SIGTERM.\n\nExample:\n  billxfer cluster executor --scheduler 127.0.0.1:50050 --port 50051 --grpc-port 50052 --work-dir /tmp/exec1"
    )]
    Executor {
        /// The scheduler's address.
        #[arg(long, default_value = "127.0.0.1:50050", value_parser = parse_addr)]
        scheduler: SocketAddr,
        /// Host to bind and advertise to the scheduler and other executors.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Arrow Flight port (other executors fetch shuffle data from it).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// gRPC port (the scheduler reaches the executor on it).
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Folder for shuffle files (default: a temporary folder).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Tasks run at once (default: one per core).
        #[arg(long)]
        cores: Option<usize>,
    },
}

fn parse_addr(text: &str) -> std::result::Result<SocketAddr, String> {
    text.parse()
        .map_err(|e| format!("`{text}` is not IP:PORT, for example 127.0.0.1:50050 ({e})"))
}

/// The message when the binary was built without the feature.
pub const NOT_BUILT: &str = "this billxfer was built without the `distributed` feature; build it with `cargo build --release --features distributed` to run on a Ballista cluster";

/// `billxfer cluster ...`.
pub(super) fn cmd_cluster(a: ClusterArgs) -> Result<()> {
    #[cfg(feature = "distributed")]
    {
        use crate::cluster::roles;
        match a.role {
            ClusterRole::Scheduler { bind } => roles::scheduler(bind),
            ClusterRole::Executor {
                scheduler,
                host,
                port,
                grpc_port,
                work_dir,
                cores,
            } => roles::executor(roles::ExecutorSetup {
                scheduler,
                host,
                ports: (port, grpc_port),
                work_dir,
                cores: cores
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            }),
        }
    }
    #[cfg(not(feature = "distributed"))]
    {
        let _ = a;
        Err(not_built())
    }
}

/// The refusal of `run --cluster` in a build without the feature.
pub(super) fn not_built() -> Error {
    Error::Invalid {
        problems: vec![NOT_BUILT.to_string()],
    }
}
