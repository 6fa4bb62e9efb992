//! `rtmp-abuse`: what an attacker sends to an RTMP port, for benches and manual checks. Each
//! mode prints one summary line (`key=value` pairs) when it ends.
//!
//! ```sh
//! cargo run -p media --example rtmp-abuse -- idle --addr 127.0.0.1:1935 --count 256 --seconds 30 --cycle
//! cargo run -p media --example rtmp-abuse -- big-message --count 64 --seconds 10
//! cargo run -p media --example rtmp-abuse -- nested-amf
//! cargo run -p media --example rtmp-abuse -- short-command --key KEY --flv video.flv
//! ```
//!
//! Modes:
//! - `idle`: `--count` sockets (256) that connect and send nothing, held for `--seconds` (30);
//!   with `--cycle`, a socket the server closes is opened again at once.
//! - `big-message`: `--count` connections (64) that handshake, announce a chunk size of 2^31
//!   and a 16 MiB message, send 64 KiB of it and hold on for `--seconds` (10).
//! - `nested-amf`: one connection that handshakes, sets a chunk size of 65536 and sends a
//!   ~250 KB `connect` of 50,000 nested strict arrays (`--depth`).
//! - `short-command`: publishes with `--key` (`--app`, default `live`), sends the tags of the
//!   FLV file `--flv` in real time for `--seconds` (5) so the stream goes live, then a command
//!   of a single AMF string.
//!
//! Every mode takes `--addr` (127.0.0.1:1935). The summary counts connections `opened`,
//! `closed_by_server` (within `--seconds`, or 10 s for `nested-amf` and `short-command`) and
//! `failed` (could not connect or handshake).

// A command-line tool: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod rtmp_client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rtmp_client::{CSID_AUDIO, CSID_STREAM_COMMAND, CSID_VIDEO, RawClient};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

#[derive(Debug)]
struct Args {
    mode: String,
    addr: SocketAddr,
    count: usize,
    seconds: u64,
    cycle: bool,
    depth: usize,
    key: String,
    app: String,
    flv: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mode = args
        .next()
        .ok_or("usage: rtmp-abuse MODE [flags] (see the source header)")?;
    let mut parsed = Args {
        count: if mode == "big-message" { 64 } else { 256 },
        seconds: match mode.as_str() {
            "idle" => 30,
            "short-command" => 5,
            _ => 10,
        },
        mode,
        addr: SocketAddr::from(([127, 0, 0, 1], 1935)),
        cycle: false,
        depth: 50_000,
        key: String::new(),
        app: "live".to_owned(),
        flv: None,
    };
    while let Some(flag) = args.next() {
        if flag == "--cycle" {
            parsed.cycle = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--addr" => parsed.addr = value.parse().map_err(|e| bad(&e))?,
            "--count" => parsed.count = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => parsed.seconds = value.parse().map_err(|e| bad(&e))?,
            "--depth" => parsed.depth = value.parse().map_err(|e| bad(&e))?,
            "--key" => parsed.key = value,
            "--app" => parsed.app = value,
            "--flv" => parsed.flv = Some(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(parsed)
}

#[derive(Debug, Default)]
struct Counts {
    opened: AtomicU64,
    closed_by_server: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    fn print(&self, mode: &str) {
        println!(
            "mode={mode} opened={} closed_by_server={} failed={}",
            self.opened.load(Ordering::Relaxed),
            self.closed_by_server.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed)
        );
    }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("rtmp-abuse: {e}");
            std::process::exit(2);
        }
    };
    let counts = Arc::new(Counts::default());
    let result = match args.mode.as_str() {
        "idle" => idle(&args, &counts).await,
        "big-message" => big_message(&args, &counts).await,
        "nested-amf" => nested_amf(&args, &counts).await,
        "short-command" => short_command(&args, &counts).await,
        other => Err(format!("unknown mode {other}")),
    };
    counts.print(&args.mode);
    if let Err(e) = result {
        eprintln!("rtmp-abuse: {e}");
        std::process::exit(1);
    }
}

/// Holds one socket until `deadline`; `true` if the server closed it first.
async fn hold(mut client: RawClient, deadline: Instant) -> bool {
    let mut buffer = [0u8; 4096];
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return false,
            read = client.socket.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            },
        }
    }
}

async fn idle(args: &Args, counts: &Arc<Counts>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.count {
        let (addr, cycle, counts) = (args.addr, args.cycle, Arc::clone(counts));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let Ok(client) = RawClient::connect(addr).await else {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                counts.opened.fetch_add(1, Ordering::Relaxed);
                if hold(client, deadline).await {
                    counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
                }
                if !cycle {
                    break;
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

async fn big_message(args: &Args, counts: &Arc<Counts>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.count {
        let (addr, counts) = (args.addr, Arc::clone(counts));
        tasks.push(tokio::spawn(async move {
            let Ok(mut client) = RawClient::handshaken(addr).await else {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            counts.opened.fetch_add(1, Ordering::Relaxed);
            let mut bytes = rtmp_client::set_chunk_size(1 << 31);
            bytes.extend(rtmp_client::header(
                rtmp_client::CSID_COMMAND,
                0,
                16 * 1024 * 1024 - 1,
                20,
                0,
            ));
            bytes.extend(std::iter::repeat_n(0u8, 64 * 1024));
            let _ = client.send(&bytes).await;
            if hold(client, deadline).await {
                counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

async fn nested_amf(args: &Args, counts: &Counts) -> Result<(), String> {
    let mut client = RawClient::handshaken(args.addr)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    counts.opened.fetch_add(1, Ordering::Relaxed);
    client
        .set_chunk_size(65_536)
        .await
        .map_err(|e| e.to_string())?;
    let body = rtmp_client::nested_arrays(args.depth);
    let _ = client
        .message(rtmp_client::CSID_COMMAND, 20, 0, 0, &body)
        .await;
    if client.closed_within(Duration::from_secs(10)).await {
        counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

async fn short_command(args: &Args, counts: &Counts) -> Result<(), String> {
    let path = args.flv.as_deref().ok_or("--flv FILE is needed")?;
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let tags = media::flv::read_file(&bytes).map_err(|e| format!("{path}: {e}"))?;
    let mut client = RawClient::handshaken(args.addr)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    counts.opened.fetch_add(1, Ordering::Relaxed);
    client
        .publish(&args.app, &args.key)
        .await
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let until = Duration::from_secs(args.seconds);
    for tag in tags {
        let (csid, type_id) = match tag.kind {
            media::flv::TagKind::Video => (CSID_VIDEO, 9),
            media::flv::TagKind::Audio => (CSID_AUDIO, 8),
            media::flv::TagKind::Script => continue,
        };
        let at = Duration::from_millis(u64::from(tag.timestamp));
        if at > until {
            break;
        }
        tokio::time::sleep_until(start + at).await;
        client.drain().await;
        client
            .message(csid, type_id, 1, tag.timestamp, &tag.body)
            .await
            .map_err(|e| format!("sending media: {e}"))?;
    }
    let single = rtmp_client::command(&[rtmp_client::Amf::String("x")]);
    let _ = client.message(CSID_STREAM_COMMAND, 20, 1, 0, &single).await;
    if client.closed_within(Duration::from_secs(10)).await {
        counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
