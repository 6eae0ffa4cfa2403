//! How a file's bytes are best sent to a socket on this machine: read into a buffer and
//! written out (the daemon's HTTP/2 downloads, but gRPC's of 1 MiB or more),
//! `sendfile(2)` (its HTTP/1 downloads and those gRPC ones), or `splice(2)` through a
//! pipe, each
//! moving a warm 1 GiB file over loopback TCP to a reader that discards it, alternating
//! run by run after an uncounted warm-up. Reports the time and the sending thread's CPU.
//!
//! This is the kernel's side of the daemon's choice of `sendfile` for HTTP/1 downloads.
//! On the Intel host this machine kind ran on before, the zero-copy calls took longer
//! than read + write and cost the sender more CPU; on the AMD host they take less than
//! half as long (the README's Files section). Kept in every run so a change of host shows.
//!
//! Usage: send_paths REPS OUT_PREFIX

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use airlock_bench::machine;
use airlock_bench::table::Table;

const GIB: u64 = 1 << 30;
/// The daemon's download chunk.
const CHUNK: usize = 256 * 1024;
/// The splice pipe's size: the default is 64 KiB; a larger one moves more per call.
const PIPE: usize = 512 * 1024;

#[derive(Clone, Copy)]
enum Way {
    ReadWrite,
    Sendfile,
    Splice,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::ReadWrite => "read + write, 256 KiB (the daemon's other HTTP/2 downloads)",
            Way::Sendfile => "sendfile (the daemon's HTTP/1 and large gRPC downloads)",
            Way::Splice => "splice through a 512 KiB pipe",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5);
    let out = args
        .next()
        .unwrap_or_else(|| "bench/results/send_paths".into());
    let work = std::path::PathBuf::from("/tmp/airlock-bench-send");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let source = work.join("file");
    {
        let mut file = File::create(&source)?;
        let block: Vec<u8> = (0..CHUNK).map(|i| (i * 7 % 251) as u8).collect();
        for _ in 0..GIB / CHUNK as u64 {
            file.write_all(&block)?;
        }
    }
    let mut t = Table::new("A warm 1 GiB file to a loopback socket, three ways");
    let ways = [Way::ReadWrite, Way::Sendfile, Way::Splice];
    for rep in 0..=reps {
        for way in ways {
            let (secs, cpu) = send(&source, way)?;
            if rep > 0 {
                t.record(way.name(), Some(GIB), None, secs);
                t.record(&format!("sender CPU: {}", way.name()), None, None, cpu);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    t.notes.push(format!(
        "Machine: {}. {reps} runs after a warm-up, alternating. The CPU rows are the sending \
         thread's CPU seconds (`CLOCK_THREAD_CPUTIME_ID`); the receiver reads \
         into a 1 MiB buffer on another thread.",
        machine()
    ));
    let md = t.markdown();
    print!("{md}");
    std::fs::write(format!("{out}.md"), &md)?;
    std::fs::write(format!("{out}.json"), serde_json::to_string_pretty(&t)?)?;
    Ok(())
}

/// Sends the whole file one way; the wall time and the sender's CPU seconds.
fn send(source: &std::path::Path, way: Way) -> anyhow::Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut socket = TcpStream::connect(address)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        loop {
            match socket.read(&mut buf)? {
                0 => return Ok(got),
                n => got += n as u64,
            }
        }
    });
    let (socket, _) = listener.accept()?;
    let file = File::open(source)?;
    let cpu_before = thread_cpu();
    let started = Instant::now();
    match way {
        Way::ReadWrite => read_write(&file, &socket)?,
        Way::Sendfile => sendfile(&file, &socket)?,
        Way::Splice => splice(&file, &socket)?,
    }
    drop(socket);
    let got = reader.join().expect("the reader panicked")?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = thread_cpu() - cpu_before;
    anyhow::ensure!(got == GIB, "{}: the reader got {got} bytes", way.name());
    Ok((secs, cpu))
}

fn read_write(mut file: &File, mut socket: &TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(()),
            n => socket.write_all(&buf[..n])?,
        }
    }
}

fn sendfile(file: &File, socket: &TcpStream) -> std::io::Result<()> {
    let mut offset = 0u64;
    while offset < GIB {
        let left = (GIB - offset).min(1 << 20) as usize;
        match rustix::fs::sendfile(socket, file, Some(&mut offset), left)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => continue,
        }
    }
    Ok(())
}

fn splice(file: &File, socket: &TcpStream) -> std::io::Result<()> {
    use rustix::pipe::SpliceFlags;
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // A refusal leaves the default size, which the row's name would then overstate.
    rustix::pipe::fcntl_setpipe_size(&write_end, PIPE)?;
    let mut offset = 0u64;
    while offset < GIB {
        let want = (GIB - offset).min(PIPE as u64) as usize;
        let mut n = rustix::pipe::splice(
            file,
            Some(&mut offset),
            &write_end,
            None,
            want,
            SpliceFlags::MOVE,
        )?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        while n > 0 {
            n -= rustix::pipe::splice(
                &read_end,
                None,
                socket,
                None,
                n,
                SpliceFlags::MOVE | SpliceFlags::MORE,
            )?;
        }
    }
    Ok(())
}

/// The calling thread's CPU seconds, user and system.
fn thread_cpu() -> f64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}
