//! `airlock exec`: output streamed live, exit code passed through.

use std::io::{Read, Write};
use std::process::ExitCode;

use airlock_api::{ExecEvent, ExecRequest};
use anyhow::Context;
use base64::Engine as _;
use futures_util::StreamExt;

use super::connect;
use crate::args::ExecArgs;
use crate::output::{key_values, print_json};

pub async fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let client = connect(&args.out.conn)?;
    let stdin_b64 = if args.stdin {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        None
    };
    let req = ExecRequest {
        cmd: Some(args.command),
        env: key_values(&args.env, "--env")?,
        cwd: args.cwd,
        stdin_b64,
        timeout_ms: args.timeout.map(|s| (s * 1000.0).ceil() as u64),
        ..Default::default()
    };
    if args.out.json {
        let result = client.exec(&args.id, &req).await?;
        print_json(&result)?;
        return Ok(exit_code(result.exit_code));
    }
    let mut events = Box::pin(client.exec_stream(&args.id, &req).await?);
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    while let Some(event) = events.next().await {
        match event? {
            // Only background processes announce themselves.
            ExecEvent::Start { .. } => {}
            ExecEvent::Stdout(chunk) => {
                out.write_all(&chunk.bytes())?;
                out.flush()?;
            }
            ExecEvent::Stderr(chunk) => {
                err.write_all(&chunk.bytes())?;
                err.flush()?;
            }
            ExecEvent::Exit {
                exit_code: code,
                timed_out,
            } => {
                if timed_out {
                    eprintln!("airlock: command timed out; its processes were killed");
                }
                return Ok(exit_code(code));
            }
            ExecEvent::Error { message } => anyhow::bail!("{message}"),
        }
    }
    anyhow::bail!("the daemon ended the stream before the command's exit status")
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
