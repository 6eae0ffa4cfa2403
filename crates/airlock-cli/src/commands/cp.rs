//! `airlock cp`, with `docker cp`'s rules for where things land:
//! - a file onto an existing directory goes inside it, otherwise it becomes DST;
//! - a directory onto an existing directory goes inside it (as DST/NAME), otherwise it
//!   becomes DST; `SRC/.` copies the directory's contents into DST.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock_client::{Client, Error};
use anyhow::bail;

use super::connect;
use super::transfer::local_tree::Filter;
use super::transfer::target::{Target, base_name, join};
use super::transfer::{download, upload};
use crate::args::CpArgs;
use crate::output::print_json;

pub async fn run(args: CpArgs) -> anyhow::Result<ExitCode> {
    let client = connect(&args.out.conn)?;
    let (summary, problems) = match (Target::parse(&args.src), Target::parse(&args.dst)) {
        (Target::Local(src), Target::Remote { id, path }) => {
            let done = up(&client, &args, &src, &id, &path).await?;
            let problems = done.problems.clone();
            (serde_json::to_value(done)?, problems)
        }
        (Target::Remote { id, path }, Target::Local(dst)) => {
            let done = down(&client, &args, &id, &path, &dst).await?;
            let problems = done.problems.clone();
            (serde_json::to_value(done)?, problems)
        }
        (Target::Local(_), Target::Local(_)) => {
            bail!("one side must be in a sandbox: ID:/path (use plain cp for local copies)")
        }
        (Target::Remote { .. }, Target::Remote { .. }) => {
            bail!("copying between sandboxes is not supported: copy to this machine, then on")
        }
    };
    if args.out.json {
        print_json(&summary)?;
    } else {
        for problem in &problems {
            eprintln!("airlock cp: {problem}");
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn up(
    client: &Client,
    args: &CpArgs,
    src: &str,
    id: &str,
    dst: &str,
) -> anyhow::Result<upload::Uploaded> {
    if !dst.starts_with('/') {
        bail!("{dst:?}: the sandbox path must be absolute");
    }
    let contents_only = src.ends_with("/.");
    let local = Path::new(src.strip_suffix("/.").unwrap_or(src));
    let meta = std::fs::metadata(local).map_err(|e| anyhow::anyhow!("{}: {e}", local.display()))?;
    let remote_kind = remote_kind(client, id, dst).await?;
    if meta.is_dir() {
        let dir = match (contents_only, remote_kind.as_deref()) {
            (true, _) | (false, None) => dst.to_owned(),
            (false, Some("dir")) => join(dst, &file_name(local)?),
            (false, Some(_)) => bail!("{dst} exists in the sandbox and is not a directory"),
        };
        let filter = Filter {
            excludes: args.exclude.clone(),
            gitignore: args.gitignore,
        };
        return upload::tree(client, id, local, &dir, &filter, args.archive, args.quiet).await;
    }
    let dest = match remote_kind.as_deref() {
        Some("dir") => join(dst, &file_name(local)?),
        None if dst.ends_with('/') => bail!("{dst} is not a directory in the sandbox"),
        _ => dst.to_owned(),
    };
    upload::file(client, id, local, &dest, args.archive, args.quiet).await
}

async fn down(
    client: &Client,
    args: &CpArgs,
    id: &str,
    src: &str,
    dst: &str,
) -> anyhow::Result<download::Downloaded> {
    let contents_only = src.ends_with("/.");
    let remote = src.strip_suffix("/.").unwrap_or(src);
    let entry = client.stat(id, remote).await?;
    let local = PathBuf::from(dst);
    let local_is_dir = local.is_dir();
    if entry.kind == "dir" {
        let into = if local_is_dir && !contents_only {
            local.join(base_name(remote))
        } else {
            local
        };
        if into.exists() && !into.is_dir() {
            bail!("{} exists and is not a directory", into.display());
        }
        return download::tree(client, id, remote, &into, args.quiet, None).await;
    }
    let dest = if local_is_dir {
        local.join(base_name(remote))
    } else if dst.ends_with('/') {
        bail!("{dst} is not a directory here")
    } else {
        local
    };
    download::file(
        client,
        id,
        remote,
        entry.size,
        &dest,
        args.archive,
        args.quiet,
    )
    .await
}

/// The kind of a sandbox path (`file`, `dir`, ...), or `None` if it does not exist.
async fn remote_kind(client: &Client, id: &str, path: &str) -> anyhow::Result<Option<String>> {
    match client.stat(id, path).await {
        Ok(entry) => Ok(Some(entry.kind)),
        Err(Error::Api { status: 404, .. }) => {
            // A missing sandbox is an error; a missing path is not.
            client.get(id).await?;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn file_name(local: &Path) -> anyhow::Result<String> {
    let absolute = std::fs::canonicalize(local)?;
    match absolute.file_name() {
        Some(name) => Ok(name.to_string_lossy().into_owned()),
        None => bail!("{} has no name to copy under", local.display()),
    }
}
