//! The runboard binary's library. This file only wires the modules; `main.rs` parses
//! the command line and calls [`cli::run`].

mod action_cli;
mod action_file;
mod api;
mod charts;
pub mod cli;
mod cli_client;
mod cli_login;
mod cli_reads;
mod client_address;
pub mod demo;
mod error;
mod health;
mod http;
mod identity;
mod limits;
mod shared_pages;
mod telemetry;

pub use http::{RouteRule, ServerState, router, routes, serve};
