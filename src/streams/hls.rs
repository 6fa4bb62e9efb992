//! `/hls/{stream_id}/{file}`: a stream's LL-HLS playlist, parts, segments, init sections and
//! thumbnail.
//!
//! While this process ingests the stream, the playlist and the recent parts and segments come
//! from the media core's live edge in memory ([`media::LiveHls`]): a blocking playlist reload
//! (`_HLS_msn`, `_HLS_part`) or a request for the preload-hinted part is held until it exists
//! (at most three target durations, then 503), one too far ahead is answered 400 at once, and
//! `_HLS_skip=YES` gives a delta update. Everything else — older segments, a stream another
//! process ingests or one that ended — is read from the directory the media core writes.
//!
//! Only the names [`media::HlsFile`] knows are served, under a stream id that parsed as a
//! UUID, so no request can reach outside a stream's directory. Files are streamed in
//! [`CHUNK_BYTES`] pieces rather than read whole: a thousand slow readers of a segment each pin
//! one chunk and the connection's write buffer (the server's `max_buf_size`), not the whole
//! file.

use std::borrow::Cow;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::io::Read as _;

use bytes::Bytes;
use futures::StreamExt as _;
use media::{Blocked, HlsFile, PlaylistRequest};
use uuid::Uuid;

use crate::error::{AppError, AppResult, ErrorCode, Problem};
use crate::http::extract::Path;
use crate::state::AppState;

use super::stream_not_found;

/// How much of a file one response reads ahead of its client.
const CHUNK_BYTES: usize = 16 * 1024;

/// An HLS file's bytes, as the OpenAPI document describes them (a binary string).
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct HlsBytes(#[allow(dead_code)] Vec<u8>);

/// The LL-HLS delivery directives of a playlist request. Other parameters (cache busters) are
/// ignored, as players expect.
fn directives(query: Option<&str>) -> AppResult<PlaylistRequest> {
    let mut request = PlaylistRequest::default();
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = |field: &'static str| {
            (!value.is_empty() && value.len() <= 19 && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| {
                    AppError::invalid(field, "invalid", "Must be a non-negative integer.")
                })
        };
        match key {
            "_HLS_msn" => request.msn = Some(number("_HLS_msn")?),
            "_HLS_part" => request.part = Some(number("_HLS_part")?),
            "_HLS_skip" => match value {
                "YES" | "v2" => request.skip = true,
                _ => {
                    return Err(AppError::invalid(
                        "_HLS_skip",
                        "invalid",
                        "Must be YES or v2.",
                    ));
                }
            },
            _ => {}
        }
    }
    if request.part.is_some() && request.msn.is_none() {
        return Err(AppError::invalid(
            "_HLS_part",
            "requires_msn",
            "_HLS_part needs _HLS_msn.",
        ));
    }
    Ok(request)
}

fn with_headers(mut response: Response, kind: HlsFile, length: Option<u64>) -> Response {
    let headers = response.headers_mut();
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(kind.content_type()),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(kind.cache_control()),
    );
    response
}

fn from_memory(kind: HlsFile, chunks: Vec<Bytes>) -> Response {
    let length = chunks.iter().map(|c| c.len() as u64).sum();
    let body = Body::from_stream(futures::stream::iter(
        chunks.into_iter().map(Ok::<_, std::io::Error>),
    ));
    with_headers(body.into_response(), kind, Some(length))
}

fn gone() -> AppError {
    AppError::NotFound {
        code: ErrorCode::NotFound,
        detail: Cow::Borrowed("No such HLS file (it may have left the live window)."),
    }
}

/// A stream's HLS: the LL-HLS playlist (`index.m3u8`, with the blocking reload and delta
/// directives), a partial segment (`p<n>.m4s`), a segment (`<msn>.m4s`), an init section
/// (`init-<n>.mp4`), or the thumbnail (`thumbnail.jpg`, a recent frame, refreshed every ~10 s
/// while live).
#[utoipa::path(get, path = "/hls/{stream_id}/{file}", tag = "streams", params(
        ("stream_id" = Uuid, Path),
        ("file" = String, Path, description = "`index.m3u8`, `p<n>.m4s`, `<msn>.m4s`, `init-<n>.mp4` or `thumbnail.jpg`"),
        ("_HLS_msn" = Option<u64>, Query, description = "Playlist only: hold the answer until the playlist has this media sequence number (LL-HLS blocking reload)"),
        ("_HLS_part" = Option<u64>, Query, description = "Playlist only, with `_HLS_msn`: until it has this part of that segment"),
        ("_HLS_skip" = Option<String>, Query, description = "Playlist only: `YES` (or `v2`) for a delta update (`EXT-X-SKIP`)"),
    ), responses(
        (status = 200, description = "The playlist, a part, a segment, an init section or the thumbnail", content(
            (HlsBytes = "application/vnd.apple.mpegurl"),
            (HlsBytes = "video/mp4"),
            (HlsBytes = "image/jpeg"),
        )),
        (status = 400, description = "`_HLS_msn`/`_HLS_part` further ahead of the live edge than a client may ask (`hls_too_far_ahead`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream or file", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A malformed `_HLS_*` directive", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The requested part did not appear within three target durations (`hls_not_ready`), with `Retry-After`", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn serve(
    State(state): State<AppState>,
    Path((stream_id, file)): Path<(Uuid, String)>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let kind = HlsFile::parse(&file).ok_or_else(|| AppError::NotFound {
        code: ErrorCode::NotFound,
        detail: Cow::Borrowed("No such HLS file."),
    })?;
    let request = match kind {
        HlsFile::Playlist => directives(query.as_deref())?,
        _ => PlaylistRequest::default(),
    };
    if let Some(live) = state.ingest.live_hls(stream_id) {
        match kind {
            HlsFile::Playlist => {
                let text = live.playlist(request).await.map_err(|e| match e {
                    Blocked::TooFarAhead => AppError::BadRequest {
                        status: axum::http::StatusCode::BAD_REQUEST,
                        code: ErrorCode::HlsTooFarAhead,
                        detail: Cow::Borrowed(
                            "That segment or part is too far ahead of the live edge.",
                        ),
                    },
                    Blocked::TimedOut => AppError::Busy {
                        code: ErrorCode::HlsNotReady,
                        detail: Cow::Borrowed("That segment or part did not appear in time."),
                        retry_after: Duration::from_secs(1),
                    },
                })?;
                return Ok(from_memory(kind, vec![Bytes::from(text)]));
            }
            HlsFile::Part(n) => {
                return match live.part(n).await {
                    Some(bytes) => Ok(from_memory(kind, vec![bytes])),
                    None => Err(gone()),
                };
            }
            HlsFile::Segment(msn) => {
                if let Some(chunks) = live.segment(msn) {
                    return Ok(from_memory(kind, chunks));
                }
            }
            HlsFile::Init(n) => {
                if let Some(bytes) = live.init(n) {
                    return Ok(from_memory(kind, vec![bytes]));
                }
            }
            HlsFile::Thumbnail => {}
        }
    } else if matches!(kind, HlsFile::Part(_)) {
        // Parts exist only on the live edge, in the ingesting process's memory.
        return Err(gone());
    }
    let dir = media::stream_dir(&state.config.hls_dir, &stream_id.to_string());
    let path = dir.join(kind.name());
    let opened = tokio::task::spawn_blocking(move || open(&path))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let (file, length, first) = match opened {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if tokio::fs::try_exists(&dir).await.unwrap_or(false) {
                gone()
            } else {
                stream_not_found()
            });
        }
        Err(e) => return Err(AppError::Internal(e.into())),
    };
    let body = Body::from_stream(rest_of(file, length, first));
    Ok(with_headers(body.into_response(), kind, Some(length)))
}

/// Opens a regular file, reads its length and its first chunk: one trip to the blocking pool
/// serves a playlist or a thumbnail whole.
fn open(path: &std::path::Path) -> std::io::Result<(std::fs::File, u64, Bytes)> {
    let mut file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::ErrorKind::NotFound.into());
    }
    let length = metadata.len();
    let first = read_chunk(&mut file, length)?;
    Ok((file, length, first))
}

/// The next chunk of a file of which `left` bytes are still to be sent.
fn read_chunk(file: &mut std::fs::File, left: u64) -> std::io::Result<Bytes> {
    let want = usize::try_from(left).map_or(CHUNK_BYTES, |left| left.min(CHUNK_BYTES));
    let mut chunk = vec![0; want];
    // The media core replaces files by renaming a finished one over them, so an open file
    // keeps the length it was opened with; one that shrank anyway ends the response early.
    file.read_exact(&mut chunk)?;
    Ok(Bytes::from(chunk))
}

/// The body: `first`, then the rest of the file, one chunk per poll, each read when the
/// connection has room for it.
fn rest_of(
    file: std::fs::File,
    length: u64,
    first: Bytes,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let sent = first.len() as u64;
    let rest = futures::stream::try_unfold((file, sent), move |(mut file, sent)| async move {
        if sent >= length {
            return Ok(None);
        }
        let (file, chunk) = tokio::task::spawn_blocking(move || {
            read_chunk(&mut file, length - sent).map(|chunk| (file, chunk))
        })
        .await
        .map_err(std::io::Error::other)??;
        let sent = sent + chunk.len() as u64;
        Ok(Some((chunk, (file, sent))))
    });
    futures::stream::once(async { Ok(first) }).chain(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_directives_are_parsed_with_bounds() {
        assert_eq!(directives(None).unwrap(), PlaylistRequest::default());
        assert_eq!(
            directives(Some("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES&t=99")).unwrap(),
            PlaylistRequest {
                msn: Some(12),
                part: Some(3),
                skip: true
            }
        );
        for bad in [
            "_HLS_msn=-1",
            "_HLS_msn=",
            "_HLS_msn=1e3",
            "_HLS_msn=99999999999999999999",
            "_HLS_part=1",
            "_HLS_msn=1&_HLS_part=x",
            "_HLS_skip=NO",
        ] {
            assert!(
                matches!(directives(Some(bad)), Err(AppError::Validation(_))),
                "{bad}"
            );
        }
    }
}
