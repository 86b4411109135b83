//! The `runboard` binary as operators and scripts use it.

use crate::support as common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod action_files;
mod config;
mod demo;
mod login;

fn runboard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runboard"))
        .args(args)
        .env_remove("RUNBOARD_DATABASE_URL")
        .env_remove("RUNBOARD_LISTEN")
        .output()
        .expect("run the runboard binary")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A one-off GET with a bearer token from a synchronous test, returning the JSON answer.
fn get_json_with_token(url: &str, token: &str) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

/// A one-off GET from a synchronous test, returning the status code.
fn get_status(url: &str) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { reqwest::get(url).await.unwrap().status().as_u16() })
}

/// A Runboard on the demo fleet, both on `backend`, its config changed by `configure`.
async fn runboard_on_demo_fleet<R>(
    backend: runboard_testkit::Backend,
    configure: impl FnOnce(&mut runboard_core::config::Config) -> R,
) -> (common::TestFleet, common::TestApp, R) {
    let fleet = common::start_fleet(backend).await;
    let services = fleet
        .fleet
        .services()
        .iter()
        .map(common::registered)
        .collect();
    let (app, configured) = common::spawn_app_configured(
        runboard_testkit::TestStore::new(backend).await,
        |config, _| {
            config.services = services;
            configure(config)
        },
    )
    .await;
    (fleet, app, configured)
}
