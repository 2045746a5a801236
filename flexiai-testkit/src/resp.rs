//! A minimal blocking RESP2 client, to set up clusters and Sentinel groups without a driver.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{Result, TestkitError};

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$3 foo` (`None`: the null bulk string)
    Bulk(Option<String>),
    /// `*2 ...` (`None`: the null array)
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text: simple and bulk strings as they are, integers in decimal, arrays
    /// one element per line; `None` for errors and nulls.
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Simple(s) | Self::Bulk(Some(s)) => Some(s.clone()),
            Self::Int(i) => Some(i.to_string()),
            Self::Array(Some(items)) => Some(
                items
                    .iter()
                    .filter_map(Reply::text)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        }
    }
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad RESP reply");
    let (kind, rest) = line.split_at_checked(1).ok_or_else(invalid)?;
    Ok(match kind {
        "+" => Reply::Simple(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Int(rest.parse().map_err(|_| invalid())?),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| invalid())?;
            match usize::try_from(len) {
                Ok(len) => {
                    let mut buf = vec![0u8; len + 2];
                    reader.read_exact(&mut buf)?;
                    buf.truncate(len);
                    Reply::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
                }
                Err(_) => Reply::Bulk(None),
            }
        }
        "*" => {
            let len: i64 = rest.parse().map_err(|_| invalid())?;
            match usize::try_from(len) {
                Ok(len) => Reply::Array(Some(
                    (0..len)
                        .map(|_| read_reply(reader))
                        .collect::<std::io::Result<_>>()?,
                )),
                Err(_) => Reply::Array(None),
            }
        }
        _ => return Err(invalid()),
    })
}

/// Sends one command to `addr` on a fresh connection and returns its reply (an error reply
/// is `Ok(Reply::Error)`; I/O failures are errors).
pub fn command(addr: SocketAddr, args: &[&str]) -> Result<Reply> {
    let context = || format!("{} to {addr}", args.first().copied().unwrap_or("command"));
    let fail = |e: std::io::Error| TestkitError::Topology {
        context: context(),
        reason: e.to_string(),
    };
    let timeout = Duration::from_secs(10);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    stream.write_all(&out).map_err(fail)?;
    read_reply(&mut BufReader::new(stream)).map_err(fail)
}

/// Like [`command`], failing on an error reply too; returns the reply's text.
pub fn command_ok(addr: SocketAddr, args: &[&str]) -> Result<String> {
    match command(addr, args)? {
        Reply::Error(reason) => Err(TestkitError::Topology {
            context: format!("{} to {addr}", args.join(" ")),
            reason,
        }),
        reply => Ok(reply.text().unwrap_or_default()),
    }
}

/// Polls `check` every 50 ms until it returns `Ok(true)` or `timeout` passes.
pub(crate) fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = String::from("never satisfied");
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = e.to_string(),
        }
        if std::time::Instant::now() >= deadline {
            return Err(TestkitError::Topology {
                context: format!("waiting for {what} ({timeout:?})"),
                reason: last,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
