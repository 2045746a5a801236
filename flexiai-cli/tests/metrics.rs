//! `flexiai demo --metrics-addr`: the in-memory demo serves Prometheus text at `/metrics`, and
//! a scrape during the run shows the documented names (docs/metrics.md) with live values:
//! calls served, the sync mode, and the primary's breaker open during the outage.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

fn sample(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn the_demo_serves_prometheus_metrics_while_it_runs() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flexiai"))
        .args([
            "demo",
            "--quiet",
            "--workers",
            "2",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("metrics at http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in {first:?}"))
        .to_owned();
    // Drain the rest of stdout so the demo never blocks on a full pipe.
    let rest = std::thread::spawn(move || lines.map(Result::unwrap).collect::<Vec<_>>());

    let open = r#"flexiai_breaker_state{worker="w0",breaker="openai",state="open"}"#;
    let served =
        r#"flexiai_breaker_calls_total{worker="w1",breaker="anthropic",outcome="success"}"#;
    let synced = r#"flexiai_sync_mode{worker="w0",mode="synced"}"#;
    let (mut saw_open, mut saw_served, mut saw_synced) = (false, false, false);
    let start = Instant::now();
    let mut text = String::new();
    while !(saw_open && saw_served && saw_synced) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "open {saw_open}, served {saw_served}, synced {saw_synced}"
        );
        text = scrape(&addr);
        saw_open |= sample(&text, open) == Some(1.0);
        saw_served |= sample(&text, served).is_some_and(|n| n > 0.0);
        saw_synced |= sample(&text, synced) == Some(1.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        text.contains("# TYPE flexiai_breaker_transitions_total counter"),
        "{text}"
    );
    // Every metric the Grafana dashboard queries is one the demo exports.
    let dashboard = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/grafana-dashboard.json"
    );
    let dashboard = std::fs::read_to_string(dashboard).unwrap();
    let mut queried: Vec<&str> = dashboard
        .match_indices("flexiai_")
        .map(|(i, _)| {
            let name = &dashboard[i..];
            let end = name
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(name.len());
            &name[..end]
        })
        .collect();
    queried.sort_unstable();
    queried.dedup();
    assert!(queried.len() > 10, "{queried:?}");
    for name in queried {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} not exported:\n{text}"
        );
    }
    let status = child.wait().unwrap();
    let stdout = rest.join().unwrap().join("\n");
    assert!(status.success(), "{stdout}");
}
