use clap::Parser;

// Pages allocate many small, short-lived values; glibc's malloc was a fifth of a page view's
// time under load (perf, scripts/bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    runboard_server::cli::run(runboard_server::cli::Cli::parse())
}
