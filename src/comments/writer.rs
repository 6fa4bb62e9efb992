//! Stores comments in batches, one writer task per stream with comments in flight.
//!
//! Each stored comment takes the stream's next event id, which locks the stream's id counter
//! until the transaction has committed — including the wait for the commit to reach disk. One
//! comment per transaction would therefore cap a busy chat at one comment per disk flush. The
//! writer instead takes whatever comments are waiting when it is free and stores them together:
//! one transaction, one flush, one hold of the counter, one round trip to Redis for the
//! announcements. At low rates a batch is a single comment and nothing waits; under load the
//! batches grow by themselves. Nothing is delayed on purpose.
//!
//! Comment transactions commit synchronously, like every transaction that issues event ids:
//! the ids come from `live_event_seqs`, and a commit that is acknowledged before it reaches disk
//! can be rolled back by a crash of the database server *after* its events were announced. The
//! sequence row then hands the same ids out again while every hub has already delivered them,
//! so the hubs would take the new events for duplicates (see [`crate::live::hub`] for the
//! defence behind this one). Batching keeps this cheap: one flush serves a whole batch, and
//! PostgreSQL's group commit lets concurrent batches of other streams share flushes. A comment
//! answered 201 is on disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::model::{Comment, CommentContent};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::live::events::{CommentCreated, EventData, Events, PublishError};
use crate::users::model::PublicUser;

/// Most comments stored in one transaction.
const MAX_BATCH: usize = 256;
/// Comments that may wait for a stream's writer; more wait to be queued.
const QUEUE: usize = 1024;
/// A writer without work for this long stops (another starts on the next comment).
const IDLE: Duration = Duration::from_secs(30);

/// A comment waiting to be stored.
struct Pending {
    id: Uuid,
    author: PublicUser,
    content: CommentContent,
    reply: oneshot::Sender<AppResult<Comment>>,
}

/// The comment writers of this process.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    events: Events,
    tasks: TaskTracker,
    streams: Mutex<HashMap<Uuid, mpsc::Sender<Pending>>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("streams", &self.inner.streams.lock().len())
            .finish()
    }
}

impl Writer {
    #[must_use]
    pub fn new(db: PgPool, events: Events, tasks: TaskTracker) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                events,
                tasks,
                streams: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Stores a comment on a live stream with its `comment.created` event and announces it.
    /// Fails with 404 for an unknown stream, 409 `stream_not_live` for one that is not live.
    pub async fn write(
        &self,
        stream_id: Uuid,
        author: PublicUser,
        content: CommentContent,
    ) -> AppResult<Comment> {
        let (reply, answer) = oneshot::channel();
        let mut pending = Pending {
            // Time-ordered ids keep comments stored together in the order they were posted.
            id: Uuid::now_v7(),
            author,
            content,
            reply,
        };
        // A writer that just stopped for idleness refuses the comment; the second try starts
        // a new one.
        for _ in 0..2 {
            let queue = self.queue(stream_id);
            match queue.send(pending).await {
                Ok(()) => {
                    return answer.await.unwrap_or_else(|_| {
                        Err(AppError::Internal(anyhow::anyhow!(
                            "the comment writer stopped"
                        )))
                    });
                }
                Err(mpsc::error::SendError(refused)) => {
                    pending = refused;
                    let mut streams = self.inner.streams.lock();
                    if streams
                        .get(&stream_id)
                        .is_some_and(|q| q.same_channel(&queue))
                    {
                        streams.remove(&stream_id);
                    }
                }
            }
        }
        Err(AppError::Internal(anyhow::anyhow!(
            "no comment writer would take the comment"
        )))
    }

    fn queue(&self, stream_id: Uuid) -> mpsc::Sender<Pending> {
        let mut streams = self.inner.streams.lock();
        streams
            .entry(stream_id)
            .or_insert_with(|| {
                let (queue, inbox) = mpsc::channel(QUEUE);
                let own = queue.downgrade();
                self.inner
                    .tasks
                    .spawn(Arc::clone(&self.inner).run(stream_id, own, inbox));
                queue
            })
            .clone()
    }
}

/// Why a batch was not stored.
enum Refusal {
    Missing,
    NotLive,
    Failed { cause: String, unavailable: bool },
}

impl Refusal {
    fn to_error(&self) -> AppError {
        match self {
            Self::Missing => AppError::not_found("Stream"),
            Self::NotLive => AppError::conflict(
                ErrorCode::StreamNotLive,
                "Comments can be posted only while the stream is live.",
            ),
            Self::Failed {
                cause,
                unavailable: true,
            } => AppError::Unavailable(anyhow::anyhow!("{cause}")),
            Self::Failed { cause, .. } => AppError::Internal(anyhow::anyhow!("{cause}")),
        }
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        let cause = format!("storing comments: {e}");
        let unavailable = matches!(AppError::from(e), AppError::Unavailable(_));
        Self::Failed { cause, unavailable }
    }
}

impl From<PublishError> for Refusal {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Database(e) => e.into(),
            PublishError::UnknownStream(_) => Self::Missing,
            other => Self::Failed {
                cause: other.to_string(),
                unavailable: false,
            },
        }
    }
}

impl Inner {
    async fn run(
        self: Arc<Self>,
        stream_id: Uuid,
        own: mpsc::WeakSender<Pending>,
        mut inbox: mpsc::Receiver<Pending>,
    ) {
        loop {
            let first = match tokio::time::timeout(IDLE, inbox.recv()).await {
                Ok(Some(pending)) => pending,
                Ok(None) => return,
                Err(_) => {
                    // Leave the registry first, so new comments start a new writer, then store
                    // what was queued meanwhile.
                    if let Some(own) = own.upgrade() {
                        let mut streams = self.streams.lock();
                        if streams
                            .get(&stream_id)
                            .is_some_and(|q| q.same_channel(&own))
                        {
                            streams.remove(&stream_id);
                        }
                    }
                    inbox.close();
                    let mut rest = Vec::new();
                    while let Some(pending) = inbox.recv().await {
                        rest.push(pending);
                    }
                    while !rest.is_empty() {
                        let batch = rest.drain(..rest.len().min(MAX_BATCH)).collect();
                        self.store(stream_id, batch).await;
                    }
                    return;
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            self.store(stream_id, batch).await;
        }
    }

    /// Stores a batch and answers each comment's poster. If the batch as a whole fails for a
    /// reason that may be one comment's (an author deleted meanwhile), each is tried alone.
    async fn store(&self, stream_id: Uuid, batch: Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        match self.insert(stream_id, &batch).await {
            Ok(comments) => {
                for (pending, comment) in batch.into_iter().zip(comments) {
                    let _ = pending.reply.send(Ok(comment));
                }
            }
            Err(Refusal::Failed {
                cause,
                unavailable: false,
            }) if batch.len() > 1 => {
                tracing::warn!(%stream_id, cause, size = batch.len(), "a comment batch failed; storing one by one");
                for pending in batch {
                    let result = self
                        .insert(stream_id, std::slice::from_ref(&pending))
                        .await
                        .map(|mut c| c.remove(0))
                        .map_err(|r| r.to_error());
                    let _ = pending.reply.send(result);
                }
            }
            Err(refusal) => {
                for pending in batch {
                    let _ = pending.reply.send(Err(refusal.to_error()));
                }
            }
        }
    }

    /// One transaction: the comments (if the stream is live), then their events; announced
    /// after the commit. Returns the comments in batch order.
    async fn insert(&self, stream_id: Uuid, batch: &[Pending]) -> Result<Vec<Comment>, Refusal> {
        let ids: Vec<Uuid> = batch.iter().map(|p| p.id).collect();
        let authors: Vec<Uuid> = batch.iter().map(|p| p.author.id).collect();
        let contents: Vec<&str> = batch.iter().map(|p| p.content.as_str()).collect();
        let mut tx = self.db.begin().await?;
        let stored =
            super::db::insert_batch(&mut *tx, stream_id, &ids, &authors, &contents).await?;
        if stored.is_empty() {
            drop(tx);
            return Err(
                match super::db::stream_is_active(&self.db, stream_id).await? {
                    None => Refusal::Missing,
                    Some(_) => Refusal::NotLive,
                },
            );
        }
        let created: HashMap<Uuid, DateTime<Utc>> = stored.into_iter().collect();
        let comments: Vec<Comment> = batch
            .iter()
            .map(|p| Comment {
                id: p.id,
                stream_id,
                author: p.author.clone(),
                content: p.content.as_str().to_owned(),
                created_at: created.get(&p.id).copied().unwrap_or_else(Utc::now),
            })
            .collect();
        let events = comments
            .iter()
            .map(|c| EventData::CommentCreated(CommentCreated::from(c.clone())))
            .collect();
        let recorded = self.events.record_many(&mut tx, stream_id, events).await?;
        tx.commit().await?;
        self.events.announce_many(&recorded).await;
        Ok(comments)
    }
}
