//! The spliced download against servers that answer as told, over real sockets: what it
//! takes, what it leaves to reqwest, and how it fails.

use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

use super::*;

/// A server on loopback that serves `answers` in turn, on as few connections as the
/// client uses; answers how many connections it accepted.
fn server(answers: Vec<Vec<u8>>) -> (Client, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = Client::new(
        format!("http://{}", listener.local_addr().unwrap()),
        "t0ken",
    );
    let serving = std::thread::spawn(move || {
        let mut answers = answers.into_iter().peekable();
        let mut connections = 0;
        while answers.peek().is_some() {
            let (stream, _) = listener.accept().unwrap();
            connections += 1;
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while answers.peek().is_some() {
                if !read_head(&mut reader) {
                    break;
                }
                (&stream).write_all(&answers.next().unwrap()).unwrap();
            }
        }
        connections
    });
    (client, serving)
}

/// Reads one request's head; false at the end of the connection.
fn read_head(reader: &mut impl BufRead) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        if line == "\r\n" {
            return true;
        }
    }
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-airlock-mode: 640\r\nx-airlock-mtime: 2026-12-06T00:00:00Z\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn url(client: &Client) -> Url {
    Url::parse(&format!(
        "{}/v1/sandboxes/s/files/content?path=%2Ff",
        client.base_url()
    ))
    .unwrap()
}

/// The spliced download of `/f` into `file`, with no progress callback; `None` where it
/// was left to reqwest.
async fn download(client: &Client, file: std::fs::File) -> Result<Option<Download>, Error> {
    let taken = read_to_file(client, &url(client), file, &mut |_| {}).await?;
    Ok(taken.ok())
}

fn contents(mut file: std::fs::File) -> Vec<u8> {
    let mut back = Vec::new();
    file.rewind().unwrap();
    file.read_to_end(&mut back).unwrap();
    back
}

#[tokio::test]
async fn a_body_lands_whole_and_the_connection_serves_the_next_download() {
    let (big, small) = (body((3 << 20) + 5), body(10));
    let (client, serving) = server(vec![ok(&big), ok(&small), ok(b"")]);
    for want in [&big, &small, &Vec::new()] {
        let file = tempfile::tempfile().unwrap();
        let mut seen = 0;
        let got = read_to_file(
            &client,
            &url(&client),
            file.try_clone().unwrap(),
            &mut |n| seen += n,
        )
        .await
        .unwrap()
        .unwrap_or_else(|_| panic!("taken, not left to reqwest"));
        assert_eq!((got.size, got.mode), (want.len() as u64, Some(0o640)));
        assert_eq!(got.mtime.as_deref(), Some("2026-12-06T00:00:00Z"));
        assert_eq!(seen, want.len(), "every byte told to the progress callback");
        assert!(
            contents(file) == *want,
            "the file holds the body, nothing else"
        );
    }
    assert_eq!(
        serving.join().unwrap(),
        1,
        "three downloads, one connection"
    );
}

#[tokio::test]
async fn a_file_opened_to_append_is_written_without_splice() {
    let data = body((2 << 20) + 3);
    let (client, _serving) = server(vec![ok(&data)]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    std::fs::write(&path, b"kept:").unwrap();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let got = download(&client, file).await.unwrap().unwrap();
    assert_eq!(got.size, data.len() as u64);
    let back = std::fs::read(&path).unwrap();
    assert!(back[..5] == *b"kept:" && back[5..] == data[..]);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_not_a_shorter_file() {
    let mut answer = ok(&body(1 << 20));
    answer.truncate(answer.len() - 100);
    let (client, _serving) = server(vec![answer]);
    let error = download(&client, tempfile::tempfile().unwrap())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("100 bytes before the file's end"),
        "{error}"
    );
}

#[tokio::test]
async fn an_error_answer_is_the_daemons_error() {
    let json = br#"{"error":{"code":"not_found","message":"no such file"}}"#;
    let mut answer = format!(
        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        json.len()
    )
    .into_bytes();
    answer.extend_from_slice(json);
    let (client, _serving) = server(vec![answer]);
    let file = tempfile::tempfile().unwrap();
    let error = download(&client, file.try_clone().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Api { status: 404, code: airlock_api::ErrorCode::NotFound, message } if message == "no such file"),
        "{error:?}"
    );
    assert!(contents(file).is_empty());
}

#[tokio::test]
async fn answers_framed_otherwise_are_left_to_reqwest_untouched() {
    let chunked =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec();
    let two_lengths =
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd".to_vec();
    let partial = b"HTTP/1.1 206 Partial Content\r\ncontent-length: 3\r\n\r\nabc".to_vec();
    for answer in [chunked, two_lengths, partial] {
        let (client, _serving) = server(vec![answer]);
        let file = tempfile::tempfile().unwrap();
        let got = download(&client, file.try_clone().unwrap()).await.unwrap();
        assert!(got.is_none(), "left to reqwest");
        assert!(contents(file).is_empty(), "and nothing written");
    }
}

#[tokio::test]
async fn only_plain_http_without_a_proxy_goes_direct() {
    let base = Url::parse("http://127.0.0.1:9/v1/x?path=%2Fa").unwrap();
    assert!(Target::get(&base, "t").is_some());
    let tls = Url::parse("https://127.0.0.1:9/v1/x").unwrap();
    assert!(Target::get(&tls, "t").is_none());
    let credentials = Url::parse("http://u:p@127.0.0.1:9/v1/x").unwrap();
    assert!(Target::get(&credentials, "t").is_none());
    // A token that would end the header and start another is never written raw.
    assert!(Target::get(&base, "t\r\nx-admin: yes").is_none());
}

#[tokio::test]
async fn a_download_dropped_half_way_closes_its_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = Client::new(format!("http://{}", listener.local_addr().unwrap()), "t");
    let serving = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        assert!(read_head(&mut reader));
        // Promise a GiB, send a MiB, then time how long the client takes to hang up.
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n";
        (&stream).write_all(head).unwrap();
        (&stream).write_all(&body(1 << 20)).unwrap();
        let sent = std::time::Instant::now();
        let _ = reader.read_to_end(&mut Vec::new());
        sent.elapsed()
    });
    let download = download(&client, tempfile::tempfile().unwrap());
    let cut = tokio::time::timeout(std::time::Duration::from_millis(500), download).await;
    assert!(cut.is_err(), "still waiting for the rest");
    // Left to itself, the thread would wait out the 60 s idle timeout before it let go.
    let ended = serving.join().unwrap();
    assert!(
        ended < std::time::Duration::from_secs(10),
        "the connection ended {ended:?} after the rest stopped coming"
    );
}
