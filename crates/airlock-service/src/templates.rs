//! Template registration and listing.

use airlock_api::Template;
use airlock_sandbox::{HOST_TEMPLATE, valid_template_name};

use super::{Service, blocking};
use crate::body::{BodyPump, ByteStream};
use crate::{ApiError, Principal};

impl Service {
    /// The built-in template and every registered one; a sandbox token sees none (it
    /// reaches its sandbox's files and nothing else).
    pub fn templates(&self, caller: &Principal) -> Result<Vec<Template>, ApiError> {
        caller.require_account("list templates")?;
        let host = Template {
            name: HOST_TEMPLATE.into(),
            kind: "host".into(),
            created_at: None,
        };
        let registered = self.templates.names().into_iter().map(|name| {
            let created_at = self
                .templates
                .rootfs(&name)
                .and_then(|p| std::fs::metadata(p).ok())
                .and_then(|m| m.modified().ok())
                .map(|t| humantime::format_rfc3339_seconds(t).to_string());
            Template {
                name,
                kind: "rootfs".into(),
                created_at,
            }
        });
        Ok(std::iter::once(host).chain(registered).collect())
    }

    /// Registers a root filesystem from a tar stream (read on a blocking thread).
    pub async fn register_template(
        &self,
        caller: &Principal,
        name: &str,
        archive: ByteStream,
    ) -> Result<Template, ApiError> {
        let audit = self.audit(caller, "template.register", None).target(name);
        let result = async {

        caller.require_admin("register templates")?;
        if name == HOST_TEMPLATE || !valid_template_name(name) {
            return Err(ApiError::bad_request(format!(
                "template name {name:?} is taken or malformed: use [a-z0-9._-], at most 64, not \"host\""
            )));
        }
        if self.templates.rootfs(name).is_some() {
            return Err(ApiError::conflict(format!(
                "template {name} exists; delete it first"
            )));
        }
        let store = self.templates.clone();
        let owned = name.to_owned();
        let (archive, pump) = BodyPump::new(archive);
        let registered = blocking(move || store.register(&owned, archive)).await;
        pump.finish().await;
        registered?.map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => ApiError::conflict(e.to_string()),
            _ => ApiError::new(
                airlock_api::ErrorCode::BadArchive,
                format!("unpacking template {name}: {}", error_chain(&e)),
            ),
        })?;
        self.templates(caller)?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ApiError::not_found(name.to_owned()))
        }
        .await;
        audit.done(result)
    }

    /// Removes a registered template that no sandbox uses.
    pub async fn delete_template(&self, caller: &Principal, name: &str) -> Result<(), ApiError> {
        let audit = self.audit(caller, "template.delete", None).target(name);
        let result = async {
            caller.require_admin("delete templates")?;
            if name == HOST_TEMPLATE || self.templates.rootfs(name).is_none() {
                return Err(ApiError::not_found(format!(
                    "no registered template {name:?}"
                )));
            }
            if self.entries().iter().any(|e| e.record().template == name) {
                return Err(ApiError::conflict(format!(
                    "template {name} is used by sandboxes; delete them first"
                )));
            }
            let store = self.templates.clone();
            let owned = name.to_owned();
            blocking(move || store.remove(&owned))
                .await?
                .map_err(|e| ApiError::internal("removing template", e))
        }
        .await;
        audit.done(result)
    }
}

/// An error and all its causes, since the tar crate's outer message hides the real one.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    text
}
