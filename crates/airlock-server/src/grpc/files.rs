//! `airlock.v1.Files`: the small operations here; uploads, downloads and batches in
//! their own modules.

use std::pin::Pin;
use std::sync::Arc;

use airlock_api::{ComposeFiles, FileMode};
use airlock_proto::v1 as pb;
use airlock_service::{ListFiles, Service};
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::status::status;
use super::{batch, caller, convert, download, upload};

pub struct FilesFace(pub Arc<Service>);

type Answer<T> = Result<Response<T>, Status>;
type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::files_server::Files for FilesFace {
    // The two calls that carry files never reach tonic: the router serves their paths by
    // hand (`upload::serve`, `download::serve`), so that no chunk is copied. Should that
    // routing ever break, they fail here, loudly, in every test that moves a file.
    async fn upload_file(
        &self,
        _: Request<Streaming<pb::UploadFileRequest>>,
    ) -> Answer<pb::UploadFileResponse> {
        Err(not_routed(upload::PATH))
    }

    type DownloadFileStream = ServerStream<pb::DownloadFileResponse>;

    async fn download_file(
        &self,
        _: Request<pb::DownloadFileRequest>,
    ) -> Answer<Self::DownloadFileStream> {
        Err(not_routed(download::PATH))
    }

    async fn create_upload(
        &self,
        request: Request<pb::CreateUploadRequest>,
    ) -> Answer<pb::UploadStatus> {
        let caller = caller(&request)?;
        let made = upload::create_upload(&self.0, &caller, request.into_inner()).await?;
        Ok(Response::new(made))
    }

    async fn get_upload(&self, request: Request<pb::GetUploadRequest>) -> Answer<pb::UploadStatus> {
        let caller = caller(&request)?;
        let r = request.get_ref();
        let record = self
            .0
            .upload_status(&caller, &r.sandbox_id, &r.upload_id)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::upload(
            airlock_service::UploadState { record, done: None },
        )))
    }

    async fn cancel_upload(
        &self,
        request: Request<pb::GetUploadRequest>,
    ) -> Answer<pb::CancelUploadResponse> {
        let caller = caller(&request)?;
        let r = request.get_ref();
        self.0
            .terminate_upload(&caller, &r.sandbox_id, &r.upload_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CancelUploadResponse {}))
    }

    async fn stat(&self, request: Request<pb::StatRequest>) -> Answer<pb::FileEntry> {
        let caller = caller(&request)?;
        let r = request.get_ref();
        let entry = self.0.stat_file(&caller, &r.sandbox_id, &r.path).await;
        Ok(Response::new(convert::entry(entry.map_err(status)?)))
    }

    async fn list_dir(&self, request: Request<pb::ListDirRequest>) -> Answer<pb::ListDirResponse> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let req = ListFiles {
            path: r.path,
            depth: r.depth,
            limit: r.page_size.map(|n| n as usize),
            cursor: (!r.page_token.is_empty()).then_some(r.page_token),
            checksum: Some(r.checksum),
        };
        let page = self
            .0
            .list_files(&caller, &r.sandbox_id, req)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListDirResponse {
            entries: page.entries.into_iter().map(convert::entry).collect(),
            next_page_token: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn make_dir(&self, request: Request<pb::MakeDirRequest>) -> Answer<pb::FileEntry> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let made = self
            .0
            .make_dir(
                &caller,
                &r.sandbox_id,
                &r.path,
                r.mode.map(FileMode),
                r.parents,
            )
            .await;
        Ok(Response::new(convert::entry(made.map_err(status)?)))
    }

    async fn r#move(&self, request: Request<pb::MoveRequest>) -> Answer<pb::FileEntry> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let moved = self
            .0
            .move_file(
                &caller,
                &r.sandbox_id,
                &r.source,
                &r.destination,
                r.overwrite,
            )
            .await;
        Ok(Response::new(convert::entry(moved.map_err(status)?)))
    }

    async fn remove(&self, request: Request<pb::RemoveRequest>) -> Answer<pb::RemoveResponse> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.0
            .remove_file(&caller, &r.sandbox_id, &r.path, Some(r.recursive))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RemoveResponse {}))
    }

    async fn compose(&self, request: Request<pb::ComposeRequest>) -> Answer<pb::WriteResult> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let req = ComposeFiles {
            sources: r.sources,
            destination: r.destination,
            mode: r.mode.map(FileMode),
            overwrite: r.overwrite,
        };
        let made = self.0.compose_files(&caller, &r.sandbox_id, req).await;
        Ok(Response::new(convert::written(made.map_err(status)?)))
    }

    async fn write_files(
        &self,
        request: Request<Streaming<pb::WriteFilesRequest>>,
    ) -> Answer<pb::WriteFilesResponse> {
        let caller = caller(&request)?;
        let answer = batch::write_files(&self.0, &caller, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    type WatchStream = ServerStream<pb::WatchEvent>;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Answer<Self::WatchStream> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let events = self
            .0
            .watch(&caller, &r.sandbox_id, &r.path, Some(r.recursive))
            .await
            .map_err(status)?;
        Ok(Response::new(Box::pin(
            events.map(|e| Ok(convert::watch_event(e))),
        )))
    }
}

/// A hand-served call that came to tonic's generated server instead.
fn not_routed(path: &str) -> Status {
    Status::internal(format!(
        "{path} is served by hand; the router sent it to tonic"
    ))
}
