//! The daemon's `GET /metrics`, as tests read it: the exposition, and one sample's value.
#![allow(dead_code, clippy::unwrap_used)]

/// The exposition as `token` (or no one) asks for it: the status and the text.
pub async fn scrape(daemon: &super::Daemon, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{}/metrics", daemon.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The exposition, as the admin reads it.
pub async fn text(daemon: &super::Daemon) -> String {
    let (status, text) = scrape(daemon, Some(&daemon.token)).await;
    assert_eq!(status, 200, "GET /metrics: {text}");
    text
}

/// The value of the sample in `text` whose line starts with `prefix`.
pub fn value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no sample {prefix} in\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The value of one sample now.
pub async fn sample(daemon: &super::Daemon, prefix: &str) -> f64 {
    value(&text(daemon).await, prefix)
}

/// The bytes a face (`rest` or `grpc`) has sent straight from files (`sendfile`).
pub async fn sent_from_file(daemon: &super::Daemon, face: &str) -> f64 {
    sample(
        daemon,
        &format!("airlock_sendfile_bytes_total{{face=\"{face}\"}}"),
    )
    .await
}
