//! Running the built `strom` binary from tests, and the checks every tool test makes on its
//! exit status and output.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs `strom ARGS`, with `stdin` as its input (none when `None`); fails the test if it takes
/// over 90 s.
pub(crate) async fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("strom starts");
    if let Some(text) = stdin {
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("strom finishes within 90 s")
        .expect("strom runs")
}

/// `strom ARGS --bootstrap-server B`.
pub(crate) async fn tool(b: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--bootstrap-server", b]);
    run(&all, None).await
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success; returns stdout.
pub(crate) fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts exit status 1; returns stderr.
pub(crate) fn failed(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    stderr(o)
}
