//! Tests of `RedisServer` against the real `redis-server` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may unwrap

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use flexiai_testkit::{RedisServer, TestkitError};

/// Send one command as RESP and return the first reply line.
fn command(server: &RedisServer, args: &[&str]) -> String {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut req = format!("*{}\r\n", args.len());
    for arg in args {
        req.push_str(&format!("${}\r\n{}\r\n", arg.len(), arg));
    }
    stream.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1);
        out.push(byte[0]);
    }
    String::from_utf8(out).unwrap().trim_end().to_owned()
}

#[test]
fn starts_and_answers_ping() {
    let server = RedisServer::start().unwrap();
    server.ping(Duration::from_secs(1)).unwrap();
    assert_eq!(command(&server, &["PING"]), "+PONG");
    assert!(server.url().ends_with(&format!(":{}", server.port())));
    assert!(server.log_tail().contains("Ready to accept connections"));
    assert_eq!(command(&server, &["CONFIG", "GET", "save"]), "*2");
}

#[test]
fn two_servers_get_different_ports() {
    let a = RedisServer::start().unwrap();
    let b = RedisServer::start().unwrap();
    assert_ne!(a.port(), b.port());
}

#[test]
fn kill_and_restart_on_same_port_loses_state() {
    let mut server = RedisServer::start().unwrap();
    let port = server.port();
    assert_eq!(command(&server, &["SET", "k", "v"]), "+OK");
    server.kill().unwrap();
    assert!(server.pid().is_none());
    assert!(server.ping(Duration::from_millis(200)).is_err());
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(command(&server, &["GET", "k"]), "$-1");
}

#[test]
fn graceful_stop_then_restart() {
    let mut server = RedisServer::start().unwrap();
    server.stop().unwrap();
    assert!(server.ping(Duration::from_millis(200)).is_err());
    server.restart().unwrap();
    server.ping(Duration::from_secs(1)).unwrap();
    // Restart of a running server stops it first.
    server.restart().unwrap();
    server.ping(Duration::from_secs(1)).unwrap();
}

#[test]
fn pause_makes_ping_time_out_and_resume_answers() {
    let mut server = RedisServer::start().unwrap();
    server.pause().unwrap();
    assert!(server.is_paused());
    let started = Instant::now();
    let err = server.ping(Duration::from_millis(300)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.to_string().contains("timed out"), "{err}");
    server.resume().unwrap();
    server.ping(Duration::from_secs(1)).unwrap();
}

#[test]
fn password_and_acl_user() {
    let server = RedisServer::builder()
        .password("s3cret")
        .acl_user("alice", "wonder")
        .start()
        .unwrap();
    assert!(command(&server, &["GET", "x"]).starts_with("-NOAUTH"));
    assert!(command(&server, &["AUTH", "wrong"]).starts_with("-WRONGPASS"));
    assert_eq!(command(&server, &["AUTH", "s3cret"]), "+OK");
    assert_eq!(command(&server, &["AUTH", "alice", "wonder"]), "+OK");
    assert!(server.authenticated_url().contains(":s3cret@"));
    assert!(!format!("{server:?}").contains("s3cret"));
}

#[test]
fn missing_binary_says_how_to_install() {
    let err = RedisServer::builder()
        .binary("/nonexistent/redis-server")
        .start()
        .unwrap_err();
    assert!(matches!(err, TestkitError::RedisServerNotFound { .. }));
    assert!(
        err.to_string().contains("apt-get install redis-server"),
        "{err}"
    );
}

#[test]
fn bad_argument_reports_log_tail() {
    let err = RedisServer::builder()
        .args(["--no-such-option", "1"])
        .startup_timeout(Duration::from_secs(5))
        .start()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("exited during startup"), "{text}");
    assert!(text.contains("no-such-option"), "{text}");
}

#[test]
fn drop_kills_paused_server_and_removes_dir() {
    let mut server = RedisServer::start().unwrap();
    let addr = server.addr();
    let dir = server.dir().to_path_buf();
    let pid = server.pid().unwrap();
    server.pause().unwrap();
    drop(server);
    assert!(!dir.exists());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(flexiai_testkit::ping(addr, Duration::from_millis(200)).is_err());
}

#[test]
fn tls_listener_with_a_self_signed_certificate() {
    let mut server = RedisServer::builder().tls().unwrap().start().unwrap();
    let tls_port = server.tls_port().unwrap();
    assert_ne!(tls_port, server.port());
    assert!(server.tls_certificate().unwrap().is_file());
    assert!(server.tls_url().unwrap().starts_with("rediss://127.0.0.1:"));
    assert!(server.log_tail().contains("Ready to accept connections"));
    server.kill().unwrap();
    server.restart().unwrap();
    assert_eq!(server.tls_port(), Some(tls_port));
}
