//! `airlock.v1.Exec.Run`: a command with stdin streamed in and raw output streamed out.

use std::pin::Pin;
use std::sync::Arc;

use airlock_api::ExecRequest;
use airlock_proto::v1 as pb;
use airlock_proto::v1::run_request::Payload as In;
use airlock_proto::v1::run_response::Payload as Out;
use airlock_service::{ProcessEvent, Service};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::caller;
use super::status::{invalid, status};

/// Stdin chunks queued toward the command.
const STDIN_QUEUE: usize = 8;

pub struct ExecFace(pub Arc<Service>);

type Events = Pin<Box<dyn Stream<Item = Result<pb::RunResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::exec_server::Exec for ExecFace {
    type RunStream = Events;

    async fn run(
        &self,
        request: Request<Streaming<pb::RunRequest>>,
    ) -> Result<Response<Events>, Status> {
        let caller = caller(&request)?;
        let mut incoming = request.into_inner();
        let start = match incoming.message().await? {
            Some(pb::RunRequest {
                payload: Some(In::Start(start)),
            }) => start,
            _ => return Err(invalid("the first message of Run must be `start`")),
        };
        let sandbox_id = start.sandbox_id.clone();
        let req = exec_request(start);
        let (tx, rx) = tokio::sync::mpsc::channel(STDIN_QUEUE);
        tokio::spawn(async move {
            while let Ok(Some(message)) = incoming.message().await {
                let sent = match message.payload {
                    Some(In::Stdin(chunk)) => tx.send(Ok(chunk)).await.is_ok(),
                    Some(In::CloseStdin(true)) => false,
                    _ => true,
                };
                if !sent {
                    return;
                }
            }
        });
        let stdin = Some(airlock_service::byte_stream(ReceiverStream::new(rx)));
        let events = self
            .0
            .exec_stream(&caller, &sandbox_id, req, stdin)
            .await
            .map_err(status)?;
        let out = ReceiverStream::new(events).map(run_response);
        Ok(Response::new(Box::pin(out)))
    }
}

/// One event of a command as the wire carries it; a failure to follow it ends the stream
/// with INTERNAL.
pub fn run_response(event: ProcessEvent) -> Result<pb::RunResponse, Status> {
    let payload = match event {
        ProcessEvent::Start { pid } => Out::Started(pb::ProcessStarted { pid }),
        ProcessEvent::Stdout(bytes) => Out::Stdout(bytes),
        ProcessEvent::Stderr(bytes) => Out::Stderr(bytes),
        ProcessEvent::Exit {
            exit_code,
            timed_out,
        } => Out::Exit(pb::ExecExit {
            exit_code,
            timed_out,
        }),
        ProcessEvent::Error { message } => {
            return Err(status(airlock_service::ApiError::internal(
                "following the command",
                message,
            )));
        }
    };
    Ok(pb::RunResponse {
        payload: Some(payload),
    })
}

/// The command an `ExecStart` names, as the service takes it.
pub fn exec_request(start: pb::ExecStart) -> ExecRequest {
    ExecRequest {
        cmd: (!start.cmd.is_empty()).then_some(start.cmd),
        shell: start.shell,
        env: start.env.into_iter().collect(),
        cwd: start.cwd,
        stdin: None,
        stdin_b64: None,
        timeout_ms: start.timeout_ms,
    }
}
