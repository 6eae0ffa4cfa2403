//! Who a bearer token is. The admin token lives in `HOME/token`; minted tokens live in
//! `HOME/tokens.json` (mode 0600) as records holding only the token's sha256, never the
//! token. A token is 256 random bits, shown once when it is made.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::ApiError;
use crate::principal::{Access, Principal};
use crate::record::{now_secs, random_hex};
#[cfg(test)]
use crate::secrets::HomeSecrets;
use crate::secrets::{SecretStore, write_private};
use crate::token::{self, Token};

/// Prefixes that tell the kinds apart (and let secret scanners find leaked ones).
const API_PREFIX: &str = "alk_";
const SANDBOX_PREFIX: &str = "als_";

/// One minted token, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Stable id, for listing and revoking.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The tenant it acts as.
    pub tenant: String,
    /// sha256 of the token, hex.
    hash: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; none: no expiry.
    pub expires_at: Option<u64>,
    /// Set for a sandbox token: the one sandbox and what it may do there.
    pub scope: Option<Scope>,
}

/// What a sandbox token reaches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scope {
    /// The sandbox.
    pub sandbox_id: String,
    /// Read or write.
    pub access: Access,
}

/// The admin token and every minted one.
pub struct Credentials {
    admin: Token,
    store: Arc<dyn SecretStore>,
    tokens: RwLock<Cached>,
    /// Serializes this daemon's changes to the store. Readers never wait on it: the
    /// records' lock is taken only to swap in what a change saved.
    changing: Mutex<()>,
    /// When the last reread after a miss began. Held (asynchronously) while a reread is
    /// under way, so the misses that arrive meanwhile share the next one.
    reread: tokio::sync::Mutex<Option<Instant>>,
}

/// The records as this daemon last read or wrote them.
struct Cached {
    records: Vec<TokenRecord>,
    /// Bumped by every change this daemon makes: a reread that began before a change
    /// may hold the store as it was before it, and must not undo it (a revoked token
    /// would be taken again).
    changes: u64,
}

/// The minted tokens' records, in the secret store.
const TOKENS: &str = "tokens.json";
/// Rereads after misses begin at most this often, however many bearers miss: a flood
/// of wrong tokens costs the store ten reads a second, and a token minted through
/// another daemon sharing the store holds here within this (plus one read) of its
/// first use.
const REREAD_SPACING: Duration = Duration::from_millis(100);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

impl Credentials {
    /// Loads (or makes) the admin token and the minted tokens of `home`.
    #[cfg(test)]
    pub fn open(home: &Path) -> io::Result<Self> {
        Self::open_in(Arc::new(HomeSecrets::new(home)), home)
    }

    /// Loads (or makes) the admin token and the minted tokens kept in `store`. The
    /// admin token is also written to `HOME/token` when it is not there, where tools on
    /// the daemon's machine (the CLI, the SDKs) look for it; the store stays the truth.
    pub fn open_in(store: Arc<dyn SecretStore>, home: &Path) -> io::Result<Self> {
        let admin = token::load_or_create(&*store, "token")?;
        let mirror = home.join("token");
        if !mirror.exists() {
            write_private(&mirror, admin.key())?;
        }
        let records = read_tokens(&*store)?;
        Ok(Self {
            admin,
            store,
            tokens: RwLock::new(Cached {
                records,
                changes: 0,
            }),
            changing: Mutex::new(()),
            reread: tokio::sync::Mutex::new(None),
        })
    }

    fn cached(&self) -> std::sync::RwLockReadGuard<'_, Cached> {
        self.tokens.read().unwrap_or_else(|p| p.into_inner())
    }

    fn cached_mut(&self) -> std::sync::RwLockWriteGuard<'_, Cached> {
        self.tokens.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the records again (others sharing the store may have changed them), off
    /// the runtime's threads: the store may be a cluster's API.
    pub async fn refresh(&self) -> io::Result<()> {
        let changes = self.cached().changes;
        let store = self.store.clone();
        let records = tokio::task::spawn_blocking(move || read_tokens(&*store))
            .await
            .map_err(io::Error::other)??;
        let mut cached = self.cached_mut();
        // A change made here meanwhile is newer than what was read.
        if cached.changes == changes {
            cached.records = records;
        }
        Ok(())
    }

    /// After a miss that happened at `missed`: waits for a reread that began after it
    /// (joining one under way, or starting one no sooner than [`REREAD_SPACING`] after
    /// the last); false when the store could not be read.
    async fn reread_since(&self, missed: Instant) -> bool {
        let mut last = self.reread.lock().await;
        if last.is_some_and(|began| began >= missed) {
            return true;
        }
        if let Some(began) = *last {
            tokio::time::sleep_until((began + REREAD_SPACING).into()).await;
        }
        let began = Instant::now();
        let read = self.refresh().await;
        *last = Some(began);
        read.is_ok()
    }

    /// The principal a presented token names. Unknown, revoked and expired tokens are
    /// all 401, with no hint of which.
    pub async fn resolve(&self, presented: &str) -> Result<Principal, ApiError> {
        if self.admin.matches(presented) {
            return Ok(Principal::Admin);
        }
        let known = || find(&self.cached().records, presented).cloned();
        let mut found = known();
        // Read after the look, so only a reread that began after it counts (and a hit,
        // the common case, reads no clock).
        if found.is_none() && self.reread_since(Instant::now()).await {
            found = known();
        }
        let Some(record) = found else {
            return Err(unauthorized("the token is not valid for this daemon"));
        };
        if record.expires_at.is_some_and(|at| at <= now_secs()) {
            return Err(unauthorized("the token has expired"));
        }
        Ok(match &record.scope {
            None => Principal::Tenant {
                tenant: record.tenant.clone(),
                by: format!("token {}", record.id),
            },
            Some(scope) => Principal::Sandbox {
                tenant: record.tenant.clone(),
                sandbox_id: scope.sandbox_id.clone(),
                access: scope.access,
                by: format!("sandbox token {}", record.id),
            },
        })
    }

    /// Mints a token; answers its record and the secret (shown once).
    pub fn mint(
        &self,
        name: String,
        tenant: String,
        ttl_secs: Option<u64>,
        scope: Option<Scope>,
    ) -> Result<(TokenRecord, String), ApiError> {
        let prefix = if scope.is_some() {
            SANDBOX_PREFIX
        } else {
            API_PREFIX
        };
        let secret = format!("{prefix}{}", random_hex::<32>());
        let now = now_secs();
        let record = TokenRecord {
            id: random_hex::<6>(),
            name,
            tenant,
            hash: hash(&secret),
            created_at: now,
            expires_at: ttl_secs.map(|ttl| now.saturating_add(ttl)),
            scope,
        };
        self.change(|tokens| tokens.push(record.clone()))?;
        Ok((record, secret))
    }

    /// Stores a sandbox token whose secret the daemon derives rather than draws (see
    /// `envd_tokens`); storing it again is a no-op.
    pub fn adopt(
        &self,
        name: String,
        tenant: String,
        scope: Scope,
        secret: &str,
    ) -> Result<(), ApiError> {
        let known = find(&self.cached().records, secret).is_some();
        if known {
            return Ok(());
        }
        let record = TokenRecord {
            id: random_hex::<6>(),
            name,
            tenant,
            hash: hash(secret),
            created_at: now_secs(),
            expires_at: None,
            scope: Some(scope),
        };
        self.change(|tokens| tokens.push(record.clone()))
    }

    /// Every API token (not sandbox tokens).
    pub fn api_tokens(&self) -> Vec<TokenRecord> {
        self.cached()
            .records
            .iter()
            .filter(|t| t.scope.is_none())
            .cloned()
            .collect()
    }

    /// Revokes a token at once; false when there was none with that id.
    pub fn revoke(&self, id: &str) -> Result<bool, ApiError> {
        let mut found = false;
        self.change(|tokens| {
            let before = tokens.len();
            tokens.retain(|t| t.id != id);
            found = tokens.len() != before;
        })?;
        Ok(found)
    }

    /// Forgets the tokens of a deleted sandbox (the file is rewritten only if it had
    /// any: most deletions touch no token).
    pub fn forget_sandbox(&self, sandbox_id: &str) {
        let scoped = |t: &TokenRecord| t.scope.as_ref().is_some_and(|s| s.sandbox_id == sandbox_id);
        let any = self.cached().records.iter().any(scoped);
        if !any {
            return;
        }
        let outcome = self.change(|tokens| tokens.retain(|t| !scoped(t)));
        if let Err(err) = outcome {
            tracing::warn!(%err, "forgetting a deleted sandbox's tokens");
        }
    }

    /// Changes the records and saves them; the change stands only if it was saved.
    /// The edit is made on what the store holds now, not on this daemon's copy, so a
    /// token another daemon minted meanwhile is kept. No lock readers take is held
    /// while the store is written (it may be a cluster's API, and slow).
    fn change(&self, mut edit: impl FnMut(&mut Vec<TokenRecord>)) -> Result<(), ApiError> {
        let _one_at_a_time = crate::save_lock::lock_for_save(&self.changing);
        let mut next = Vec::new();
        self.store
            .update(TOKENS, &mut |held| {
                next = parse_tokens(held)?;
                edit(&mut next);
                serde_json::to_vec_pretty(&next).map_err(io::Error::other)
            })
            .map_err(|e| ApiError::internal("saving tokens", e))?;
        let mut cached = self.cached_mut();
        cached.records = next;
        cached.changes += 1;
        Ok(())
    }
}

/// The record of a secret, found by its hash, compared in constant time.
fn find<'a>(tokens: &'a [TokenRecord], secret: &str) -> Option<&'a TokenRecord> {
    let hash = hash(secret);
    tokens
        .iter()
        .find(|t| bool::from(t.hash.as_bytes().ct_eq(hash.as_bytes())))
}

fn hash(token: &str) -> String {
    airlock_fs::hex(&sha2::Sha256::digest(token.as_bytes()))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(airlock_api::ErrorCode::Unauthorized, message)
}

fn parse_tokens(held: Option<&[u8]>) -> io::Result<Vec<TokenRecord>> {
    match held {
        Some(bytes) => serde_json::from_slice(bytes).map_err(io::Error::other),
        None => Ok(Vec::new()),
    }
}

fn read_tokens(store: &dyn SecretStore) -> io::Result<Vec<TokenRecord>> {
    parse_tokens(store.load(TOKENS)?.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretChange;

    #[tokio::test]
    async fn tokens_are_stored_as_hashes_and_resolve_to_their_principal() {
        let home = tempfile::tempdir().unwrap();
        let creds = Credentials::open(home.path()).unwrap();
        let (record, secret) = creds
            .mint("ci".into(), "team-a".into(), None, None)
            .unwrap();
        assert!(secret.starts_with(API_PREFIX) && secret.len() == 4 + 64);
        let stored = std::fs::read_to_string(home.path().join("tokens.json")).unwrap();
        assert!(
            !stored.contains(&secret[4..]),
            "the secret itself was stored"
        );
        assert_eq!(
            creds.resolve(&secret).await.unwrap(),
            Principal::Tenant {
                tenant: "team-a".into(),
                by: format!("token {}", record.id),
            }
        );
        // Kept across a restart; revoked at once.
        let again = Credentials::open(home.path()).unwrap();
        assert!(again.resolve(&secret).await.is_ok());
        assert!(again.revoke(&record.id).unwrap());
        assert!(again.resolve(&secret).await.is_err());
        assert!(again.resolve("").await.is_err() && again.resolve("alk_").await.is_err());
    }

    #[tokio::test]
    async fn expired_tokens_are_refused() {
        let home = tempfile::tempdir().unwrap();
        let creds = Credentials::open(home.path()).unwrap();
        let (_, secret) = creds.mint("x".into(), "t".into(), Some(0), None).unwrap();
        let refused = creds.resolve(&secret).await.unwrap_err();
        assert_eq!(refused.code, airlock_api::ErrorCode::Unauthorized);
    }

    #[tokio::test]
    async fn daemons_sharing_a_store_see_each_others_tokens_and_lose_none() {
        let home = tempfile::tempdir().unwrap();
        let store: Arc<dyn SecretStore> = Arc::new(HomeSecrets::new(home.path()));
        let a = Credentials::open_in(store.clone(), home.path()).unwrap();
        let b = Credentials::open_in(store, home.path()).unwrap();
        assert!(
            a.resolve(&std::fs::read_to_string(home.path().join("token")).unwrap())
                .await
                .is_ok()
        );
        let (_, from_a) = a.mint("one".into(), "team".into(), None, None).unwrap();
        // b has not read the store since; the miss makes it look again.
        assert!(matches!(
            b.resolve(&from_a).await,
            Ok(Principal::Tenant { .. })
        ));
        // b mints on what the store holds, so a's token survives b's write.
        let (_, from_b) = b.mint("two".into(), "team".into(), None, None).unwrap();
        a.refresh().await.unwrap();
        assert!(a.resolve(&from_a).await.is_ok() && a.resolve(&from_b).await.is_ok());
        assert_eq!(b.api_tokens().len(), 2);
    }

    /// A store whose reads, once armed, take what is stored and then wait to be let go:
    /// a reread caught between reading and installing.
    #[derive(Debug)]
    struct GatedStore {
        inner: HomeSecrets,
        armed: std::sync::atomic::AtomicBool,
        caught: std::sync::mpsc::SyncSender<()>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl SecretStore for GatedStore {
        fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
            let read = self.inner.load(name);
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                self.caught.send(()).unwrap();
                self.release.lock().unwrap().recv().unwrap();
            }
            read
        }
        fn update(&self, name: &str, change: &mut SecretChange<'_>) -> io::Result<Vec<u8>> {
            self.inner.update(name, change)
        }
    }

    fn gated_store(
        home: &Path,
    ) -> (
        Arc<GatedStore>,
        std::sync::mpsc::Receiver<()>,
        std::sync::mpsc::SyncSender<()>,
    ) {
        let (caught, on_caught) = std::sync::mpsc::sync_channel(1);
        let (let_go, release) = std::sync::mpsc::sync_channel(1);
        let store = Arc::new(GatedStore {
            inner: HomeSecrets::new(home),
            armed: false.into(),
            caught,
            release: Mutex::new(release),
            reads: 0.into(),
        });
        (store, on_caught, let_go)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reread_that_began_before_a_revoke_does_not_bring_the_token_back() {
        let home = tempfile::tempdir().unwrap();
        let (store, caught, let_go) = gated_store(home.path());
        let creds = Arc::new(Credentials::open_in(store.clone(), home.path()).unwrap());
        let (record, secret) = creds.mint("ci".into(), "t".into(), None, None).unwrap();
        store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
        let rereading = tokio::spawn({
            let creds = creds.clone();
            async move { creds.refresh().await.unwrap() }
        });
        // The reread holds the records with the token; the revoke lands; then it ends.
        tokio::task::spawn_blocking(move || caught.recv().unwrap())
            .await
            .unwrap();
        assert!(creds.revoke(&record.id).unwrap());
        let_go.send(()).unwrap();
        rereading.await.unwrap();
        assert!(
            creds.resolve(&secret).await.is_err(),
            "the revoked token holds again"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_minted_elsewhere_holds_at_once_through_a_flood_of_wrong_ones() {
        let home = tempfile::tempdir().unwrap();
        let (store, _caught, _let_go) = gated_store(home.path());
        let here = Arc::new(Credentials::open_in(store.clone(), home.path()).unwrap());
        let elsewhere =
            Credentials::open_in(Arc::new(HomeSecrets::new(home.path())), home.path()).unwrap();
        let started = Instant::now();
        let flood: Vec<_> = (0..8)
            .map(|n| {
                let here = here.clone();
                tokio::spawn(async move {
                    while started.elapsed() < Duration::from_secs(1) {
                        assert!(here.resolve(&format!("alk_wrong{n}")).await.is_err());
                    }
                })
            })
            .collect();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let (_, secret) = elsewhere.mint("ci".into(), "t".into(), None, None).unwrap();
            assert!(
                here.resolve(&secret).await.is_ok(),
                "a new token was refused"
            );
        }
        for task in flood {
            task.await.unwrap();
        }
        // The misses shared their rereads: about one per spacing, not one per miss.
        let reads = store.reads.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            reads <= 1 + 2 * (1000 / REREAD_SPACING.as_millis() as usize),
            "{reads} reads"
        );
    }
}
