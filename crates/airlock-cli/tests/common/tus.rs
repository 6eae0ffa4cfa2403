//! A tus 1.0 client over raw HTTP, to test the protocol as clients speak it.

use base64::Engine as _;

use super::Daemon;
use super::files::Files;

/// Creates an upload of `length` bytes to `path` in `f`'s sandbox with `f`'s token: its
/// location, or the status that refused it.
pub async fn create_at(f: &Files, path: &str, length: usize) -> Result<String, u16> {
    let uploads = format!("{}/uploads", f.base.trim_end_matches("/files"));
    let created = f
        .http
        .post(&uploads)
        .bearer_auth(&f.token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", format!("path {}", b64(path)))
        .send()
        .await
        .unwrap();
    if created.status() != 201 {
        return Err(created.status().as_u16());
    }
    Ok(created.headers()["location"].to_str().unwrap().to_owned())
}

/// A tus client for one sandbox, over raw HTTP.
pub struct Tus {
    pub http: reqwest::Client,
    pub daemon_url: String,
    pub id: String,
    pub token: String,
}

pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

impl Tus {
    pub fn new(daemon: &Daemon, id: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            daemon_url: daemon.url.clone(),
            id: id.to_owned(),
            token: daemon.token.clone(),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.daemon_url))
            .bearer_auth(&self.token)
            .header("Tus-Resumable", "1.0.0")
    }

    /// Creates an upload; returns its URL path.
    pub async fn create(&self, length: u64, metadata: &[(&str, &str)]) -> String {
        let metadata: Vec<String> = metadata
            .iter()
            .map(|(k, v)| format!("{k} {}", b64(v)))
            .collect();
        let response = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/sandboxes/{}/uploads", self.id),
            )
            .header("Upload-Length", length.to_string())
            .header("Upload-Metadata", metadata.join(","))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["tus-resumable"], "1.0.0");
        assert_eq!(response.headers()["upload-offset"], "0");
        response.headers()["location"].to_str().unwrap().to_owned()
    }

    pub async fn offset(&self, location: &str) -> Option<u64> {
        let response = self
            .request(reqwest::Method::HEAD, location)
            .send()
            .await
            .unwrap();
        if response.status() == 404 {
            return None;
        }
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        Some(
            response.headers()["upload-offset"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap(),
        )
    }

    pub async fn patch(
        &self,
        location: &str,
        offset: u64,
        chunk: &[u8],
        checksum: Option<String>,
    ) -> reqwest::Response {
        let mut request = self
            .request(reqwest::Method::PATCH, location)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string());
        if let Some(checksum) = checksum {
            request = request.header("Upload-Checksum", checksum);
        }
        request.body(chunk.to_vec()).send().await.unwrap()
    }
}

/// How many bytes the sandbox's partial upload file holds (0 when there is none yet):
/// the daemon's side of an upload in flight, which HEAD may not report yet.
pub fn partial_size(daemon: &Daemon, id: &str) -> u64 {
    let workspace = daemon
        .home()
        .join(format!("sandboxes/{id}/data/root/workspace"));
    std::fs::read_dir(&workspace)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".airlock-upload-")
        })
        .and_then(|e| e.metadata().ok())
        .map_or(0, |m| m.len())
}
