//! The OpenAPI document against the router, both ways: every path the router declares is
//! in the document; every documented method of every documented path reaches a handler;
//! and no method the document leaves out does (405 or the router's own "no route").
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::Daemon;
use common::files::sandbox_with;
use common::tus::Tus;
use serde_json::{Value, json};

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "options", "head"];

/// Paths the router declares, read from the REST face's source: `.route("...")` calls.
fn declared_paths() -> BTreeSet<String> {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../airlock-server/src/rest/mod.rs"
    ))
    .unwrap();
    source
        .split(".route(")
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"'))
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_document_and_the_router_agree_both_ways() {
    let daemon = Daemon::start();
    let http = reqwest::Client::new();
    // Served without a token.
    let doc: Value = http
        .get(format!("{}/v1/openapi.json", daemon.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    let declared = declared_paths();
    assert!(declared.len() > 15, "{declared:?}");
    assert_eq!(
        declared, documented,
        "routes in the router (left) and paths in the document (right) differ"
    );

    let id = sandbox_with(&daemon, json!({})).await;
    let doomed = sandbox_with(&daemon, json!({})).await;
    let upload = Tus::new(&daemon, &id)
        .create(5, &[("path", "/workspace/up")])
        .await;
    let upload = upload.rsplit('/').next().unwrap().to_owned();
    let mut checked = 0;
    for (path, item) in paths {
        for method in METHODS {
            let documented = item.get(method).is_some();
            // A GET route answers HEAD too; the document need not say so.
            if method == "head" && item.get("get").is_some() {
                continue;
            }
            let sandbox = if method == "delete" && path == "/v1/sandboxes/{id}" {
                &doomed
            } else {
                &id
            };
            let url = format!(
                "{}{}",
                daemon.url,
                path.replace("{id}", sandbox)
                    .replace("{upload}", &upload)
                    .replace("{name}", "no-such-template")
                    .replace("{token}", "no-such-token")
            );
            let response = http
                .request(method.to_uppercase().parse().unwrap(), url)
                .bearer_auth(&daemon.token)
                .header("Tus-Resumable", "1.0.0")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            let routed = status != 405 && !(status == 404 && body.contains("no route"));
            assert_eq!(
                routed,
                documented,
                "{} {path}: the document says {}, the router answered {status} {body}",
                method.to_uppercase(),
                if documented { "routed" } else { "not routed" }
            );
            checked += 1;
        }
    }
    eprintln!(
        "openapi: {} paths, {checked} (method, path) pairs checked against the router",
        paths.len()
    );
}
