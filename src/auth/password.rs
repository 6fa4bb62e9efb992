//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane — OWASP's
//! recommended minimum), bounded.
//!
//! Each hash takes a core and 19 MiB for tens of milliseconds, so a few hundred registrations at
//! once would take gigabytes on an unbounded blocking pool. Requests therefore hash through one
//! process-wide [`Hasher`]: a semaphore sized from the cores and the memory. A request waits for
//! a slot *in its own future* — if the client goes away or the request times out meanwhile, the
//! future is dropped and nothing is hashed — and only with a slot is the work handed to one of
//! the hasher's own threads, one per slot. Each thread keeps one argon2 memory block of its own
//! and hashes into it ([`Argon2::hash_password_into_with_memory`]), so the memory stays at
//! slots × 19 MiB: allocating 19 MiB per hash, as `PasswordHasher::hash_password` does, left the
//! allocator's heap fragmented — 100 registrations at once grew a server by 340 MB even with two
//! hashes at a time.
//! A request that cannot get a slot within the configured wait is answered 503 `service_busy`
//! with `Retry-After`. Logins verify through the same bound, including the dummy verification
//! for unknown accounts, so a wrong username still costs as much as a wrong password.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory argon2id takes per hash with the default parameters.
const HASH_MEMORY_BYTES: u64 = 19 * 1024 * 1024;

/// Verified against when the account does not exist, so that a wrong username costs as much time
/// as a wrong password and timing does not reveal which accounts exist.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("not-a-real-password").unwrap_or_default());

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every slot stayed busy for the whole wait; try again after the given time.
    #[error("every password hashing slot is busy")]
    Busy { retry_after: Duration },
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The process-wide bound on concurrent password hashing. Cheap to clone; its threads end when
/// the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    size: usize,
    wait: Duration,
    stats: Arc<Stats>,
    workers: std::sync::mpsc::Sender<Work>,
}

/// A hash or verification to run, with the slot it holds.
type Work = Box<dyn FnOnce() + Send>;

/// `size` threads taking work off one queue; they end when every sender is gone.
fn start_workers(size: usize) -> std::sync::mpsc::Sender<Work> {
    let (sender, receiver) = std::sync::mpsc::channel::<Work>();
    let receiver = Arc::new(std::sync::Mutex::new(receiver));
    for i in 0..size {
        let receiver = Arc::clone(&receiver);
        let spawned = std::thread::Builder::new()
            .name(format!("password-hash-{i}"))
            .spawn(move || {
                loop {
                    // The lock is held only while waiting for the next piece of work.
                    let next = match receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    match next {
                        Ok(work) => work(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(cause = %e, "cannot start a password hashing thread");
        }
    }
    sender
}

#[derive(Debug, Default)]
struct Stats {
    /// Hashes and verifications started (a slot was taken and the blocking task spawned).
    started: AtomicU64,
    /// Requests waiting for a slot right now.
    waiting: AtomicU64,
}

/// Counts a waiting request for as long as it waits (also when its future is dropped).
struct Waiting<'a>(&'a Stats);

impl<'a> Waiting<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.waiting.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("password_hash_waiting").increment(1.0);
        Self(stats)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("password_hash_waiting").decrement(1.0);
    }
}

impl Hasher {
    /// `concurrency` slots (0: [`Hasher::default_concurrency`]); a request waits at most `wait`.
    #[must_use]
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        let size = if concurrency == 0 {
            Self::default_concurrency()
        } else {
            concurrency
        };
        Self {
            slots: Arc::new(Semaphore::new(size)),
            size,
            wait,
            stats: Arc::default(),
            workers: start_workers(size),
        }
    }

    /// One slot per core, but no more than an eighth of the machine's memory holds (19 MiB each).
    #[must_use]
    pub fn default_concurrency() -> usize {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let by_memory = total_memory_bytes().map_or(usize::MAX, |bytes| {
            usize::try_from(bytes / 8 / HASH_MEMORY_BYTES).unwrap_or(usize::MAX)
        });
        cores.min(by_memory).max(1)
    }

    /// How many hashes may run at once.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Hashes and verifications started so far.
    #[must_use]
    pub fn started(&self) -> u64 {
        self.stats.started.load(Ordering::Relaxed)
    }

    /// Requests waiting for a slot right now.
    #[must_use]
    pub fn waiting(&self) -> u64 {
        self.stats.waiting.load(Ordering::Relaxed)
    }

    /// Takes every slot until the returned permit is dropped, as a flood of hashing would: for
    /// tests and benches that need a busy hasher.
    pub async fn occupy_all(&self) -> OwnedSemaphorePermit {
        let size = u32::try_from(self.size).unwrap_or(u32::MAX);
        Arc::clone(&self.slots)
            .acquire_many_owned(size)
            .await
            .expect("the hashing semaphore is never closed")
    }

    /// Hashes a password (PHC string format).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let slot = self.slot().await?;
        self.run(slot, move || hash_blocking(&password)).await
    }

    /// Whether the password matches the hash. With no hash (unknown account), spends the same
    /// time and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let slot = self.slot().await?;
        self.run(slot, move || {
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
            let matches = verify_blocking(&password, &hash)?;
            Ok(known && matches)
        })
        .await
    }

    /// Waits (in the caller's future) for a free slot, at most the configured time.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, HashError> {
        let _waiting = Waiting::new(&self.stats);
        match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(HashError::Failed(anyhow::Error::new(closed))),
            Err(_) => {
                metrics::counter!("password_hash_busy_total").increment(1);
                Err(HashError::Busy {
                    retry_after: self.wait.max(Duration::from_secs(1)),
                })
            }
        }
    }

    /// Runs the work on one of the hasher's threads, holding the slot until it is done (even if
    /// the request that started it is gone by then: the core is busy either way).
    async fn run<T: Send + 'static>(
        &self,
        slot: OwnedSemaphorePermit,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashError> {
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("password_hashes_total").increment(1);
        let (done, result) = tokio::sync::oneshot::channel();
        self.workers
            .send(Box::new(move || {
                let _ = done.send(work());
                drop(slot);
            }))
            .map_err(|_| anyhow::anyhow!("the password hashing threads are gone"))?;
        result
            .await
            .context("password hashing thread")?
            .map_err(HashError::Failed)
    }
}

/// `MemTotal` of `/proc/meminfo`, where there is one.
fn total_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Hashes a password on the blocking pool with no bound: for the command line and seeding,
/// never for requests (use [`Hasher::hash`]).
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .context("password hashing task")?
}

thread_local! {
    /// This thread's argon2 memory, kept for its next hash.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Hashes into this thread's argon2 memory (allocated on its first use).
fn hash_into(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> anyhow::Result<()> {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() != params.block_count() {
            *memory = vec![Block::default(); params.block_count()];
        }
        argon
            .hash_password_into_with_memory(password, salt, out, memory.as_mut_slice())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
}

/// Hashes on the current thread (argon2id with the crate's default parameters, PHC string
/// format); for the hasher's threads, the CLI and seeding.
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    hash_into(&argon, &params, password.as_bytes(), salt_bytes, &mut out)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("parameters: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the stored PHC string, computed with the string's own algorithm
/// and parameters in this thread's memory; compared in constant time.
fn verify_blocking(password: &str, stored: &str) -> anyhow::Result<bool> {
    let malformed =
        |e: &dyn std::fmt::Display| anyhow::anyhow!("stored password hash is malformed: {e}");
    let parsed = PasswordHash::new(stored).map_err(|e| malformed(&e))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| malformed(&e))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| malformed(&e))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| malformed(&e))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(malformed(&"no salt or hash"));
    };
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| malformed(&e))?;
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    hash_into(&argon, &params, password.as_bytes(), salt_bytes, &mut out)?;
    Ok(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let hasher = Hasher::new(1, Duration::from_secs(5));
        let hashed = hasher.hash("correct horse".into()).await.expect("hash");
        assert!(hashed.starts_with("$argon2id$"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(hashed.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("wrong horse".into(), Some(hashed))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("not-a-real-password".into(), None)
                .await
                .expect("verify")
        );
        assert_eq!(hasher.started(), 4);
    }

    #[tokio::test]
    async fn a_busy_hasher_answers_busy_after_the_wait_without_hashing() {
        let hasher = Hasher::new(1, Duration::from_millis(50));
        let held = hasher.occupy_all().await;

        let result = hasher.hash("correct horse".into()).await;

        assert!(matches!(result, Err(HashError::Busy { .. })), "{result:?}");
        assert_eq!(hasher.started(), 0);
        assert_eq!(hasher.waiting(), 0);
        drop(held);
        assert!(hasher.hash("correct horse".into()).await.is_ok());
    }

    #[test]
    fn hashes_are_standard_phc_strings_that_argon2_itself_verifies() {
        use argon2::PasswordVerifier as _;
        let hashed = hash_blocking("correct horse").expect("hash");
        assert!(
            hashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hashed}"
        );
        let parsed = PasswordHash::new(&hashed).expect("PHC");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // And hashes made by the crate's own hasher verify here.
        use argon2::PasswordHasher as _;
        let theirs = Argon2::default()
            .hash_password(b"other horse", &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string();
        assert!(verify_blocking("other horse", &theirs).expect("verify"));
        assert!(!verify_blocking("wrong horse", &theirs).expect("verify"));
    }

    #[test]
    fn the_default_size_is_at_least_one_and_at_most_the_cores() {
        let size = Hasher::default_concurrency();
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        assert!((1..=cores).contains(&size), "{size} of {cores}");
    }
}
