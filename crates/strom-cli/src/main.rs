//! `strom`: the broker (`strom server`) and the command-line tools Kafka users know, in one
//! binary. Every failure ends as one readable line on stderr and a non-zero exit, never a panic.

mod client_args;
mod configs;
mod consume;
mod delete_records;
mod dump_log;
mod groups;
mod log_dirs;
mod perf_test;
mod produce;
mod server;
mod topics;
mod transactions;
mod verifiable;

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
    /// List, describe and delete consumer groups, reset their offsets (like
    /// kafka-consumer-groups.sh).
    Groups(groups::GroupsArgs),
    /// Describe and change topic and broker configs (like kafka-configs.sh).
    Configs(configs::ConfigsArgs),
    /// Delete the records of partitions below an offset (like kafka-delete-records.sh).
    DeleteRecords(delete_records::DeleteRecordsArgs),
    /// Describe the brokers' log directories as JSON (like kafka-log-dirs.sh --describe).
    LogDirs(log_dirs::LogDirsArgs),
    /// List and describe transactions, abort hanging ones (like kafka-transactions.sh).
    Transactions(transactions::TransactionsArgs),
    /// Measure producer or consumer throughput and latency (like
    /// kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh).
    PerfTest(perf_test::PerfTestArgs),
    /// Produce numbered messages and print each outcome as JSON (like Kafka's
    /// VerifiableProducer, for test harnesses).
    VerifiableProducer(verifiable::VerifiableProducerArgs),
    /// Consume and print what was consumed as JSON events (like Kafka's VerifiableConsumer,
    /// for test harnesses).
    VerifiableConsumer(verifiable::VerifiableConsumerArgs),
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
        Command::Groups(args) => groups::run(args),
        Command::Configs(args) => configs::run(args),
        Command::DeleteRecords(args) => delete_records::run(args),
        Command::LogDirs(args) => log_dirs::run(args),
        Command::Transactions(args) => transactions::run(args),
        Command::PerfTest(args) => perf_test::run(args),
        Command::VerifiableProducer(args) => verifiable::run_producer(args),
        Command::VerifiableConsumer(args) => verifiable::run_consumer(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The tool printed its `error:` lines itself.
        Err(e) if e.is::<client_args::Reported>() => ExitCode::FAILURE,
        Err(e) if e.is::<client_args::StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
