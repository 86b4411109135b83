use clap::Parser;

// Pages allocate many small, short-lived values; glibc's malloc was a fifth of a page view's
// time under load (perf, scripts/bench). C's malloc is mimalloc too (its `override` feature,
// see Cargo.toml), so that SQLite's memory is given back as Rust's is.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    runboard_server::cli::run(runboard_server::cli::Cli::parse())
}
