//! How billxfer's operators travel from the driver to the scheduler and on to
//! executors: Ballista's own codec for its nodes, a tagged encoding for ours.

use std::sync::Arc;

use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use super::{FinishOrgsExec, JobSpec, RateTasksExec};

/// First byte of an encoded node: whose it is.
const BALLISTA: u8 = 0;
const RATE: u8 = 1;
const FINISH: u8 = 2;

/// The physical codec every role of a billxfer cluster uses (driver, scheduler, executors).
#[derive(Debug, Default)]
pub struct BillxferCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

/// The codec as the engine takes it.
pub fn codec() -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(BillxferCodec::default())
}

fn wire_err(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("billxfer cluster plan: {what}: {e}"))
}

/// The job's spec and the one input of an encoded billxfer node.
fn spec_and_input(
    body: &[u8],
    inputs: &[Arc<dyn ExecutionPlan>],
    node: &str,
) -> DfResult<(Arc<JobSpec>, Arc<dyn ExecutionPlan>)> {
    let spec: JobSpec =
        bincode::deserialize(body).map_err(|e| wire_err(&format!("decoding {node}"), e))?;
    let [input] = inputs else {
        return Err(wire_err(&format!("decoding {node}"), "it takes one input"));
    };
    Ok((Arc::new(spec), Arc::clone(input)))
}

impl PhysicalExtensionCodec for BillxferCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some((&tag, body)) = buf.split_first() else {
            return Err(wire_err("decoding", "an empty node"));
        };
        match tag {
            BALLISTA => self.ballista.try_decode(body, inputs, ctx, converter),
            RATE => {
                let (spec, input) = spec_and_input(body, inputs, "RateTasksExec")?;
                Ok(Arc::new(RateTasksExec::new(spec, input)))
            }
            FINISH => {
                let (spec, input) = spec_and_input(body, inputs, "FinishOrgsExec")?;
                Ok(Arc::new(FinishOrgsExec::new(spec, input)))
            }
            other => Err(wire_err("decoding", format!("unknown node tag {other}"))),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        let ours = match (
            node.downcast_ref::<RateTasksExec>(),
            node.downcast_ref::<FinishOrgsExec>(),
        ) {
            (Some(rate), _) => Some((RATE, &rate.spec)),
            (_, Some(finish)) => Some((FINISH, &finish.spec)),
            _ => None,
        };
        if let Some((tag, spec)) = ours {
            buf.push(tag);
            bincode::serialize_into(&mut *buf, spec.as_ref())
                .map_err(|e| wire_err("encoding a billxfer node", e))?;
            return Ok(());
        }
        buf.push(BALLISTA);
        self.ballista.try_encode(node, buf, converter)
    }
}
