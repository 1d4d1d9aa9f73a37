//! `leasekv` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use leasekv::config::{self, Overrides};

#[derive(Parser)]
#[command(
    name = "leasekv",
    version,
    about = "Raft-replicated, thread-per-core key-value server speaking the Redis protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Start a local cluster on loopback (one process per node, data in a temporary
    /// directory), print the client ports, and stop every node on Ctrl-C.
    Demo(DemoArgs),
    /// Cluster membership: add-node, remove-node, members, transfer (sent to a running node).
    Admin(AdminArgs),
}

#[derive(clap::Args)]
struct AdminArgs {
    /// Client address of any node of the cluster.
    #[arg(long, default_value = "127.0.0.1:6379", value_name = "ADDR")]
    node: String,
    #[command(subcommand)]
    op: AdminOp,
}

#[derive(Subcommand)]
enum AdminOp {
    /// Add a node (started with `join = true`) to every shard group.
    AddNode {
        #[arg(long)]
        id: u64,
        /// Its Raft base address (core c listens on port + c).
        #[arg(long)]
        raft: String,
        /// Its client (Redis protocol) address.
        #[arg(long)]
        client: String,
    },
    /// Remove a node from every shard group (leadership moves off it first).
    RemoveNode {
        #[arg(long)]
        id: u64,
    },
    /// Show each group's voters, learners and leader as the node sees them.
    Members,
    /// Hand a group's leadership to another voter (send it to the group's current leader).
    Transfer {
        #[arg(long)]
        group: u32,
        /// The voter to take over.
        #[arg(long)]
        to: u64,
    },
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Client ports are base-port.. (one per node); Raft ports start at base-port+100.
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// CPUs each node pins its cores to, e.g. `0,1` (default: all allowed CPUs).
    #[arg(long, value_name = "LIST")]
    cores: Option<String>,
    /// Keep the data directory after stopping.
    #[arg(long)]
    keep_data: bool,
    /// How the nodes serve reads: `lease` or `readindex`.
    #[arg(long, default_value = "lease", value_parser = ["lease", "readindex"])]
    read_mode: String,
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// TOML configuration file; every key is optional (see README "Configuration").
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Client address to listen on, e.g. 127.0.0.1:6379 (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory for the write-ahead logs and snapshots (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// CPUs to pin one executor each to, e.g. `0,1` or `0-3` (overrides `cores`).
    #[arg(long, value_name = "LIST")]
    cores: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Cmd::Serve(a)) => a,
        Some(Cmd::Demo(d)) => return demo(d),
        Some(Cmd::Admin(a)) => return admin(a),
        None => ServeArgs::default(),
    };
    let cores = match args
        .cores
        .as_deref()
        .map(config::parse_core_list)
        .transpose()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leasekv: --cores: {e}");
            return ExitCode::from(2);
        }
    };
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        cores,
    };
    let cfg = match config::resolve(args.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leasekv: {e}");
            return ExitCode::from(2);
        }
    };
    leasekv::logging::init(&cfg.log_level);
    // A core that panics has lost its shard groups' in-memory state; limping on would leave
    // hops to it timing out. Crash the whole process instead: the WAL makes that safe.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        tracing::error!("{info}; aborting");
        std::process::abort();
    }));
    match leasekv::server::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("leasekv: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(d: DemoArgs) -> ExitCode {
    let cores = match d.cores.as_deref().map(config::parse_core_list).transpose() {
        Ok(Some(c)) => c,
        Ok(None) => match config::affinity_cpus() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("leasekv demo: {e}");
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("leasekv demo: --cores: {e}");
            return ExitCode::from(2);
        }
    };
    let layout = leasekv::demo::Layout {
        nodes: d.nodes,
        base_port: d.base_port,
        cores,
        read_mode: d.read_mode,
    };
    match leasekv::demo::run(layout, d.keep_data) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leasekv demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn admin(a: AdminArgs) -> ExitCode {
    let args: Vec<String> = match a.op {
        AdminOp::AddNode { id, raft, client } => {
            vec!["ADDNODE".into(), id.to_string(), raft, client]
        }
        AdminOp::RemoveNode { id } => vec!["REMOVENODE".into(), id.to_string()],
        AdminOp::Members => vec!["MEMBERS".into()],
        AdminOp::Transfer { group, to } => {
            vec!["TRANSFER".into(), group.to_string(), to.to_string()]
        }
    };
    match leasekv::admin::cli(&a.node, &args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("leasekv admin: {e}");
            ExitCode::FAILURE
        }
    }
}
