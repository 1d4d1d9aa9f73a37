//! `leasekv-bench load ...`: see bench/README.md.

use clap::Parser;
use leasekv_bench::cli::{Cli, Command};
use leasekv_bench::run_load;
use std::process::ExitCode;

/// Exit code of a run that completed but measured the generator, not the server.
const EXIT_INVALID: u8 = 3;

fn init_logging() {
    // glommio reports through `log` (e.g. io_uring memory registration falling back when
    // memlock is low); forward it so it is not lost.
    let _ = tracing_log::LogTracer::init();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let Command::Load(args) = cli.command;
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leasekv-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report = match run_load(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("leasekv-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    report.command_line = std::env::args().collect();
    print!("{}", report.render_text());
    if let Some(path) = &args.json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("leasekv-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    }
}
