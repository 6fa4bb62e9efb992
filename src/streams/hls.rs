//! `/hls/{stream_id}/{file}`: a stream's playlist, segments and thumbnail, straight from the
//! directory the media core writes.
//!
//! Only three kinds of names are served (`index.m3u8`, `<n>.ts`, `thumbnail.jpg`) under a
//! stream id that parsed as a UUID, so no request can reach outside a stream's directory. The
//! playlist changes every segment and must not be cached; a segment never changes once listed.
//!
//! Files are streamed in [`CHUNK_BYTES`] pieces rather than read whole: a thousand slow readers
//! of a segment each pin one chunk and the connection's write buffer (the server's
//! `max_buf_size`), not the whole file.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::io::Read as _;

use bytes::Bytes;
use futures::StreamExt as _;
use uuid::Uuid;

use crate::error::{AppError, AppResult, ErrorCode, Problem};
use crate::http::extract::Path;
use crate::state::AppState;

use super::stream_not_found;

/// How much of a file one response reads ahead of its client.
const CHUNK_BYTES: usize = 16 * 1024;

/// What a file name in a stream's directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HlsFile {
    Playlist,
    Segment,
    Thumbnail,
}

impl HlsFile {
    fn parse(name: &str) -> Option<Self> {
        if name == media::PLAYLIST {
            return Some(Self::Playlist);
        }
        if name == media::THUMBNAIL {
            return Some(Self::Thumbnail);
        }
        let digits = name.strip_suffix(".ts")?;
        (!digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some(Self::Segment)
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Playlist => "application/vnd.apple.mpegurl",
            Self::Segment => "video/mp2t",
            Self::Thumbnail => "image/jpeg",
        }
    }

    fn cache_control(self) -> &'static str {
        match self {
            // A live playlist changes every couple of seconds.
            Self::Playlist => "no-cache, no-store",
            // A segment is final once listed; kept short as its name may be reused by a later
            // run of the same stream.
            Self::Segment => "public, max-age=60",
            Self::Thumbnail => "public, max-age=5",
        }
    }
}

/// An HLS file's bytes, as the OpenAPI document describes them (a binary string).
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct HlsBytes(#[allow(dead_code)] Vec<u8>);

/// A stream's HLS playlist (`index.m3u8`), one of its segments (`<n>.ts`), or its thumbnail
/// (`thumbnail.jpg`, a recent frame, refreshed every ~10 s while live).
#[utoipa::path(get, path = "/hls/{stream_id}/{file}", tag = "streams", params(
        ("stream_id" = Uuid, Path),
        ("file" = String, Path, description = "`index.m3u8`, `<n>.ts` or `thumbnail.jpg`"),
    ), responses(
        (status = 200, description = "The playlist, a segment or the thumbnail", content(
            (HlsBytes = "application/vnd.apple.mpegurl"),
            (HlsBytes = "video/mp2t"),
            (HlsBytes = "image/jpeg"),
        )),
        (status = 404, description = "No such stream or file", body = Problem, content_type = "application/problem+json"),
))]
pub(super) async fn serve(
    State(state): State<AppState>,
    Path((stream_id, file)): Path<(Uuid, String)>,
) -> AppResult<Response> {
    let kind = HlsFile::parse(&file).ok_or_else(|| AppError::NotFound {
        code: ErrorCode::NotFound,
        detail: Cow::Borrowed("No such HLS file."),
    })?;
    let dir = media::stream_dir(&state.config.hls_dir, &stream_id.to_string());
    let path = dir.join(&file);
    let opened = tokio::task::spawn_blocking(move || open(&path))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let (file, length, first) = match opened {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if tokio::fs::try_exists(&dir).await.unwrap_or(false) {
                AppError::NotFound {
                    code: ErrorCode::NotFound,
                    detail: Cow::Borrowed("No such HLS file (it may have left the live window)."),
                }
            } else {
                stream_not_found()
            });
        }
        Err(e) => return Err(AppError::Internal(e.into())),
    };
    let mut response = Body::from_stream(rest_of(file, length, first)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(kind.content_type()),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(kind.cache_control()),
    );
    Ok(response)
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
    fn only_hls_names_are_served() {
        assert_eq!(HlsFile::parse("index.m3u8"), Some(HlsFile::Playlist));
        assert_eq!(HlsFile::parse("12.ts"), Some(HlsFile::Segment));
        assert_eq!(HlsFile::parse("thumbnail.jpg"), Some(HlsFile::Thumbnail));
        for name in [
            "../x.ts",
            ".ts",
            "a.ts",
            "index.m3u8.tmp",
            "..",
            "1.ts/..",
            "%2e%2e",
        ] {
            assert_eq!(HlsFile::parse(name), None, "{name}");
        }
    }
}
