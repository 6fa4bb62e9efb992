//! What an overlay socket needs to know about its streamer, pushed rather than polled: a stream
//! of theirs went live or ended, their overlay token was replaced or they were deactivated.
//! Also the per-token and per-address caps on overlay sockets.
//!
//! Overlays used to ask PostgreSQL every 2 s (two queries per socket): 20,000 sockets on one
//! token were 20,000 queries a second against a pool of 20. Now a process subscribes once to
//! one Redis channel ([`super::relay`]) and fans each notice out in memory to the sockets of
//! that streamer: an idle overlay costs no query at all. Notices are sent by
//! [`super::events::Events`] when it announces `stream.live` / `stream.ended`, and by
//! [`super::Live::close_overlays`].
//!
//! Pub/sub forgets what it could not deliver, so a notice can be missed while Redis is away.
//! Every resubscription of the relay therefore makes each overlay check its token and its
//! streamer's live stream once (two queries per socket per Redis outage, not per interval).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::relay::{self, Inbound};

/// Notices a streamer's overlays may have pending before they are told to check instead.
const NOTICES: usize = 16;
/// Messages the relay may queue for the notice task.
const INBOX: usize = 1024;

/// What an overlay is told about its streamer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// One of the streamer's streams went live.
    Live(Uuid),
    /// One of the streamer's streams ended.
    Ended(Uuid),
    /// The streamer's token was replaced or the streamer deactivated: check the token.
    Revoked,
    /// Notices may have been missed (Redis was away, or the socket fell behind): check both.
    Recheck,
}

/// A notice as carried on Redis. `type` and `id` make it pass the relay's frame parser.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Wire {
    #[serde(rename = "type")]
    kind: String,
    id: u64,
    streamer_id: Uuid,
    notice: String,
    stream_id: Option<Uuid>,
}

impl Wire {
    pub(crate) fn encode(streamer_id: Uuid, notice: Notice) -> String {
        let (name, stream_id) = match notice {
            Notice::Live(id) => ("live", Some(id)),
            Notice::Ended(id) => ("ended", Some(id)),
            Notice::Revoked => ("revoked", None),
            Notice::Recheck => ("recheck", None),
        };
        serde_json::to_string(&Self {
            kind: "overlay.notice".to_owned(),
            id: 0,
            streamer_id,
            notice: name.to_owned(),
            stream_id,
        })
        .unwrap_or_default()
    }

    fn decode(text: &str) -> Option<(Uuid, Notice)> {
        let wire: Self = serde_json::from_str(text).ok()?;
        let notice = match (wire.notice.as_str(), wire.stream_id) {
            ("live", Some(id)) => Notice::Live(id),
            ("ended", Some(id)) => Notice::Ended(id),
            ("revoked", _) => Notice::Revoked,
            _ => Notice::Recheck,
        };
        Some((wire.streamer_id, notice))
    }
}

/// Why an overlay socket is refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CapExceeded {
    Token,
    Address,
}

/// This process's overlay sockets by streamer, token and address.
#[derive(Debug)]
pub(crate) struct Overlays {
    max_per_token: usize,
    max_per_address: usize,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    streamers: HashMap<Uuid, broadcast::Sender<Notice>>,
    tokens: HashMap<Vec<u8>, usize>,
    addresses: HashMap<IpAddr, usize>,
    /// Whether the notice channel is subscribed (done with the first overlay).
    subscribed: bool,
}

/// One overlay socket's place: its notices, and its share of the caps while it lives.
#[derive(Debug)]
pub(crate) struct Slot {
    notices: Option<broadcast::Receiver<Notice>>,
    state: Arc<Mutex<State>>,
    token_hash: Vec<u8>,
    address: IpAddr,
    streamer_id: Option<Uuid>,
}

impl Slot {
    /// The next notice; a socket that fell behind is told to check.
    pub(crate) async fn next(&mut self) -> Notice {
        match self.notices.as_mut() {
            Some(notices) => match notices.recv().await {
                Ok(notice) => notice,
                Err(broadcast::error::RecvError::Lagged(_)) => Notice::Recheck,
                // The registry keeps the sender while receivers exist; never in practice.
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.notices.take());
        let mut state = self.state.lock();
        decrement(&mut state.tokens, &self.token_hash);
        decrement(&mut state.addresses, &self.address);
        if let Some(streamer_id) = self.streamer_id
            && state
                .streamers
                .get(&streamer_id)
                .is_some_and(|s| s.receiver_count() == 0)
        {
            state.streamers.remove(&streamer_id);
        }
    }
}

impl Overlays {
    pub(crate) fn new(max_per_token: usize, max_per_address: usize) -> Self {
        Self {
            max_per_token: max_per_token.max(1),
            max_per_address: max_per_address.max(1),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Takes a slot for an overlay socket of `streamer_id` (`None`: the token is unknown, the
    /// socket only says so), or refuses it when the token or the address has as many as allowed.
    /// The first slot subscribes this process to the notice channel.
    pub(crate) fn admit(
        &self,
        token_hash: Vec<u8>,
        address: IpAddr,
        streamer_id: Option<Uuid>,
        relay: &relay::Handle,
        channel: &str,
    ) -> Result<Slot, CapExceeded> {
        let mut state = self.state.lock();
        if state.tokens.get(&token_hash).copied().unwrap_or(0) >= self.max_per_token {
            return Err(CapExceeded::Token);
        }
        if state.addresses.get(&address).copied().unwrap_or(0) >= self.max_per_address {
            return Err(CapExceeded::Address);
        }
        *state.tokens.entry(token_hash.clone()).or_default() += 1;
        *state.addresses.entry(address).or_default() += 1;
        let notices = streamer_id.map(|id| {
            state
                .streamers
                .entry(id)
                .or_insert_with(|| broadcast::channel(NOTICES).0)
                .subscribe()
        });
        if !state.subscribed {
            state.subscribed = true;
            let (inbox_tx, inbox) = mpsc::channel(INBOX);
            relay.subscribe(channel.to_owned(), inbox_tx);
            tokio::spawn(run(Arc::clone(&self.state), inbox));
        }
        Ok(Slot {
            notices,
            state: Arc::clone(&self.state),
            token_hash,
            address,
            streamer_id,
        })
    }

    /// Tells this process's overlays of a streamer.
    pub(crate) fn notify(&self, streamer_id: Uuid, notice: Notice) {
        notify(&self.state, streamer_id, notice);
    }
}

fn notify(state: &Mutex<State>, streamer_id: Uuid, notice: Notice) {
    if let Some(sender) = state.lock().streamers.get(&streamer_id) {
        let _ = sender.send(notice);
    }
}

/// Hands the notices the relay receives to the overlays they concern; after a resubscription
/// every overlay checks once.
async fn run(state: Arc<Mutex<State>>, mut inbox: mpsc::Receiver<Inbound>) {
    while let Some(inbound) = inbox.recv().await {
        match inbound {
            Inbound::Frame(frame) => {
                if let Some((streamer_id, notice)) = Wire::decode(frame.text.as_str()) {
                    notify(&state, streamer_id, notice);
                }
            }
            Inbound::Resync | Inbound::Rewound => {
                for sender in state.lock().streamers.values() {
                    let _ = sender.send(Notice::Recheck);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_reads_back_as_sent() {
        let (streamer, stream) = (Uuid::new_v4(), Uuid::new_v4());
        for notice in [Notice::Live(stream), Notice::Ended(stream), Notice::Revoked] {
            let text = Wire::encode(streamer, notice);
            assert_eq!(Wire::decode(&text), Some((streamer, notice)));
        }
    }
}
