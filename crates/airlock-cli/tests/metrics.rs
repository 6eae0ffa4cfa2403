//! `GET /metrics`: the admin's view of both faces and the service, in the OpenMetrics
//! text format, with bounded labels (route templates and RPC names, never raw paths).
#![allow(clippy::unwrap_used)]

mod common;

use common::metrics::{scrape, value};
use common::{Daemon, grpc};

#[tokio::test]
async fn metrics_count_both_faces_and_the_service() {
    let daemon = Daemon::start();
    let client = daemon.client();
    let id = common::sandbox(&client).await.id;
    let http = reqwest::Client::new();
    let content = vec![7u8; 1 << 20];
    common::files::Files::new(&daemon, &id)
        .round_trip("/workspace/m.bin", &content)
        .await;
    common::sh(&client, &id, "true").await;
    for n in 0..20 {
        http.get(format!("{}/no/such/route/{n}", daemon.url))
            .send()
            .await
            .unwrap();
    }
    let mut files = grpc::files(&daemon).await;
    let missing = files
        .stat(airlock_proto::v1::StatRequest {
            sandbox_id: id.clone(),
            path: "/workspace/none".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let (_, body) = grpc::download(&mut files, grpc::get(&id, "/workspace/m.bin"))
        .await
        .unwrap();
    assert_eq!(body.len(), content.len());

    // A streamed call cut short: a watch the client drops after its first event.
    let mut watch = files
        .watch(airlock_proto::v1::WatchRequest {
            sandbox_id: id.clone(),
            path: "/workspace".into(),
            recursive: false,
        })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap();
    drop(watch);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Only the admin reads them.
    assert_eq!(scrape(&daemon, None).await.0, 401);
    let tenant = client
        .create_token("t", "team-a", None)
        .await
        .unwrap()
        .token;
    assert_eq!(scrape(&daemon, Some(&tenant)).await.0, 403);
    let (status, text) = scrape(&daemon, Some(&daemon.token)).await;
    assert_eq!(status, 200);

    let route = "/v1/sandboxes/{id}/files/content";
    let rest = |status: &str| {
        format!(r#"airlock_requests_total{{face="rest",route="{route}",status="{status}"}}"#)
    };
    assert_eq!(value(&text, &rest("201")), 1.0);
    assert_eq!(value(&text, &rest("200")), 1.0);
    assert_eq!(
        value(
            &text,
            r#"airlock_requests_total{face="rest",route="unmatched",status="404"}"#
        ),
        20.0
    );
    assert!(
        !text.contains("/no/such/route"),
        "a raw path became a label"
    );
    assert_eq!(
        value(
            &text,
            r#"airlock_requests_total{face="grpc",route="/airlock.v1.Files/Stat",status="5"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"airlock_requests_total{face="grpc",route="/airlock.v1.Files/DownloadFile",status="0"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"airlock_requests_total{face="grpc",route="/airlock.v1.Files/Watch",status="1"}"#
        ),
        1.0
    );
    assert!(value(&text, r#"airlock_received_bytes_total{face="rest"}"#) >= content.len() as f64);
    assert!(value(&text, r#"airlock_sent_bytes_total{face="rest"}"#) >= content.len() as f64);
    assert!(value(&text, r#"airlock_sent_bytes_total{face="grpc"}"#) >= content.len() as f64);
    // REST's download of the MiB went from the file over HTTP/1; gRPC's did once it was
    // bound to its stream (`h2_script`: the chunks before that are read).
    let from_file = |face: &str| {
        value(
            &text,
            &format!(r#"airlock_sendfile_bytes_total{{face="{face}"}}"#),
        )
    };
    assert_eq!(from_file("rest"), content.len() as f64);
    let grpc_from_file = from_file("grpc");
    assert!(
        grpc_from_file > 0.0 && grpc_from_file <= content.len() as f64,
        "{grpc_from_file}"
    );
    assert!(value(&text, "airlock_execs_total") >= 1.0);
    assert!(value(&text, "airlock_uploads_total") >= 1.0);
    assert_eq!(value(&text, r#"airlock_sandboxes{state="running"}"#), 1.0);
    assert_eq!(value(&text, "airlock_transfers_in_flight"), 0.0);
    assert!(
        value(
            &text,
            &format!(r#"airlock_request_duration_seconds_count{{face="rest",route="{route}"}}"#)
        ) >= 2.0
    );
    assert!(text.trim_end().ends_with("# EOF"));
}
