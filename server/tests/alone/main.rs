//! The server's tests that measure this process itself, or rates by the wall clock, so
//! nothing else may run in it meanwhile: the memory Runboard holds while it serves in it,
//! what it answers under a load the test makes, and an action's pace. Kept out of
//! `server/tests/it/`, whose tests run side by side, and run one at a time here (each holds
//! [`ALONE`]).

// The helpers of server/tests/it/, of which these tests use a few.
#[path = "../it/support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

mod export;
mod fleet;
mod hardening;
mod pace;

/// Held by each test here for its whole run: the others would grow the memory it measures,
/// or slow the pace.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This process's resident memory, in kB.
fn resident_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("Linux says how much memory a process holds")
}
