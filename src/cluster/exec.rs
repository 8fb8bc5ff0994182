//! The two billxfer operators of a cluster job, as DataFusion `ExecutionPlan`s.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;

use super::JobSpec;
use crate::error::{Error, Result};
use crate::normalize::OrgCheck;
use crate::pipeline::{self, FileOutcome, Finished, Silent};

/// Column of the org index in both operators' rows (the shuffle's key).
pub const ORG: &str = "org";

/// A billxfer error as the engine carries it (the message reaches the driver).
fn engine_err(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serialize(value).map_err(|e| Error::Internal(format!("encoding a cluster row: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    bincode::deserialize(bytes).map_err(|e| Error::Internal(format!("decoding a cluster row: {e}")))
}

fn properties(schema: SchemaRef, partitioning: Partitioning) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        partitioning,
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

/// The `ExecutionPlan` methods both operators share: one input, no
/// expressions, rebuilt from the job's spec and a new input.
macro_rules! one_input_plan {
    ($name:literal) => {
        fn name(&self) -> &str {
            $name
        }

        fn properties(&self) -> &Arc<PlanProperties> {
            &self.props
        }

        fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
            vec![&self.input]
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
        ) -> DfResult<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }

        fn with_new_children(
            self: Arc<Self>,
            children: Vec<Arc<dyn ExecutionPlan>>,
        ) -> DfResult<Arc<dyn ExecutionPlan>> {
            match children.as_slice() {
                [input] => Ok(Arc::new(Self::new(
                    Arc::clone(&self.spec),
                    Arc::clone(input),
                ))),
                _ => Err(DataFusionError::Internal(format!(
                    "{} takes one input",
                    $name
                ))),
            }
        }
    };
}

/// Gathers `input`'s batches, then runs blocking billxfer work on them
/// (rayon, files) off the engine's async threads, as a one-batch stream.
fn gathered_then_blocking(
    schema: SchemaRef,
    input: SendableRecordBatchStream,
    work: impl FnOnce(Vec<RecordBatch>) -> Result<RecordBatch> + Send + 'static,
) -> SendableRecordBatchStream {
    let once = futures::stream::once(async move {
        let batches: Vec<RecordBatch> = input
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<DfResult<_>>()?;
        let task = move || work(batches);
        match tokio::task::spawn_blocking(move || {
            pipeline::guarded(std::path::Path::new("cluster task"), task)
        })
        .await
        {
            Ok(r) => r.map_err(engine_err),
            Err(e) => Err(DataFusionError::External(Box::new(e))),
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, once))
}

// ---------------------------------------------------------------------------
// Rating stage
// ---------------------------------------------------------------------------

/// The rating stage: each partition rates the tasks its input partition
/// lists (one UInt32 `task` column: indexes into the job's tasks), one after
/// another, and emits one row per task: its org, its index and its outcome
/// (partial ledger, quarantine, file report), encoded. With exports on, the
/// finish stage rates each org's files with its export sinks (one pass), so
/// this stage only routes the tasks to their org's finish partition (empty
/// outcomes).
///
/// The task lists are data, an in-memory scan ([`task_lists`]), not a
/// property of this node: Ballista hands an executor a slice of a stage's
/// partitions by restricting the stage's leaf scan, which it knows how to do
/// for an in-memory scan and not for a custom leaf (that would run the wrong
/// partitions).
#[derive(Debug)]
pub struct RateTasksExec {
    /// The job.
    pub spec: Arc<JobSpec>,
    input: Arc<dyn ExecutionPlan>,
    props: Arc<PlanProperties>,
}

/// The job's tasks dealt round robin over `partitions` partitions (so a
/// large org's row groups spread over all of them), as an in-memory scan.
pub fn task_lists(tasks: usize, partitions: usize) -> Result<Arc<dyn ExecutionPlan>> {
    let partitions = partitions.clamp(1, tasks.max(1));
    let schema = Arc::new(Schema::new(vec![Field::new(
        "task",
        DataType::UInt32,
        false,
    )]));
    let mut lists: Vec<Vec<RecordBatch>> = Vec::with_capacity(partitions);
    for p in 0..partitions {
        let ids: Vec<u32> = (p..tasks)
            .step_by(partitions)
            .map(|t| u32::try_from(t).map_err(|_| Error::Internal("task index".into())))
            .collect::<Result<_>>()?;
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(UInt32Array::from(ids))])
                .map_err(|e| Error::Internal(format!("task list: {e}")))?;
        lists.push(vec![batch]);
    }
    let scan =
        datafusion::datasource::memory::MemorySourceConfig::try_new_exec(&lists, schema, None)
            .map_err(|e| Error::Internal(format!("task list scan: {e}")))?;
    Ok(scan)
}

impl RateTasksExec {
    /// The rating stage of `spec` over `input` (its task lists).
    pub fn new(spec: Arc<JobSpec>, input: Arc<dyn ExecutionPlan>) -> RateTasksExec {
        let partitions = input.properties().partitioning.partition_count();
        RateTasksExec {
            spec,
            input,
            props: properties(
                Self::row_schema(),
                Partitioning::UnknownPartitioning(partitions),
            ),
        }
    }

    /// (org, task, outcome).
    pub fn row_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(ORG, DataType::UInt32, false),
            Field::new("task", DataType::UInt32, false),
            Field::new("outcome", DataType::Binary, false),
        ]))
    }

    fn rate_tasks(spec: &JobSpec, lists: &[RecordBatch]) -> Result<RecordBatch> {
        let config = match spec.export_to() {
            None => Some(spec.load_config()?),
            Some(_) => None,
        };
        let work = spec.work();
        let (mut orgs, mut tasks, mut outcomes) = (Vec::new(), Vec::new(), Vec::new());
        for list in lists {
            let ids = list
                .column(0)
                .as_any()
                .downcast_ref::<UInt32Array>()
                .ok_or_else(|| Error::Internal("a task list of another type".into()))?;
            for i in ids.values().iter().copied() {
                let task = spec
                    .tasks
                    .get(i as usize)
                    .ok_or_else(|| Error::Internal(format!("unknown task {i}")))?;
                let outcome = match &config {
                    Some(config) => encode(&pipeline::rate_task_alone(config, work, task)?)?,
                    None => Vec::new(),
                };
                let org = spec.files[task.file].org_index;
                orgs.push(u32::try_from(org).map_err(|_| Error::Internal("org index".into()))?);
                tasks.push(i);
                outcomes.push(outcome);
            }
        }
        let outcomes: BinaryArray = outcomes.iter().map(|b| Some(b.as_slice())).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(orgs)),
            Arc::new(UInt32Array::from(tasks)),
            Arc::new(outcomes),
        ];
        RecordBatch::try_new(Self::row_schema(), columns)
            .map_err(|e| Error::Internal(format!("rating stage batch: {e}")))
    }
}

impl DisplayAs for RateTasksExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RateTasksExec: tasks={}", self.spec.tasks.len())
    }
}

impl ExecutionPlan for RateTasksExec {
    one_input_plan!("RateTasksExec");

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let spec = Arc::clone(&self.spec);
        Ok(gathered_then_blocking(
            Self::row_schema(),
            input,
            move |lists| Self::rate_tasks(&spec, &lists),
        ))
    }
}

// ---------------------------------------------------------------------------
// Finish stage
// ---------------------------------------------------------------------------

/// The finish stage, after the shuffle by org: each partition gathers its
/// orgs' task outcomes, prices month-end charges and builds each org's
/// invoices (with exports on, the org's executor also writes its exports in
/// one pass over its files); one row per org: its index and its finished
/// month, encoded.
#[derive(Debug)]
pub struct FinishOrgsExec {
    /// The job.
    pub spec: Arc<JobSpec>,
    input: Arc<dyn ExecutionPlan>,
    props: Arc<PlanProperties>,
}

impl FinishOrgsExec {
    /// The finish stage of `spec` over `input` (the shuffled rating stage).
    pub fn new(spec: Arc<JobSpec>, input: Arc<dyn ExecutionPlan>) -> FinishOrgsExec {
        let partitions = input.properties().partitioning.partition_count();
        FinishOrgsExec {
            spec,
            input,
            props: properties(
                Self::row_schema(),
                Partitioning::UnknownPartitioning(partitions),
            ),
        }
    }

    /// (org, finished).
    pub fn row_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(ORG, DataType::UInt32, false),
            Field::new("finished", DataType::Binary, false),
        ]))
    }

    /// The rating stage's rows, grouped by org: (task, encoded outcome).
    fn outcomes_by_org(batches: &[RecordBatch]) -> Result<BTreeMap<usize, Vec<(usize, &[u8])>>> {
        let mut by_org: BTreeMap<usize, Vec<(usize, &[u8])>> = BTreeMap::new();
        for b in batches {
            let col = |i: usize| b.column(i).as_any();
            let (Some(orgs), Some(tasks), Some(outcomes)) = (
                col(0).downcast_ref::<UInt32Array>(),
                col(1).downcast_ref::<UInt32Array>(),
                col(2).downcast_ref::<BinaryArray>(),
            ) else {
                return Err(Error::Internal(
                    "the rating stage's rows have another schema".into(),
                ));
            };
            for r in 0..b.num_rows() {
                by_org
                    .entry(orgs.value(r) as usize)
                    .or_default()
                    .push((tasks.value(r) as usize, outcomes.value(r)));
            }
        }
        Ok(by_org)
    }

    fn finish_partition(spec: &JobSpec, batches: Vec<RecordBatch>) -> Result<RecordBatch> {
        let config = spec.load_config()?;
        let checks = pipeline::all_checks(&config, spec.period);
        let by_org = Self::outcomes_by_org(&batches)?;
        let (mut orgs, mut finished) = (Vec::new(), Vec::new());
        for (org, outcomes) in by_org {
            let done = finish_org(&config, &checks, spec, org, outcomes)?;
            orgs.push(u32::try_from(org).map_err(|_| Error::Internal("org index".into()))?);
            finished.push(encode(&done)?);
        }
        let finished: BinaryArray = finished.iter().map(|b| Some(b.as_slice())).collect();
        let columns: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from(orgs)), Arc::new(finished)];
        RecordBatch::try_new(Self::row_schema(), columns)
            .map_err(|e| Error::Internal(format!("finish stage batch: {e}")))
    }

    /// Decodes the finish stage's rows.
    pub fn decode_rows(batch: &RecordBatch) -> Result<Vec<Finished>> {
        let finished = batch
            .column(1)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| Error::Internal("the finish stage's rows have another schema".into()))?;
        (0..finished.len())
            .map(|r| decode(finished.value(r)))
            .collect()
    }
}

/// One org's finished month from its tasks' encoded outcomes. With exports
/// on, the org's files are rated here with the export sinks instead (the
/// rating stage left the outcomes empty; docs/DISTRIBUTED.md, "Exports").
fn finish_org(
    config: &crate::config::Config,
    checks: &[OrgCheck],
    spec: &JobSpec,
    org: usize,
    outcomes: Vec<(usize, &[u8])>,
) -> Result<Finished> {
    let work = spec.work();
    let Some(to) = spec.export_to() else {
        let outcomes = outcomes
            .into_iter()
            .map(|(task, bytes)| Ok((task, decode::<FileOutcome>(bytes)?)))
            .collect::<Result<Vec<_>>>()?;
        return pipeline::finish_rated_org(config, work, checks, org, outcomes);
    };
    // The org's tasks in plan order, as a run here has them.
    let mut ids: Vec<usize> = outcomes.iter().map(|(task, _)| *task).collect();
    ids.sort_unstable();
    let own: Vec<crate::pipeline::Task> = ids
        .into_iter()
        .filter_map(|task| spec.tasks.get(task).cloned())
        .collect();
    let work = pipeline::Work {
        tasks: &own,
        ..work
    };
    let mut done = pipeline::rate_orgs(config, work, checks, &[org], &Silent, Some(to))?;
    done.pop()
        .ok_or_else(|| Error::Internal(format!("org {org} was not finished")))
}

impl DisplayAs for FinishOrgsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FinishOrgsExec: files={}", self.spec.files.len())
    }
}

impl ExecutionPlan for FinishOrgsExec {
    one_input_plan!("FinishOrgsExec");

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let spec = Arc::clone(&self.spec);
        Ok(gathered_then_blocking(
            Self::row_schema(),
            input,
            move |batches| Self::finish_partition(&spec, batches),
        ))
    }
}
