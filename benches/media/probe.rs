//! Latency probe for `benches/media/run.sh`: publishes an FLV file over RTMP in real time (as
//! `ffmpeg -re -stream_loop -1` does), notes when each keyframe left, and watches the server's
//! playlist file to note when each segment was listed. A segment is closed by the keyframe that
//! starts the next one, so its latency is `listed(segment n) − sent(keyframe n+1)`.
//!
//! ```text
//! bench-probe <rtmp://host:port/live/key> <file.flv> <playlist path> <seconds>
//! ```
//! Prints one line: `latency_ms median=<m> p90=<p> n=<count> durations=<d,...>`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use media::flv::{self, TagKind};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, file, playlist, seconds] = args.as_slice() else {
        return Err("usage: bench-probe <rtmp url> <file.flv> <playlist path> <seconds>".into());
    };
    let seconds: u64 = seconds.parse()?;
    let (addr, app, key) = parse_url(url)?;
    let tags = flv::read_file(&std::fs::read(file)?)?;

    let listed = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let durations = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (listed, durations, stop) = (listed.clone(), durations.clone(), stop.clone());
        let path = PathBuf::from(playlist);
        std::thread::spawn(move || watch(&path, &listed, &durations, &stop))
    };

    let mut socket = TcpStream::connect(&addr)?;
    socket.set_nodelay(true)?;
    let mut session = connect(&mut socket, &app, &key)?;
    let mut reader = socket.try_clone()?;
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while matches!(reader.read(&mut buffer), Ok(n) if n > 0) {}
    });

    let mut sent_keyframes = Vec::new();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let loop_length = tags.last().map_or(0, |t| t.timestamp) + 33;
    let mut round = 0u32;
    'publish: loop {
        for tag in &tags {
            let ts = tag.timestamp + round * loop_length;
            let due = start + Duration::from_millis(u64::from(ts));
            if due > deadline {
                break 'publish;
            }
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let body = bytes::Bytes::from(tag.body.clone());
            let result = match tag.kind {
                TagKind::Video => session.publish_video_data(body, RtmpTimestamp::new(ts), false),
                TagKind::Audio => session.publish_audio_data(body, RtmpTimestamp::new(ts), false),
                TagKind::Script => continue,
            }?;
            if let ClientSessionResult::OutboundResponse(packet) = result {
                socket.write_all(&packet.bytes)?;
            }
            if tag.is_keyframe() {
                sent_keyframes.push(Instant::now());
            }
        }
        round += 1;
    }
    // Let the last segments be listed, then stop watching.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.join();
    let _ = socket.shutdown(std::net::Shutdown::Both);

    let listed = listed.lock().map_err(|_| "poisoned")?.clone();
    // Segment n is closed by keyframe n+1.
    let mut latencies: Vec<f64> = listed
        .iter()
        .enumerate()
        .filter_map(|(n, at)| {
            let sent = sent_keyframes.get(n + 1)?;
            Some(at.checked_duration_since(*sent).map_or_else(
                || -(sent.duration_since(*at).as_secs_f64() * 1000.0),
                |d| d.as_secs_f64() * 1000.0,
            ))
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let durations = durations.lock().map_err(|_| "poisoned")?.join(",");
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "latency_ms median={:.1} p90={:.1} n={} durations={durations}",
        pick(0.5),
        pick(0.9),
        latencies.len()
    )?;
    Ok(())
}

fn parse_url(url: &str) -> Result<(String, String, String), Error> {
    let rest = url.strip_prefix("rtmp://").ok_or("not an rtmp:// URL")?;
    let mut parts = rest.splitn(3, '/');
    let addr = parts.next().ok_or("no host")?.to_owned();
    let app = parts.next().ok_or("no app")?.to_owned();
    let key = parts.next().ok_or("no key")?.to_owned();
    Ok((addr, app, key))
}

fn send(
    socket: &mut TcpStream,
    results: Vec<ClientSessionResult>,
) -> Result<Vec<ClientSessionEvent>, Error> {
    let mut events = Vec::new();
    for result in results {
        match result {
            ClientSessionResult::OutboundResponse(packet) => socket.write_all(&packet.bytes)?,
            ClientSessionResult::RaisedEvent(event) => events.push(event),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
    Ok(events)
}

/// Handshake, connect and publish; returns the session ready to send media.
fn connect(socket: &mut TcpStream, app: &str, key: &str) -> Result<ClientSession, Error> {
    let mut handshake = Handshake::new(PeerType::Client);
    socket.write_all(&handshake.generate_outbound_p0_and_p1()?)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let remaining = loop {
        let n = socket.read(&mut buffer)?;
        if n == 0 {
            return Err("server closed during the handshake".into());
        }
        match handshake.process_bytes(&buffer[..n])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes)?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes)?;
                break remaining_bytes;
            }
        }
    };
    let (mut session, results) = ClientSession::new(ClientSessionConfig::new())?;
    send(socket, results)?;
    let mut pending = send(socket, session.handle_input(&remaining)?)?;
    send(socket, vec![session.request_connection(app.to_owned())?])?;
    let mut connected = false;
    loop {
        for event in pending.drain(..) {
            match event {
                ClientSessionEvent::ConnectionRequestAccepted => {
                    connected = true;
                    let publish =
                        session.request_publishing(key.to_owned(), PublishRequestType::Live)?;
                    send(socket, vec![publish])?;
                }
                ClientSessionEvent::PublishRequestAccepted if connected => return Ok(session),
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    return Err(format!("refused: {description}").into());
                }
                _ => {}
            }
        }
        let n = socket.read(&mut buffer)?;
        if n == 0 {
            return Err("server closed before publishing started".into());
        }
        pending = send(socket, session.handle_input(&buffer[..n])?)?;
    }
}

/// Polls the playlist every millisecond and notes when each new segment first appears.
fn watch(
    path: &std::path::Path,
    listed: &Mutex<Vec<Instant>>,
    durations: &Mutex<Vec<String>>,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut seen = HashSet::new();
    let mut last: Option<(SystemTime, u64)> = None;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(meta) = std::fs::metadata(path) {
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            if last != Some(stamp) {
                last = Some(stamp);
                let now = Instant::now();
                if let Ok(text) = std::fs::read_to_string(path) {
                    let mut duration = None;
                    for line in text.lines() {
                        if let Some(d) = line.strip_prefix("#EXTINF:") {
                            duration = Some(d.trim_end_matches(',').to_owned());
                        } else if !line.starts_with('#')
                            && !line.is_empty()
                            && seen.insert(line.to_owned())
                        {
                            if let Ok(mut l) = listed.lock() {
                                l.push(now);
                            }
                            if let (Ok(mut d), Some(v)) = (durations.lock(), duration.take()) {
                                d.push(v);
                            }
                        }
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
