//! billxfer: month-end billing for AWS Billing Transfer partners.
//!
//! Ingest each customer organization's cost-and-usage files, rate every line at
//! the partner's actual rates and at the customer's pro forma rate card, and
//! write one segregated invoice per organization. See docs/ARCHITECTURE.md.
//!
//! Modules in pipeline order; each knows only those above it (the foundation
//! first, `pipeline` drives the stages, `cli` drives everything).

// Foundation: domain types, exact money, errors, the config and its rules.
pub mod config;
pub mod csv_cell;
pub mod error;
pub mod money;
pub mod rules;
pub mod timestamp;
pub mod types;

// Stages.
pub mod export;
pub mod focus;
pub mod ingest;
pub mod invoice;
pub mod normalize;
pub mod pipeline;
pub mod publish;
pub mod rate;
pub mod render;

// Around the run.
pub mod cli;
pub mod generate;
pub mod report;
