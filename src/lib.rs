//! billxfer: month-end billing for AWS Billing Transfer partners.
//!
//! Ingest each customer organization's cost-and-usage files, rate every line at
//! the partner's actual rates and at the customer's pro forma rate card, and
//! write one segregated invoice per organization. See docs/ARCHITECTURE.md.
//!
//! Modules in pipeline order; each knows only those above it (the foundation
//! first, `pipeline` drives the stages, `cli` drives everything).

// Foundation: domain types, exact money, errors, the config and its rules.
pub mod error;
pub mod money;
pub mod csv_cell;
pub mod timestamp;
pub mod types;
pub mod fx;
pub mod rules;
pub mod config;

// Stages, in the order rows flow through them.
pub mod ingest;
pub mod normalize;
pub mod rate;
pub mod discounts;
pub mod invoice;
pub mod focus;
pub mod export;
pub mod pipeline;
pub mod render;
pub mod publish;
#[cfg(feature = "distributed")]
pub mod cluster;

// Around the run.
pub mod report;
pub mod generate;
pub mod cli;
