//! `leasekv-bench load ...` (one load run) and `leasekv-bench run ...` (the scenario
//! suite): see bench/README.md and docs/benchmarks.md.

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
    match cli.command {
        Command::Load(args) => load(&args),
        Command::Run(args) => suite(&args),
    }
}

fn suite(args: &leasekv_bench::cli::RunArgs) -> ExitCode {
    let options = match args.to_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("leasekv-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match leasekv_bench::suite::run_suite(&options, std::env::args().collect()) {
        Ok((dir, report)) => {
            println!("report: {}", dir.join("report.md").display());
            for s in &report.scenarios {
                println!("scenario {}: {} ({:.0} s)", s.id, s.status, s.secs);
            }
            if report.scenarios.iter().any(|s| s.status == "failed") {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("leasekv-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(args: &leasekv_bench::cli::LoadArgs) -> ExitCode {
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
