//! What every client tool shares: where the cluster is (`--bootstrap-server`), client
//! properties (`--command-config`), the async runtime, logging, and output helpers.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use anyhow::Context;
use strom_client::ClientConfig;

/// Used when neither `--bootstrap-server` nor the properties file names a broker.
const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Broker(s) to connect to: HOST:PORT[,HOST:PORT...] [default: 127.0.0.1:9092]
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap_server: Option<String>,
    /// A client properties file (Kafka property names), as Kafka's tools take.
    #[arg(long, value_name = "FILE")]
    command_config: Option<PathBuf>,
}

impl ConnectArgs {
    /// The client configuration: the properties file, then `overrides` (from the tool's own
    /// flags), then `--bootstrap-server`, each winning over the previous, as in Kafka's tools.
    pub(crate) fn config(&self, overrides: &[(&str, String)]) -> anyhow::Result<ClientConfig> {
        let mut props: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = &self.command_config {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let read = java_properties::read(std::io::BufReader::new(file))
                .with_context(|| format!("cannot read {}", path.display()))?;
            props.extend(read);
        }
        for (k, v) in overrides {
            props.insert((*k).to_string(), v.clone());
        }
        match &self.bootstrap_server {
            Some(servers) => {
                props.insert("bootstrap.servers".into(), servers.clone());
            }
            None => {
                props
                    .entry("bootstrap.servers".into())
                    .or_insert_with(|| DEFAULT_BOOTSTRAP.to_string());
            }
        }
        Ok(ClientConfig::from_properties(&props)?)
    }
}

/// Runs a tool's async body on a fresh runtime, with warnings logged to stderr.
pub(crate) fn run_async<F: Future<Output = anyhow::Result<()>>>(body: F) -> anyhow::Result<()> {
    // A second init (not possible in the binary, one tool per process) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("strom-tool")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(body)
}

/// Parses `KEY=VALUE`.
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("empty key in `{s}`"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// How listing commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Human-readable, in the layout of Kafka's tools.
    Table,
    /// One JSON document.
    Json,
}

/// A topic id as Kafka prints it (`Uuid.toString()`: URL-safe base64, no padding).
pub(crate) fn kafka_uuid(id: &uuid::Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// The error of a tool that already printed its own `error:` line(s) (for instance one per
/// failed group, in order with the output of the others): `main` then only sets the exit code.
#[derive(Debug)]
pub(crate) struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("errors were reported above")
    }
}

impl std::error::Error for Reported {}

/// The error of a tool whose stdout was closed (`strom groups list | head -1`): nobody reads
/// the rest, and `main` exits successfully without a word.
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes `text` to stdout; a closed pipe becomes [`StdoutClosed`] instead of a panic.
pub(crate) fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if is_broken_pipe(&e) => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

/// `println!` through [`out`]: `outln!("{x}")?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::client_args::out(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Prints one `error:` line now, for tools that go on with other items and fail at the end
/// with [`Reported`].
pub(crate) fn report(message: impl std::fmt::Display) {
    eprintln!("error: {message}");
}

/// Splits `a,b,,c` into its non-empty, trimmed parts.
pub(crate) fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// True for the error a closed stdout (`strom consume ... | head`) gives; tools then stop
/// quietly instead of reporting it.
pub(crate) fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn flags_override_the_properties_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "# client settings\nbootstrap.servers=file:1\nacks=1\nlinger.ms = 7"
        )
        .unwrap();
        let args = ConnectArgs {
            bootstrap_server: None,
            command_config: Some(file.path().to_path_buf()),
        };
        let c = args.config(&[("acks", "0".into())]).unwrap();
        assert_eq!(c.bootstrap_servers(), ["file:1"]);
        assert_eq!(c.acks(), strom_client::Acks::None);
        assert_eq!(c.linger(), std::time::Duration::from_millis(7));
        let args = ConnectArgs {
            bootstrap_server: Some("flag:2".into()),
            ..args
        };
        assert_eq!(args.config(&[]).unwrap().bootstrap_servers(), ["flag:2"]);
        let none = ConnectArgs {
            bootstrap_server: None,
            command_config: None,
        };
        assert_eq!(
            none.config(&[]).unwrap().bootstrap_servers(),
            ["127.0.0.1:9092"]
        );
    }

    #[test]
    fn bad_property_values_name_the_key() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "request.timeout.ms=soon").unwrap();
        let args = ConnectArgs {
            bootstrap_server: None,
            command_config: Some(file.path().to_path_buf()),
        };
        let err = format!("{:#}", args.config(&[]).unwrap_err());
        assert_eq!(
            err,
            "invalid configuration `request.timeout.ms`: `soon` is not an integer"
        );
    }

    #[test]
    fn topic_ids_print_like_kafka() {
        let id = uuid::Uuid::from_bytes([
            0x2e, 0xd4, 0xdb, 0x48, 0xd1, 0x5e, 0x41, 0x9c, 0x87, 0x9f, 0xc9, 0xd7, 0x2b, 0xfa,
            0xc1, 0x6f,
        ]);
        assert_eq!(kafka_uuid(&id), "LtTbSNFeQZyHn8nXK_rBbw");
    }
}
