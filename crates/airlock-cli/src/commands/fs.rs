//! `airlock fs ls|stat|mkdir|rm|mv|cat` and `airlock watch`.

use std::process::ExitCode;

use airlock_api::{FileEntry, FileMode};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::connect;
use super::transfer::target::remote;
use crate::args::{FsCommand, WatchArgs};
use crate::output::{print_json, print_table};

pub async fn run(command: FsCommand) -> anyhow::Result<ExitCode> {
    match command {
        FsCommand::Ls { target, depth, out } => {
            let (id, path) = remote(&target)?;
            let entries = connect(&out.conn)?
                .list_files(&id, &path, depth, false)
                .await?;
            if out.json {
                print_json(&entries)?;
            } else {
                let rows: Vec<Vec<String>> = entries.iter().map(row).collect();
                print_table(&["MODE", "SIZE", "MODIFIED", "PATH"], &rows);
            }
        }
        FsCommand::Stat { target, out } => {
            let (id, path) = remote(&target)?;
            let entry = connect(&out.conn)?.stat(&id, &path).await?;
            if out.json {
                print_json(&entry)?;
            } else {
                print_table(&["MODE", "SIZE", "MODIFIED", "PATH"], &[row(&entry)]);
            }
        }
        FsCommand::Mkdir { target, mode, out } => {
            let (id, path) = remote(&target)?;
            let mode = mode
                .as_deref()
                .map(FileMode::parse_octal)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let made = connect(&out.conn)?
                .mkdir(&id, &path, mode.map(|m| m.0))
                .await?;
            if out.json {
                print_json(&made)?;
            }
        }
        FsCommand::Rm {
            target,
            recursive,
            out,
        } => {
            let (id, path) = remote(&target)?;
            connect(&out.conn)?.remove(&id, &path, recursive).await?;
            if out.json {
                print_json(&serde_json::json!({"removed": path}))?;
            }
        }
        FsCommand::Mv {
            target,
            to,
            force,
            out,
        } => {
            let (id, from) = remote(&target)?;
            let moved = connect(&out.conn)?.rename(&id, &from, &to, force).await?;
            if out.json {
                print_json(&moved)?;
            }
        }
        FsCommand::Cat { target, conn } => {
            let (id, path) = remote(&target)?;
            let mut stdout = tokio::io::stdout();
            connect(&conn)?.read_to(&id, &path, &mut stdout).await?;
            stdout.flush().await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn row(entry: &FileEntry) -> Vec<String> {
    let kind = match entry.kind.as_str() {
        "dir" => 'd',
        "symlink" => 'l',
        "file" => '-',
        _ => '?',
    };
    let path = match &entry.symlink_target {
        Some(target) => format!("{} -> {target}", entry.path),
        None => entry.path.clone(),
    };
    vec![
        format!("{kind}{:04o}", entry.mode.0),
        entry.size.to_string(),
        entry.mtime.chars().take(19).collect(),
        path,
    ]
}

/// Prints one event a line (`TYPE PATH`, or JSON with `--json`) until interrupted.
pub async fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let (id, path) = remote(&args.target)?;
    let mut events = Box::pin(
        connect(&args.out.conn)?
            .watch(&id, &path, args.recursive)
            .await?,
    );
    while let Some(event) = events.next().await {
        let event = event?;
        if args.out.json {
            println!("{}", serde_json::to_string(&event)?);
        } else if event.kind == "ready" {
            eprintln!("watching {}", event.path);
        } else {
            match &event.from {
                Some(from) => println!("{} {from} -> {}", event.kind, event.path),
                None => println!("{} {}", event.kind, event.path),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
