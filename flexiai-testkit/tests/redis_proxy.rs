//! Tests of `FaultProxy` in front of an echo server and a real redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may unwrap

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use flexiai_testkit::{FaultProxy, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(stream: &mut TcpStream, msg: &[u8], limit: Duration) -> Option<Vec<u8>> {
    stream.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    match timeout(limit, stream.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Some(buf),
        _ => None,
    }
}

#[tokio::test]
async fn passes_bytes_through() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let reply = round_trip(&mut stream, b"hello", Duration::from_secs(1)).await;
    assert_eq!(reply.as_deref(), Some(&b"hello"[..]));
    assert_eq!(proxy.total_connections(), 1);
    assert!(proxy.url().ends_with(&proxy.port().to_string()));
}

#[tokio::test]
async fn passes_redis_ping() {
    let server = RedisServer::start().unwrap();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    timeout(Duration::from_secs(1), stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}

#[tokio::test]
async fn cut_closes_current_connections_and_keeps_accepting() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        round_trip(&mut old, b"a", Duration::from_secs(1))
            .await
            .is_some()
    );
    assert_eq!(proxy.active_connections(), 1);
    proxy.cut();
    let mut buf = [0u8; 1];
    let read = timeout(Duration::from_secs(1), old.read(&mut buf))
        .await
        .expect("cut connection must close");
    assert!(matches!(read, Ok(0) | Err(_)));
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        round_trip(&mut new, b"b", Duration::from_secs(1))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn blackhole_holds_bytes_until_lifted() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        round_trip(&mut stream, b"x", Duration::from_secs(1))
            .await
            .is_some()
    );
    proxy.blackhole(true);
    assert!(
        round_trip(&mut stream, b"ping", Duration::from_millis(300))
            .await
            .is_none()
    );
    // New connections are accepted but stay silent too.
    let mut other = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        round_trip(&mut other, b"z", Duration::from_millis(200))
            .await
            .is_none()
    );
    proxy.blackhole(false);
    let mut buf = [0u8; 4];
    timeout(Duration::from_secs(1), stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn latency_delays_each_direction() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.latency(Duration::from_millis(150));
    let started = Instant::now();
    assert!(
        round_trip(&mut stream, b"slow", Duration::from_secs(2))
            .await
            .is_some()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    proxy.pass();
    let started = Instant::now();
    assert!(
        round_trip(&mut stream, b"fast", Duration::from_secs(1))
            .await
            .is_some()
    );
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn drop_stops_the_proxy() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let addr = proxy.addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert!(
        round_trip(&mut stream, b"x", Duration::from_secs(1))
            .await
            .is_some()
    );
    drop(proxy);
    let mut buf = [0u8; 1];
    let read = timeout(Duration::from_secs(1), stream.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)));
    assert!(TcpStream::connect(addr).await.is_err());
}
