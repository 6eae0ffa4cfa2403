//! `airlock`: the daemon (`airlock serve`) and every client verb, in one binary.

mod args;
mod commands;
mod output;
mod stop_signals;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// jemalloc, not glibc's malloc. A streamed body lives in buffers of a few hundred KiB that
/// hyper allocates and frees per read; glibc handed them back to the kernel and took them
/// again, so every upload paid a page fault and a page clear per 4 KiB received (7 % of the
/// daemon's samples). jemalloc keeps freed extents for reuse: a 1 GiB upload's daemon CPU
/// went from 1.56–1.76 s to 1.18–1.24 s in alternating runs.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // The daemon re-executes this binary as its init and exec helpers; those must run
    // before anything else, single-threaded.
    airlock_sandbox::run_helper_if_requested();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(args),
        Command::Agent(args) => commands::agent::run(args),
        other => {
            // Like other Unix tools, a client verb ends quietly when the reader of its
            // output goes away (`airlock fs ls ID:/ | head`). Never the daemon: it must
            // shrug off clients that hang up.
            // SAFETY: restoring a signal's default disposition, before any thread exists.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            client_runtime().and_then(|rt| rt.block_on(commands::run_client(other)))
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("airlock: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
