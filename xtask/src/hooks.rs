//! `cargo xtask install-hooks`: a git pre-commit hook running the fast checks.

use std::path::Path;

use xshell::{Shell, cmd};

const HOOK: &str = "#!/bin/sh
# Installed by `cargo xtask install-hooks`: the fast checks of `cargo xtask ci`.
set -e
cargo fmt --all -- --check
cargo xtask lint-fast
";

pub(crate) fn install(sh: &Shell) -> crate::Result<()> {
    let git_dir = cmd!(sh, "git rev-parse --git-path hooks").read()?;
    let hooks = Path::new(git_dir.trim());
    sh.create_dir(hooks)?;
    let path = hooks.join("pre-commit");
    sh.write_file(&path, HOOK)?;
    cmd!(sh, "chmod +x {path}").run()?;
    println!(
        "installed {} (fmt check and clippy before every commit)",
        path.display()
    );
    Ok(())
}
