//! `airlock.v1.Tokens`: minting, listing and revoking tokens, and signing URLs.

use std::sync::Arc;

use airlock_api::{CreateSandboxToken, CreateToken, SignUrl};
use airlock_proto::v1 as pb;
use airlock_service::Service;
use tonic::{Request, Response, Status};

use super::caller;
use super::status::status;
use crate::origin::Origin;

pub struct TokensFace(pub Arc<Service>);

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::tokens_server::Tokens for TokensFace {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Answer<pb::CreateTokenResponse> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let req = CreateToken {
            name: req.name,
            tenant: req.tenant,
            ttl_secs: req.ttl_secs,
        };
        let made = self.0.create_token(&caller, req).map_err(status)?;
        Ok(Response::new(pb::CreateTokenResponse {
            id: made.id,
            token: made.token,
            name: made.name,
            tenant: made.tenant,
            expires_at: made.expires_at.unwrap_or_default(),
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Answer<pb::ListTokensResponse> {
        let caller = caller(&request)?;
        let tokens = self.0.list_tokens(&caller).map_err(status)?;
        let tokens = tokens.into_iter().map(|t| pb::TokenInfo {
            id: t.id,
            name: t.name,
            tenant: t.tenant,
            created_at: t.created_at,
            expires_at: t.expires_at.unwrap_or_default(),
        });
        Ok(Response::new(pb::ListTokensResponse {
            tokens: tokens.collect(),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Answer<pb::RevokeTokenResponse> {
        let caller = caller(&request)?;
        self.0
            .revoke_token(&caller, &request.get_ref().id)
            .map_err(status)?;
        Ok(Response::new(pb::RevokeTokenResponse {}))
    }

    async fn create_sandbox_token(
        &self,
        request: Request<pb::CreateSandboxTokenRequest>,
    ) -> Answer<pb::CreateSandboxTokenResponse> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let ask = CreateSandboxToken {
            access: req.access,
            ttl_secs: req.ttl_secs,
        };
        let made = self
            .0
            .create_sandbox_token(&caller, &req.sandbox_id, ask)
            .map_err(status)?;
        Ok(Response::new(pb::CreateSandboxTokenResponse {
            token: made.token,
            access: made.access,
            expires_at: made.expires_at.unwrap_or_default(),
        }))
    }

    async fn sign_url(&self, request: Request<pb::SignUrlRequest>) -> Answer<pb::SignUrlResponse> {
        let caller = caller(&request)?;
        let origin = request
            .extensions()
            .get::<Origin>()
            .map(|o| o.0.clone())
            .unwrap_or_default();
        let req = request.into_inner();
        let ask = SignUrl {
            path: req.path,
            method: Some(req.method).filter(|m| !m.is_empty()),
            ttl_secs: req.ttl_secs,
        };
        let signed = self
            .0
            .sign_url(&caller, &req.sandbox_id, ask)
            .map_err(status)?;
        Ok(Response::new(pb::SignUrlResponse {
            url: format!("{origin}{}", signed.url),
            method: signed.method,
            expires_at: signed.expires_at,
        }))
    }
}
