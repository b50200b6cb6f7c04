//! The `prognos` binary: parse the command line, run the command, print
//! errors with their causes and exit non-zero on failure.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    prognos::logging::init();
    let cli = prognos::cli::Cli::parse();
    match prognos::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
