//! `strom`: the broker (`strom server`) and the command-line tools Kafka users know, in one
//! binary. Every failure ends as one readable line on stderr and a non-zero exit, never a panic.

mod client_args;
mod consume;
mod dump_log;
mod produce;
mod server;
mod topics;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "strom",
    version,
    about = "A Kafka-compatible event streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (single node with embedded defaults when given no configuration).
    Server(server::ServerArgs),
    /// Create, list, describe and delete topics (like kafka-topics.sh).
    Topics(topics::TopicsArgs),
    /// Write one record per input line to a topic (like kafka-console-producer.sh).
    Produce(produce::ProduceArgs),
    /// Print a topic's records (like kafka-console-consumer.sh).
    Consume(consume::ConsumeArgs),
    /// Print log segment, index and snapshot files (like kafka-dump-log.sh).
    DumpLog(dump_log::DumpLogArgs),
}

fn main() -> ExitCode {
    // A bug must still end as one readable line, not a panic message and a backtrace hint.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error: {message}{location}");
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Topics(args) => topics::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::DumpLog(args) => dump_log::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
