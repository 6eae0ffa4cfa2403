//! `airlock.v1.Processes`: processes that outlive the call that started them.

use std::pin::Pin;
use std::sync::Arc;

use airlock_api::TerminalSize;
use airlock_proto::v1 as pb;
use airlock_proto::v1::process_selector::Selector as Which;
use airlock_service::{Selector, Service, StartOptions, bytes_body};
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::caller;
use super::exec::{exec_request, run_response};
use super::status::{invalid, status};

pub struct ProcessesFace(pub Arc<Service>);

type Events = Pin<Box<dyn Stream<Item = Result<pb::RunResponse, Status>> + Send>>;
type Answer<T> = Result<Response<T>, Status>;

/// The process a selector names; it must name one.
fn selector(which: Option<pb::ProcessSelector>) -> Result<Selector, Status> {
    match which.and_then(|w| w.selector) {
        Some(Which::Pid(pid)) => Ok(Selector::Pid(pid)),
        Some(Which::Tag(tag)) => Ok(Selector::Tag(tag)),
        None => Err(invalid("name the process: `process.pid` or `process.tag`")),
    }
}

#[tonic::async_trait]
impl pb::processes_server::Processes for ProcessesFace {
    type StartStream = Events;
    type AttachStream = Events;

    async fn start(&self, request: Request<pb::StartProcessRequest>) -> Answer<Events> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let start = req
            .start
            .ok_or_else(|| invalid("`start` names the command"))?;
        let sandbox_id = start.sandbox_id.clone();
        let mut exec = exec_request(start);
        if !req.stdin.is_empty() {
            exec.stdin_b64 = Some(airlock_api::exec::b64(&req.stdin));
        }
        let options = StartOptions {
            tag: req.tag,
            keep_stdin: req.keep_stdin,
            terminal: req.terminal.map(terminal_size),
        };
        let (_, events) = self
            .0
            .start_process(&caller, &sandbox_id, exec, options)
            .await
            .map_err(status)?;
        Ok(Response::new(Box::pin(events.map(run_response))))
    }

    async fn list(
        &self,
        request: Request<pb::ListProcessesRequest>,
    ) -> Answer<pb::ListProcessesResponse> {
        let caller = caller(&request)?;
        let all = self
            .0
            .processes(&caller, &request.get_ref().sandbox_id)
            .map_err(status)?;
        let processes = all.into_iter().map(|p| pb::ProcessInfo {
            pid: p.pid,
            tag: p.tag,
            cmd: p.cmd,
            cwd: p.cwd,
            running: p.running,
            exit_code: p.exit_code,
            started_at: p.started_at,
            terminal: p.terminal.map(|t| pb::TerminalSize {
                cols: t.cols.into(),
                rows: t.rows.into(),
            }),
        });
        Ok(Response::new(pb::ListProcessesResponse {
            processes: processes.collect(),
        }))
    }

    async fn attach(&self, request: Request<pb::AttachProcessRequest>) -> Answer<Events> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let which = selector(req.process)?;
        let events = self
            .0
            .connect_process(&caller, &req.sandbox_id, &which, req.replay)
            .map_err(status)?;
        Ok(Response::new(Box::pin(events.map(run_response))))
    }

    async fn send_input(
        &self,
        request: Request<pb::SendInputRequest>,
    ) -> Answer<pb::SendInputResponse> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let which = selector(req.process)?;
        self.0
            .send_input(
                &caller,
                &req.sandbox_id,
                &which,
                bytes_body(req.data),
                req.close,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SendInputResponse {}))
    }

    async fn send_signal(
        &self,
        request: Request<pb::SendSignalRequest>,
    ) -> Answer<pb::SendSignalResponse> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let which = selector(req.process)?;
        self.0
            .signal_process(&caller, &req.sandbox_id, &which, &req.signal)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SendSignalResponse {}))
    }

    async fn resize(&self, request: Request<pb::ResizeRequest>) -> Answer<pb::ResizeResponse> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let which = selector(req.process)?;
        let size = req
            .size
            .map(terminal_size)
            .ok_or_else(|| invalid("`size` gives the terminal's columns and rows"))?;
        self.0
            .resize_terminal(&caller, &req.sandbox_id, &which, size)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ResizeResponse {}))
    }
}

/// A size off the wire; a side too large for any terminal stays too large, for the
/// service to refuse.
fn terminal_size(size: pb::TerminalSize) -> TerminalSize {
    let side = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
    TerminalSize {
        cols: side(size.cols),
        rows: side(size.rows),
    }
}
