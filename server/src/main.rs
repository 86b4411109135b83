use clap::Parser;

fn main() -> std::process::ExitCode {
    runboard_server::cli::run(runboard_server::cli::Cli::parse())
}
