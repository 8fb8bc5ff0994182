//! billxfer: month-end billing for AWS Billing Transfer partners.
//!
//! Ingest each customer organization's cost-and-usage files, rate every line at
//! the partner's actual rates and at the customer's pro forma rate card, and
//! write one segregated invoice per organization. See docs/ARCHITECTURE.md.

pub mod analyst;
pub mod cli;
pub mod config;
pub mod error;
pub mod export;
pub mod focus;
pub mod generate;
pub mod ingest;
pub mod invoice;
pub mod money;
pub mod normalize;
pub mod pipeline;
pub mod publish;
pub mod rate;
pub mod render;
pub mod rollup;
pub mod rules;
pub mod timestamp;
pub mod types;
