//! `airlock.v1.Sandboxes`: the lifecycle over gRPC.

use std::sync::Arc;

use airlock_proto::v1 as pb;
use airlock_service::Service;
use tonic::{Request, Response, Status};

use super::status::status;
use super::{caller, convert};

pub struct SandboxesFace(pub Arc<Service>);

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::sandboxes_server::Sandboxes for SandboxesFace {
    async fn create(&self, request: Request<pb::CreateSandboxRequest>) -> Answer<pb::Sandbox> {
        let caller = caller(&request)?;
        let req = convert::create_request(request.into_inner());
        let made = self.0.create(&caller, req).await.map_err(status)?;
        Ok(Response::new(convert::sandbox(made)))
    }

    async fn get(&self, request: Request<pb::GetSandboxRequest>) -> Answer<pb::Sandbox> {
        let caller = caller(&request)?;
        let found = self.0.get(&caller, &request.get_ref().sandbox_id);
        Ok(Response::new(convert::sandbox(found.map_err(status)?)))
    }

    async fn list(
        &self,
        request: Request<pb::ListSandboxesRequest>,
    ) -> Answer<pb::ListSandboxesResponse> {
        let caller = caller(&request)?;
        let sandboxes = self
            .0
            .list(&caller)
            .map_err(status)?
            .into_iter()
            .map(convert::sandbox);
        Ok(Response::new(pb::ListSandboxesResponse {
            sandboxes: sandboxes.collect(),
        }))
    }

    async fn start(&self, request: Request<pb::GetSandboxRequest>) -> Answer<pb::Sandbox> {
        let caller = caller(&request)?;
        let started = self.0.start(&caller, &request.get_ref().sandbox_id).await;
        Ok(Response::new(convert::sandbox(started.map_err(status)?)))
    }

    async fn stop(&self, request: Request<pb::GetSandboxRequest>) -> Answer<pb::Sandbox> {
        let caller = caller(&request)?;
        let stopped = self.0.stop(&caller, &request.get_ref().sandbox_id).await;
        Ok(Response::new(convert::sandbox(stopped.map_err(status)?)))
    }

    async fn delete(
        &self,
        request: Request<pb::GetSandboxRequest>,
    ) -> Answer<pb::DeleteSandboxResponse> {
        let caller = caller(&request)?;
        let id = &request.get_ref().sandbox_id;
        self.0.delete(&caller, id).await.map_err(status)?;
        Ok(Response::new(pb::DeleteSandboxResponse {}))
    }
}
