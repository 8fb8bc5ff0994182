//! The three roles of one binary: scheduler, executor and driver (`billxfer
//! run --cluster`), plus an in-process cluster for tests.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::config::BallistaConfig;
use ballista_core::execution_plans::execute_physical_plan;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::{BallistaCodec, BallistaLogicalExtensionCodec};
use ballista_core::{ConfigProducer, RuntimeProducer};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::PhysicalPlanNode;
use futures::StreamExt;

use super::codec::codec;
use super::exec::{FinishOrgsExec, RateTasksExec};
use super::JobSpec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pipeline::{self, ExportTo, Finished, Month, Progress, Silent};
use crate::types::BillingPeriod;

/// How long the driver waits for the scheduler to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Executors' heartbeat, and how long the scheduler waits before it declares
/// a silent executor lost and runs its tasks elsewhere (Ballista's defaults,
/// 60 s and 180 s, are tuned for long-lived clusters, not for month-end jobs).
pub const HEARTBEAT_SECONDS: u64 = 2;
/// See [`HEARTBEAT_SECONDS`].
pub const EXECUTOR_TIMEOUT_SECONDS: u64 = 8;

fn runtime(workers: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("starting the async runtime: {e}")))
}

fn cluster_err(address: &str, e: impl std::fmt::Display) -> Error {
    Error::Cluster {
        address: address.to_string(),
        message: e.to_string(),
    }
}

/// Parses `df://HOST:PORT` (the scheme is optional) into one socket address.
pub fn parse_address(text: &str) -> std::result::Result<SocketAddr, String> {
    let hostport = text.strip_prefix("df://").unwrap_or(text);
    let mut found = hostport.to_socket_addrs().map_err(|e| {
        format!("`{text}` is not HOST:PORT (for example df://127.0.0.1:50050): {e}")
    })?;
    found
        .next()
        .ok_or_else(|| format!("`{text}` names no address"))
}

/// Runs a scheduler bound to `bind` until the process is stopped.
pub fn scheduler(bind: SocketAddr) -> Result<()> {
    let address = bind.to_string();
    runtime(2)?.block_on(async move {
        let mut config = ballista_scheduler::config::SchedulerConfig::default()
            .with_hostname(bind.ip().to_string())
            .with_port(bind.port());
        config.bind_host = bind.ip().to_string();
        config.override_physical_codec = Some(codec());
        config.executor_timeout_seconds = EXECUTOR_TIMEOUT_SECONDS;
        config.expire_dead_executor_interval_seconds = 1;
        config.no_executors_grace_period_seconds = EXECUTOR_TIMEOUT_SECONDS;
        eprintln!("billxfer: Ballista scheduler listening on {bind} (jobs: billxfer run --cluster df://{bind})");
        let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config)
            .await
            .map_err(|e| cluster_err(&address, e))?;
        ballista_scheduler::scheduler_process::start_server(cluster, bind, Arc::new(config))
            .await
            .map_err(|e| cluster_err(&address, e))
    })
}

/// Where and how an executor runs.
#[derive(Debug, Clone)]
pub struct ExecutorSetup {
    /// The scheduler to register with.
    pub scheduler: SocketAddr,
    /// Host to bind and advertise.
    pub host: String,
    /// Arrow Flight port (shuffle reads) and gRPC port.
    pub ports: (u16, u16),
    /// Folder for shuffle files (default: a temporary folder).
    pub work_dir: Option<PathBuf>,
    /// Tasks run at once.
    pub cores: usize,
}

/// Runs an executor until the process is stopped.
pub fn executor(setup: ExecutorSetup) -> Result<()> {
    let address = setup.scheduler.to_string();
    let opt = ballista_executor::executor_process::ExecutorProcessConfig {
        bind_host: setup.host.clone(),
        external_host: Some(setup.host.clone()),
        port: setup.ports.0,
        grpc_port: setup.ports.1,
        scheduler_host: setup.scheduler.ip().to_string(),
        scheduler_port: setup.scheduler.port(),
        scheduler_connect_timeout_seconds: CONNECT_TIMEOUT.as_secs() as u16 as _,
        vcores: setup.cores.max(1),
        work_dir: setup.work_dir.map(|p| p.display().to_string()),
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        override_physical_codec: Some(codec()),
        print_thread_info: false,
        ..Default::default()
    };
    eprintln!(
        "billxfer: Ballista executor on {}:{} (gRPC {}), {} core(s), registering with {address}",
        setup.host,
        setup.ports.0,
        setup.ports.1,
        setup.cores.max(1)
    );
    runtime(setup.cores.max(2))?.block_on(async move {
        ballista_executor::executor_process::start_executor_process(Arc::new(opt))
            .await
            .map_err(|e| cluster_err(&address, e))
    })
}

/// Starts a scheduler and `executors` executors inside this process (on the
/// current tokio runtime) and returns the scheduler's address: the
/// `standalone` cluster of the tests.
pub async fn standalone(executors: usize, cores: usize) -> Result<SocketAddr> {
    let codec = BallistaCodec::new(Arc::new(BallistaLogicalExtensionCodec::default()), codec());
    let config_producer: ConfigProducer = Arc::new(SessionConfig::new_with_ballista);
    let addr = ballista_scheduler::standalone::new_standalone_scheduler_with_builder(
        Arc::new(ballista_core::utils::default_session_builder),
        Arc::clone(&config_producer),
        codec.clone(),
    )
    .await
    .map_err(|e| cluster_err("standalone", e))?;
    let url = format!("http://localhost:{}", addr.port());
    for _ in 0..executors {
        let client = SchedulerGrpcClient::connect(url.clone())
            .await
            .map_err(|e| cluster_err(&url, e))?;
        let runtime_producer: RuntimeProducer =
            Arc::new(|_: &SessionConfig| Ok(Arc::new(RuntimeEnvBuilder::new().build()?)));
        ballista_executor::new_standalone_executor_from_builder(
            client,
            cores.max(1),
            Arc::clone(&config_producer),
            runtime_producer,
            codec.clone(),
            Default::default(),
        )
        .await
        .map_err(|e| cluster_err(&url, e))?;
    }
    Ok(addr)
}

/// Partitions of the rating stage, and of the finish stage (orgs hashed over
/// them): enough for every executor core several times over, few enough that
/// the shuffle's files (rating × finish partitions) stay few.
#[derive(Debug, Clone, Copy)]
pub struct Partitions {
    /// Rating stage partitions (tasks are dealt round robin).
    pub rate: usize,
    /// Finish stage partitions.
    pub finish: usize,
}

impl Default for Partitions {
    fn default() -> Self {
        Partitions {
            rate: 16,
            finish: 8,
        }
    }
}

/// The job's physical plan: rate, shuffle by org, finish.
pub fn job_plan(spec: Arc<JobSpec>, partitions: Partitions) -> Result<Arc<dyn ExecutionPlan>> {
    let lists = super::exec::task_lists(spec.tasks.len(), partitions.rate)?;
    let rate: Arc<dyn ExecutionPlan> = Arc::new(RateTasksExec::new(Arc::clone(&spec), lists));
    let by_org = Partitioning::Hash(
        vec![Arc::new(Column::new(super::exec::ORG, 0))],
        partitions.finish.max(1),
    );
    let shuffled = RepartitionExec::try_new(rate, by_org)
        .map_err(|e| Error::Internal(format!("planning the shuffle: {e}")))?;
    Ok(Arc::new(FinishOrgsExec::new(spec, Arc::new(shuffled))))
}

/// Fails fast, with a clear error, when nothing listens at the scheduler's address.
fn reachable(address: SocketAddr) -> Result<()> {
    TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
        .map(drop)
        .map_err(|e| {
            cluster_err(
                &address.to_string(),
                format!(
                    "cannot reach the Ballista scheduler within {} s ({e}); start one with `billxfer cluster scheduler --bind {address}`",
                    CONNECT_TIMEOUT.as_secs()
                ),
            )
        })
}

/// What a cluster run needs besides the month.
pub struct ClusterRun {
    /// The scheduler.
    pub scheduler: SocketAddr,
    /// Stage partitions.
    pub partitions: Partitions,
    /// How long the driver waits for the job before giving up (`None`: no limit).
    pub timeout: Option<std::time::Duration>,
}

/// `billxfer run --cluster`: the month as one Ballista job. Returns what
/// [`pipeline::run_month`] returns for the same inputs.
pub fn run_month_on_cluster(
    cluster: &ClusterRun,
    config: &Config,
    period: BillingPeriod,
    progress: &dyn Progress,
    exports: Option<ExportTo<'_>>,
) -> Result<pipeline::MonthOutput> {
    reachable(cluster.scheduler)?;
    let month = pipeline::plan_month(config, period)?;
    let (known, all_known) = month.known_rows;
    progress.start(known, all_known, month.billed.len());
    let spec = Arc::new(JobSpec::new(
        config,
        &month,
        exports.map(|t| (t.options, t.root.to_path_buf())),
    )?);
    let plan = job_plan(Arc::clone(&spec), cluster.partitions)?;
    let job = submit(cluster.scheduler, plan);
    let mut finished = runtime(2)?.block_on(async {
        match cluster.timeout {
            None => job.await,
            Some(limit) => tokio::time::timeout(limit, job).await.unwrap_or_else(|_| {
                Err(cluster_err(
                    &cluster.scheduler.to_string(),
                    format!(
                        "the job did not finish within {} s (--cluster-timeout); an executor may have been lost without the engine recovering; nothing was published",
                        limit.as_secs()
                    ),
                ))
            }),
        }
    })?;
    finished.extend(orgs_without_tasks(config, &month, &finished, exports)?);
    progress.rows(known);
    pipeline::conclude(config, month, finished, exports)
}

/// Billed orgs with no input file never reach the cluster: they are finished here.
fn orgs_without_tasks(
    config: &Config,
    month: &Month,
    finished: &[Finished],
    exports: Option<ExportTo<'_>>,
) -> Result<Vec<Finished>> {
    let done: std::collections::BTreeSet<usize> = finished.iter().map(|f| f.0.org_index).collect();
    let left: Vec<usize> = month
        .billed
        .iter()
        .copied()
        .filter(|o| !done.contains(o))
        .collect();
    if left.is_empty() {
        return Ok(Vec::new());
    }
    let work = pipeline::Work {
        tasks: &[],
        ..month.work()
    };
    let checks = pipeline::all_checks(config, month.period);
    pipeline::rate_orgs(config, work, &checks, &left, &Silent, exports)
}

/// Submits the plan and gathers every org's finished month.
async fn submit(scheduler: SocketAddr, plan: Arc<dyn ExecutionPlan>) -> Result<Vec<Finished>> {
    let address = scheduler.to_string();
    let session = SessionConfig::new_with_ballista();
    let codec = codec();
    let session_id = format!("billxfer-{}", std::process::id());
    let mut stream = execute_physical_plan::<PhysicalPlanNode>(
        format!("http://{address}"),
        &BallistaConfig::default(),
        plan,
        codec.as_ref(),
        session_id,
        session,
    )
    .await
    .map_err(|e| cluster_err(&address, format!("the job failed: {e}")))?;
    let mut finished = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| cluster_err(&address, format!("the job failed: {e}")))?;
        finished.extend(FinishOrgsExec::decode_rows(&batch)?);
    }
    Ok(finished)
}
