//! The commands behind the CLI, one module each.

mod backtest;
mod check;
mod detect;
pub mod eval_alerts;
mod eval_forecast;
mod eval_nab;
mod forecast;
mod history;
mod history_anchor;
pub mod run;

pub use backtest::backtest;
pub use check::{CheckReport, check, check_files};
pub use detect::detect;
pub use eval_forecast::eval_forecast;
pub use eval_nab::{NAB_KEEP_FIRING_ROWS, NabRun, eval_nab};
pub use forecast::forecast;
pub use history::history;

use crate::cli::{Cli, Command, EvalCommand};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Detect(args) => detect(&args),
        Command::Forecast(args) => forecast(&args),
        Command::Eval(EvalCommand::Nab(args)) => {
            eval_nab(&args).map(|run| print!("{}", run.report(args.verbose)))
        }
        Command::Run(args) => run::run(&args),
        Command::Backtest(args) => backtest(&args).map(|report| print!("{report}")),
        Command::History(args) => {
            history(&args).map(|n| tracing::info!(samples = n, "History written."))
        }
        Command::Check(args) => {
            let options = crate::config::CheckOptions {
                probe_state_dir: !args.skip_state_dir,
            };
            let report = check_files(&args.files, &options);
            for line in &report.passed {
                println!("{line}");
            }
            // Every problem, one a line, after `error: `.
            report.into_result().map(|_| ())
        }
        Command::Eval(EvalCommand::Alerts(args)) => {
            let result = eval_alerts::eval_alerts(&args)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print!("{}", result.report());
            }
            if !result.failed.is_empty() {
                anyhow::bail!(
                    "{} of {} scenarios could not be replayed (see above)",
                    result.failed.len(),
                    result.failed.len() + result.scenarios.len()
                );
            }
            Ok(())
        }
        Command::Eval(EvalCommand::Forecast(args)) => {
            let table = eval_forecast(&args)?;
            print!("{table}");
            Ok(())
        }
    }
}
