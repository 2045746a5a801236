//! What the bench ran on.

use std::process::Command;

/// Machine and tool versions, for the report.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    /// `nproc`.
    pub(crate) cpus: usize,
    /// `model name` from /proc/cpuinfo.
    pub(crate) cpu_model: String,
    /// `rustc --version`.
    pub(crate) rustc: String,
    /// `redis-server --version`.
    pub(crate) redis: String,
    /// `uname -sr`.
    pub(crate) kernel: String,
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Collects the machine description.
pub(crate) fn describe() -> Machine {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = output(
        &std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()),
        &["--version"],
    );
    let redis = output("redis-server", &["--version"]);
    let redis = redis
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .map_or(redis.clone(), |v| format!("redis-server {v}"));
    let kernel = output("uname", &["-sr"]);
    Machine {
        cpus,
        cpu_model,
        rustc,
        redis,
        kernel,
    }
}
