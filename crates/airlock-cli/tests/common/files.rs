//! A raw HTTP client for the file routes, and test data helpers.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Daemon;

/// A raw HTTP client for one sandbox's file routes.
pub struct Files {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Files {
    pub fn new(daemon: &Daemon, id: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("{}/v1/sandboxes/{id}/files", daemon.url),
            token: daemon.token.clone(),
        }
    }

    /// The same routes, called with another token.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = token.to_owned();
        self
    }

    pub fn url(&self, route: &str, query: &[(&str, &str)]) -> reqwest::Url {
        reqwest::Url::parse_with_params(&format!("{}{route}", self.base), query).unwrap()
    }

    pub async fn put(
        &self,
        path: &str,
        extra: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut query = vec![("path", path)];
        query.extend_from_slice(extra);
        self.send(reqwest::Method::PUT, "/content", &query, body)
            .await
    }

    /// Any route with a raw body; the status and the JSON answer.
    pub async fn send(
        &self,
        method: reqwest::Method,
        route: &str,
        query: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let response = self
            .http
            .request(method, self.url(route, query))
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// A listing of `path`, `depth` levels down: the status and the JSON answer.
    pub async fn list(&self, path: &str, depth: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::GET,
            "",
            &[("path", path), ("depth", depth)],
            None,
        )
        .await
    }

    /// A GET of any file route, its answer unread (archives, watches).
    pub async fn open(&self, route: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.url(route, query))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, range: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .get(self.url("/content", &[("path", path)]))
            .bearer_auth(&self.token);
        if let Some(range) = range {
            req = req.header("Range", range);
        }
        req.send().await.unwrap()
    }

    /// Signs a URL for `path` and `method`; the status and the URL (none when refused).
    pub async fn sign(&self, path: &str, method: &str) -> (u16, Option<String>) {
        let body = serde_json::json!({"path": path, "method": method});
        let (status, answer) = self
            .call(reqwest::Method::POST, "/signed-url", &[], Some(body))
            .await;
        (status, answer["url"].as_str().map(str::to_owned))
    }

    /// Writes `content` to `path` and reads it back whole, both over REST.
    pub async fn round_trip(&self, path: &str, content: &[u8]) {
        let (status, _) = self.put(path, &[], content.to_vec()).await;
        assert_eq!(status, 201, "PUT {path}");
        assert_eq!(self.bytes(path).await.len(), content.len(), "GET {path}");
    }

    pub async fn bytes(&self, path: &str) -> Vec<u8> {
        let response = self.get(path, None).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.bytes().await.unwrap().to_vec()
    }

    pub async fn delete(&self, path: &str, recursive: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::DELETE,
            "",
            &[("path", path), ("recursive", recursive)],
            None,
        )
        .await
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        route: &str,
        query: &[(&str, &str)],
        json: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(route, query))
            .bearer_auth(&self.token);
        if let Some(json) = json {
            req = req.json(&json);
        }
        let response = req.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

pub fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// CRC-64/NVME as the daemon reports it: 16 hex digits.
pub fn crc_hex(bytes: &[u8]) -> String {
    let mut hasher = airlock_fs::Hasher::new(&airlock_fs::Checks::default());
    hasher.update(bytes);
    hasher.finish().crc64nvme_hex()
}

pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub async fn sandbox_with(daemon: &Daemon, body: Value) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/sandboxes", daemon.url))
        .bearer_auth(&daemon.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A host directory holding a sentinel file `secret` ("host"), placed at an absolute path
/// that attacks name from inside a sandbox.
pub struct HostSentinel {
    pub dir: tempfile::TempDir,
    pub file: std::path::PathBuf,
    /// The directory's path as text.
    pub host: String,
}

impl HostSentinel {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("airlock-sentinel-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "host").unwrap();
        let host = dir.path().display().to_string();
        Self { dir, file, host }
    }

    /// The sentinel still says "host" and nothing new appeared beside it.
    pub fn assert_untouched(&self) {
        assert_eq!(std::fs::read_to_string(&self.file).unwrap(), "host");
        assert_eq!(std::fs::read_dir(self.dir.path()).unwrap().count(), 1);
    }
}
