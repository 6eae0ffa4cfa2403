//! `airlock template ls|add|rm`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::connect;
use crate::args::TemplateCommand;
use crate::output::{print_json, print_table};

pub async fn run(command: TemplateCommand) -> anyhow::Result<ExitCode> {
    match command {
        TemplateCommand::Ls(out) => {
            let templates = connect(&out.conn)?.templates().await?;
            if out.json {
                print_json(&templates)?;
            } else {
                let rows: Vec<Vec<String>> = templates
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.kind.clone(),
                            t.created_at.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "KIND", "CREATED"], &rows);
            }
        }
        TemplateCommand::Add { name, path, out } => {
            let client = connect(&out.conn)?;
            let template = client
                .register_template(&name, tar_body(&path).await?)
                .await?;
            if out.json {
                print_json(&template)?;
            } else {
                println!("{}", template.name);
            }
        }
        TemplateCommand::Rm { name, out } => {
            connect(&out.conn)?.delete_template(&name).await?;
            if out.json {
                print_json(&serde_json::json!({"name": name, "deleted": true}))?;
            } else {
                println!("{name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A tar file is sent as it is; a directory is packed on a thread and streamed as it is
/// packed (symlinks kept as symlinks), never held in memory whole.
async fn tar_body(path: &Path) -> anyhow::Result<airlock_client::Body> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if !meta.is_dir() {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("{}", path.display()))?;
        return Ok(airlock_client::Body::wrap_stream(
            tokio_util::io::ReaderStream::new(file),
        ));
    }
    let (writer, reader) = tokio::io::duplex(256 * 1024);
    let source = path.to_owned();
    // The packing thread writes into the async pipe through this runtime's handle.
    let runtime = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let sink = tokio_util::io::SyncIoBridge::new_with_handle(writer, runtime);
        let mut builder = tar::Builder::new(sink);
        builder.follow_symlinks(false);
        if let Err(err) = builder
            .append_dir_all(".", &source)
            .and_then(|()| builder.finish())
        {
            eprintln!("airlock: packing {}: {err}", source.display());
        }
    });
    Ok(airlock_client::Body::wrap_stream(
        tokio_util::io::ReaderStream::new(reader),
    ))
}
