//! create, ls, inspect, start, stop, rm.

use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;

use airlock_api::{CreateSandbox, FileMode, InjectedFile, Limits, Sandbox};
use anyhow::{Context, bail};
use base64::Engine as _;

use super::connect;
use crate::args::{CreateArgs, IdArgs, JsonFlag, RmArgs};
use crate::output::{key_values, print_json, print_table, size_mb};

/// Files given with --file travel inside the create request; bigger ones belong to `cp`.
const MAX_INLINE_FILE: u64 = 16 * 1024 * 1024;

pub async fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let client = connect(&args.out.conn)?;
    let files = args
        .files
        .iter()
        .map(|spec| inline_file(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let req = CreateSandbox {
        template: Some(args.template),
        env: key_values(&args.env, "--env")?,
        limits: Limits {
            memory_mb: args
                .memory
                .as_deref()
                .map(|m| size_mb(m, "--memory"))
                .transpose()?,
            pids: args.pids,
            cpus: args.cpus,
            disk_mb: args
                .disk
                .as_deref()
                .map(|d| size_mb(d, "--disk"))
                .transpose()?,
        },
        labels: key_values(&args.labels, "--label")?,
        // Uploads go in before anything runs; the sandbox starts after them.
        start: Some(!args.no_start && args.uploads.is_empty()),
        ttl_secs: args.ttl,
        files,
    };
    let mut sandbox = client.create(&req).await?;
    for spec in &args.uploads {
        if let Err(e) = upload_before_start(&client, &sandbox.id, spec).await {
            let _ = client.delete(&sandbox.id).await;
            return Err(e.context(format!("--upload {spec} (the sandbox was removed)")));
        }
    }
    if !args.uploads.is_empty() && !args.no_start {
        sandbox = client.start(&sandbox.id).await?;
    }
    if args.out.json {
        print_json(&sandbox)?;
    } else {
        println!("{}", sandbox.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// `SRC[:DST]`: a file or directory of any size, streamed in (directories as one tar
/// stream, into DST itself). DST defaults to `/workspace/NAME`.
async fn upload_before_start(
    client: &airlock_client::Client,
    id: &str,
    spec: &str,
) -> anyhow::Result<()> {
    use super::transfer::{local_tree::Filter, upload};
    let (src, dst) = match spec.rsplit_once(':') {
        Some((src, dst)) if dst.starts_with('/') => (src.to_owned(), dst.to_owned()),
        _ => {
            let name = std::fs::canonicalize(spec)
                .with_context(|| format!("{spec}: not found"))?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (spec.to_owned(), format!("/workspace/{name}"))
        }
    };
    let path = std::path::Path::new(&src);
    let meta = std::fs::metadata(path).with_context(|| format!("{src}: not found"))?;
    let done = if meta.is_dir() {
        upload::tree(client, id, path, &dst, &Filter::default(), true, false).await?
    } else {
        upload::file(client, id, path, &dst, true, false).await?
    };
    if let Some(problem) = done.problems.first() {
        bail!("{problem}");
    }
    Ok(())
}

/// Reads `SRC:DST[:ro]` into an injected file, keeping the local file's mode.
fn inline_file(spec: &str) -> anyhow::Result<InjectedFile> {
    let (rest, readonly) = match spec.strip_suffix(":ro") {
        Some(rest) => (rest, true),
        None => (spec, false),
    };
    let Some((src, dst)) = rest.rsplit_once(':') else {
        bail!("--file {spec:?} should look like SRC:DST or SRC:DST:ro");
    };
    let meta = std::fs::metadata(src).with_context(|| format!("--file {src}"))?;
    if !meta.is_file() {
        bail!("--file {src} is not a regular file (use `airlock cp` for directories)");
    }
    if meta.len() > MAX_INLINE_FILE {
        bail!("--file {src} is larger than 16 MiB; create with --no-start and copy it in instead");
    }
    let bytes = std::fs::read(src).with_context(|| format!("reading {src}"))?;
    Ok(InjectedFile {
        path: dst.to_owned(),
        content: None,
        content_b64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        mode: Some(FileMode(meta.permissions().mode() & 0o777)),
        readonly,
    })
}

pub async fn list(out: JsonFlag) -> anyhow::Result<ExitCode> {
    let sandboxes = connect(&out.conn)?.list().await?;
    if out.json {
        print_json(&sandboxes)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = sandboxes
        .iter()
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                s.id.clone(),
                s.template.clone(),
                state_name(s),
                s.created_at.clone(),
                labels.join(","),
            ]
        })
        .collect();
    print_table(&["ID", "TEMPLATE", "STATE", "CREATED", "LABELS"], &rows);
    Ok(ExitCode::SUCCESS)
}

fn state_name(sandbox: &Sandbox) -> String {
    serde_json::to_value(sandbox.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub async fn inspect(args: IdArgs) -> anyhow::Result<ExitCode> {
    print_json(&connect(&args.out.conn)?.get(&args.id).await?)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn start(args: IdArgs) -> anyhow::Result<ExitCode> {
    report(
        connect(&args.out.conn)?.start(&args.id).await?,
        args.out.json,
    )
}

pub async fn stop(args: IdArgs) -> anyhow::Result<ExitCode> {
    report(
        connect(&args.out.conn)?.stop(&args.id).await?,
        args.out.json,
    )
}

fn report(sandbox: Sandbox, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        print_json(&sandbox)?;
    } else {
        println!("{} {}", sandbox.id, state_name(&sandbox));
    }
    Ok(ExitCode::SUCCESS)
}

/// Deletes each id; goes on past failures and exits non-zero if any failed.
pub async fn remove(args: RmArgs) -> anyhow::Result<ExitCode> {
    let client = connect(&args.out.conn)?;
    let mut results = Vec::new();
    for id in &args.ids {
        let outcome = client.delete(id).await;
        match &outcome {
            Ok(()) if !args.out.json => println!("{id}"),
            Err(err) if !args.out.json => eprintln!("airlock: rm {id}: {err}"),
            _ => {}
        }
        results.push(serde_json::json!({"id": id, "deleted": outcome.is_ok(), "error": outcome.err().map(|e| e.to_string())}));
    }
    let failed = results.iter().any(|r| r["deleted"] == false);
    if args.out.json {
        print_json(&results)?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
