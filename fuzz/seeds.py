#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from real inputs.

  fuzz/seeds.py             # needs ffmpeg, cargo; starts the media example ingest itself

rtmp_session: what ffmpeg sends when it publishes (captured by a relay in front of the media
core's example ingest server), cut after the publish, after the first media and after a
second, plus an OBS-like session built from the same media (librtmp's order: chunk size 4096
first, releaseStream, FCPublish, createStream, publish, @setDataFrame with an ECMA array,
audio and video on their own chunk streams with compressed headers, a window acknowledgement
size). flv_tags: the tag bodies of ffmpeg-written FLV (H.264 + AAC), each behind its kind
byte, and a short FLV file. ws_client_message: the messages the web app sends. hls_writer:
muxer output in media::fuzzing::hls_writer's step encoding (a 30 fps stream with 2 s GOPs, a
takeover, an audio-only session, timestamps going backwards, the end).

  fuzz/seeds.py --hls       # only the hls_writer seeds (no ffmpeg, no build)
"""

import os
import sys
import socket
import struct
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def relay(listen_port, target_port, captured, done):
    """Accepts one client, forwards both ways, records what the client sent."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(1)
    client, _ = server.accept()
    upstream = socket.create_connection(("127.0.0.1", target_port))

    def pump(src, dst, record):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if record:
                captured.extend(data)
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    t = threading.Thread(target=pump, args=(upstream, client, False), daemon=True)
    t.start()
    pump(client, upstream, True)
    done.set()


def capture_ffmpeg(ingest_port, args, seconds):
    port = free_port()
    captured = bytearray()
    done = threading.Event()
    threading.Thread(
        target=relay, args=(port, ingest_port, captured, done), daemon=True
    ).start()
    time.sleep(0.2)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re"]
        + args
        + ["-t", str(seconds), "-f", "flv", f"rtmp://127.0.0.1:{port}/live/seed-key"],
        check=True,
    )
    done.wait(10)
    return bytes(captured)


LAVFI_VIDEO = ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=15"]
LAVFI_AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p", "-b:v", "100k"]
AAC = ["-c:a", "aac", "-b:a", "32k"]


def flv_file(args, seconds):
    with tempfile.NamedTemporaryFile(suffix=".flv") as f:
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
            + args
            + ["-t", str(seconds), "-f", "flv", f.name],
            check=True,
        )
        return open(f.name, "rb").read()


def flv_tags(data):
    """(type, timestamp, body) of each tag of an FLV file."""
    at = struct.unpack(">I", data[5:9])[0] + 4
    while at + 11 <= len(data):
        kind = data[at] & 0x1F
        size = int.from_bytes(data[at + 1 : at + 4], "big")
        ts = int.from_bytes(data[at + 4 : at + 7], "big") | (data[at + 7] << 24)
        yield kind, ts, data[at + 11 : at + 11 + size]
        at += 11 + size + 4


# --- AMF0 and chunks, for the OBS-like session ------------------------------------------

def amf_string(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def amf_number(n):
    return b"\x00" + struct.pack(">d", n)


def amf_props(props):
    out = b""
    for k, v in props:
        out += struct.pack(">H", len(k)) + k.encode() + v
    return out + b"\x00\x00\x09"


def amf_object(props):
    return b"\x03" + amf_props(props)


def amf_ecma(props):
    return b"\x08" + struct.pack(">I", len(props)) + amf_props(props)


AMF_NULL = b"\x05"


def chunks(csid, type_id, stream, ts, body, size, fmt=0, delta=0):
    """A message as chunks: the given header format first, type 3 continuations."""
    if fmt == 0:
        head = bytes([csid]) + ts.to_bytes(3, "big") + len(body).to_bytes(3, "big")
        head += bytes([type_id]) + struct.pack("<I", stream)
    elif fmt == 1:
        head = bytes([0x40 | csid]) + delta.to_bytes(3, "big") + len(body).to_bytes(3, "big")
        head += bytes([type_id])
    else:
        head = bytes([0x80 | csid]) + delta.to_bytes(3, "big")
    out = bytearray(head)
    for i in range(0, max(len(body), 1), size):
        if i:
            out.append(0xC0 | csid)
        out += body[i : i + size]
    return bytes(out)


def obs_like(tags):
    out = bytearray(b"\x03" + bytes(1536) + bytes(1536))
    out += chunks(2, 1, 0, 0, struct.pack(">I", 4096), 128)
    size = 4096
    connect = amf_string("connect") + amf_number(1) + amf_object([
        ("app", amf_string("live")),
        ("type", amf_string("nonprivate")),
        ("flashVer", amf_string("FMLE/3.0 (compatible; FMSc/1.0)")),
        ("swfUrl", amf_string("rtmp://localhost/live")),
        ("tcUrl", amf_string("rtmp://localhost/live")),
    ])
    out += chunks(3, 20, 0, 0, connect, size)
    out += chunks(2, 5, 0, 0, struct.pack(">I", 2500000), size)
    for i, name in enumerate(["releaseStream", "FCPublish"]):
        body = amf_string(name) + amf_number(2 + i) + AMF_NULL + amf_string("seed-key")
        out += chunks(3, 20, 0, 0, body, size)
    out += chunks(3, 20, 0, 0, amf_string("createStream") + amf_number(4) + AMF_NULL, size)
    publish = amf_string("publish") + amf_number(5) + AMF_NULL + amf_string("seed-key")
    publish += amf_string("live")
    out += chunks(4, 20, 1, 0, publish, size)
    meta = amf_string("@setDataFrame") + amf_string("onMetaData") + amf_ecma([
        ("width", amf_number(160)),
        ("height", amf_number(90)),
        ("videocodecid", amf_number(7)),
        ("audiocodecid", amf_number(10)),
        ("encoder", amf_string("obs-output module (libobs version 30.0.0)")),
    ])
    out += chunks(4, 18, 1, 0, meta, size)
    last = {8: None, 9: None}
    for kind, ts, body in tags:
        if kind not in (8, 9):
            continue
        csid = 4 if kind == 8 else 6
        prev = last[kind]
        if prev is None:
            out += chunks(csid, kind, 1, ts, body, size)
        else:
            out += chunks(csid, kind, 1, ts, body, size, fmt=1, delta=max(ts - prev, 0))
        last[kind] = ts
        if len(out) > 60000:
            break
    delete = amf_string("FCUnpublish") + amf_number(6) + AMF_NULL + amf_string("seed-key")
    out += chunks(3, 20, 0, 0, delete, size)
    out += chunks(3, 20, 0, 0, amf_string("deleteStream") + amf_number(7) + AMF_NULL + amf_number(1), size)
    return bytes(out)


# media::fuzzing::hls_writer steps: a chunk is tag 0 (timed) or 3 (untimed), then the packet
# count - 1, a signed 16-bit millisecond step and one shape byte per packet (0 PAT, 1 PMT,
# 2 keyframe start, 3 payload); 5 discontinuity; 6 + byte: has video; 7 finish.
PAT, PMT, KEY, PAYLOAD = 0, 1, 2, 3


def hls_chunk(shapes, step_ms, timed=True):
    return bytes([0 if timed else 3, len(shapes) - 1]) + struct.pack(">h", step_ms) + bytes(shapes)


def hls_gops(gops, frames=60, step=33):
    out = b""
    for _ in range(gops):
        out += hls_chunk([PAT, PMT, KEY, PAYLOAD, PAYLOAD], step)
        for _ in range(frames - 1):
            out += hls_chunk([PAYLOAD, PAYLOAD], step)
    return out


def hls_seeds():
    write("hls_writer", "stream-2s-gops", hls_gops(8) + b"\x07")
    write("hls_writer", "takeover", hls_gops(3) + b"\x05" + hls_gops(3) + b"\x07")
    audio = b"\x06\x00" + b"".join(hls_chunk([PAT, PMT, PAYLOAD], 21) for _ in range(300))
    write("hls_writer", "audio-only", audio + b"\x07")
    backwards = hls_gops(2) + hls_chunk([KEY, PAYLOAD], -5000) + hls_gops(2)
    write("hls_writer", "time-backwards", backwards)
    untimed = hls_gops(1) + b"".join(hls_chunk([KEY, PAYLOAD], 0, timed=False) for _ in range(30))
    write("hls_writer", "untimed-keyframes", untimed + hls_gops(2))


def main():
    hls_seeds()
    if "--hls" in sys.argv:
        return
    port = free_port()
    hls = tempfile.mkdtemp()
    ingest = subprocess.Popen(
        ["cargo", "run", "-q", "-p", "media", "--example", "ingest", "--", f"127.0.0.1:{port}", hls],
        cwd=os.path.dirname(ROOT),
    )
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.5)
        av = capture_ffmpeg(port, LAVFI_VIDEO + LAVFI_AUDIO + X264 + AAC, 2)
        video = capture_ffmpeg(port, LAVFI_VIDEO + X264, 1)
    finally:
        ingest.terminate()
        ingest.wait()
    # Whole sessions are long; the cuts keep the interesting parts small.
    write("rtmp_session", "ffmpeg-av-setup", av[:3073 + 1500])
    write("rtmp_session", "ffmpeg-av-first-media", av[:12000])
    write("rtmp_session", "ffmpeg-av-1s", av[:60000])
    write("rtmp_session", "ffmpeg-video-whole", video)
    media = flv_file(LAVFI_VIDEO + LAVFI_AUDIO + X264 + AAC, 1)
    tags = list(flv_tags(media))
    write("rtmp_session", "obs-like", obs_like(tags))

    seen = set()
    for i, (kind, _, body) in enumerate(tags):
        if kind not in (8, 9):
            continue
        # Configurations, keyframes, inter frames, audio: a few of each kind of tag.
        key = (kind, body[:2])
        if key in seen and i > 40:
            continue
        seen.add(key)
        write("flv_tags", f"tag-{i:03}", bytes([0 if kind == 9 else 1]) + body[:4096])
    write("flv_tags", "file", media[:4096])

    for i, text in enumerate([
        '{"type":"ping"}',
        '{"type":"ping","ref":"r1"}',
        '{"type":"auth","token":"eyJhbGciOiJIUzI1NiJ9.e30.sig"}',
        '{"type":"comment.create","content":"Halo semuanya!","ref":"c-1"}',
        '{"type":"comment.create","content":"\\u0000\\u202e"}',
        '{"type":"unknown"}',
        '[1,2,3]',
    ]):
        write("ws_client_message", f"message-{i}", text.encode())


if __name__ == "__main__":
    main()
