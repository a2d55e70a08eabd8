//! `strom server` as a process: configuration errors, a properties file, SIGTERM, restart.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STROM: &str = env!("CARGO_BIN_EXE_strom");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("strom server exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("strom server did not listen on {port}");
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "strom server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_tool(args: &[&str]) -> std::process::Output {
    Command::new(STROM).args(args).output().unwrap()
}

#[test]
fn invalid_values_refuse_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(STROM)
        .args(["server", "--override", "num.partitions=zero", "--override"])
        .arg(format!("log.dirs={}", dir.path().display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("num.partitions"), "{stderr}");

    let out = Command::new(STROM)
        .args(["server", "--config", "/nonexistent/server.properties"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/server.properties"));
}

#[test]
fn serves_from_a_properties_file_stops_cleanly_on_sigterm_and_restarts_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let config = dir.path().join("server.properties");
    std::fs::write(
        &config,
        format!(
            "# a Kafka-style file\nlisteners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={}\nnum.partitions=2\nsome.unknown.key=1\n",
            data.display()
        ),
    )
    .unwrap();
    let bootstrap = format!("127.0.0.1:{port}");
    let start = || {
        Command::new(STROM)
            .args(["server", "--config"])
            .arg(&config)
            .args(["--override", "auto.create.topics.enable=true"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    let mut server = start();
    let stderr = BufReader::new(server.stderr.take().unwrap());
    let log = std::thread::spawn(move || stderr.lines().map_while(Result::ok).collect::<Vec<_>>());
    wait_for_port(port, &mut server);
    let out = run_tool(&["topics", "create", "kept", "--bootstrap-server", &bootstrap]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut produce = Command::new(STROM)
        .args(["produce", "kept", "--bootstrap-server", &bootstrap])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = produce.stdin.take().unwrap();
        for i in 0..100 {
            writeln!(stdin, "line-{i}").unwrap();
        }
    }
    assert!(produce.wait().unwrap().success());

    assert!(terminate(&mut server).success(), "clean exit on SIGTERM");
    let log = log.join().unwrap().join("\n");
    assert!(
        log.contains("unknown configuration key"),
        "unknown keys are warned about:\n{log}"
    );
    assert!(
        data.join(".kafka_cleanshutdown").exists(),
        "clean-shutdown marker written"
    );
    assert!(data.join("meta.properties").exists());

    let mut server = start();
    wait_for_port(port, &mut server);
    let out = run_tool(&[
        "consume",
        "kept",
        "--from-beginning",
        "--max-messages",
        "100",
        "--timeout-ms",
        "10000",
        "--bootstrap-server",
        &bootstrap,
    ]);
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let mut expected: Vec<String> = (0..100).map(|i| format!("line-{i}")).collect();
    let mut got = lines.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every record survives a restart");
    let out = run_tool(&[
        "topics",
        "describe",
        "kept",
        "--bootstrap-server",
        &bootstrap,
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PartitionCount: 2"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(terminate(&mut server).success());
}
