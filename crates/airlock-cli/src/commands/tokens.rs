//! `airlock token create|ls|rm|sandbox` and `airlock sign`.

use std::process::ExitCode;

use super::connect;
use super::transfer::target::remote;
use crate::args::{SignArgs, TokenCommand};
use crate::output::{print_json, print_table};

pub async fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create {
            tenant,
            name,
            ttl,
            out,
        } => {
            let made = connect(&out.conn)?
                .create_token(&name, &tenant, ttl)
                .await?;
            if out.json {
                print_json(&made)?;
            } else {
                // The secret alone on stdout, for `export AIRLOCK_TOKEN=$(…)`.
                eprintln!("token {} for tenant {} (shown once):", made.id, made.tenant);
                println!("{}", made.token);
            }
        }
        TokenCommand::Ls(out) => {
            let tokens = connect(&out.conn)?.tokens().await?;
            if out.json {
                print_json(&tokens)?;
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.tenant.clone(),
                            t.name.clone(),
                            t.expires_at.clone().unwrap_or_else(|| "never".into()),
                        ]
                    })
                    .collect();
                print_table(&["ID", "TENANT", "NAME", "EXPIRES"], &rows);
            }
        }
        TokenCommand::Rm { id, out } => {
            connect(&out.conn)?.revoke_token(&id).await?;
            if out.json {
                print_json(&serde_json::json!({"id": id, "revoked": true}))?;
            } else {
                println!("{id}");
            }
        }
        TokenCommand::Sandbox {
            id,
            access,
            ttl,
            out,
        } => {
            let made = connect(&out.conn)?
                .create_sandbox_token(&id, &access, ttl)
                .await?;
            if out.json {
                print_json(&made)?;
            } else {
                eprintln!("{} token for sandbox {id} (shown once):", made.access);
                println!("{}", made.token);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a signed URL, alone on stdout so `curl "$(airlock sign …)"` works.
pub async fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let (id, path) = remote(&args.target)?;
    let method = if args.put { "PUT" } else { "GET" };
    let signed = connect(&args.out.conn)?
        .sign_url(&id, &path, method, Some(args.ttl))
        .await?;
    if args.out.json {
        print_json(&signed)?;
    } else {
        eprintln!("{method} until {}:", signed.expires_at);
        println!("{}", signed.url);
    }
    Ok(ExitCode::SUCCESS)
}
