//! Demo data (`siaran generate-dummy-data`): the seed project's superuser `admin`/`admin`,
//! streamers (with payout accounts and blocked words) and viewers with one known password, past
//! and upcoming streams, donations in every status and comments. Running it again adds nothing
//! twice.

use std::fmt;

use anyhow::Context;
use chrono::{Duration, Utc};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::auth::password;

/// The password of every demo account but `admin`.
pub const DEMO_PASSWORD: &str = "siaran-demo";
const STREAMERS: [(&str, &str, &str); 3] = [
    ("andi", "Andi", "Wijaya"),
    ("sari", "Sari", "Lestari"),
    ("budi", "Budi", "Santoso"),
];
const VIEWERS: [(&str, &str, &str); 4] = [
    ("rina", "Rina", "Putri"),
    ("dewi", "Dewi", "Anggraini"),
    ("eko", "Eko", "Prasetyo"),
    ("fajar", "Fajar", "Nugroho"),
];
const STATUSES: [&str; 6] = [
    "completed",
    "pending",
    "failed",
    "expired",
    "rejected",
    "refunded",
];
const MESSAGES: [&str; 5] = [
    "Semangat terus!",
    "Mantap streamnya",
    "Salam dari Bandung",
    "Buat beli kopi ☕",
    "Keren banget mainnya",
];
/// Every demo streamer blocks these in donation messages.
const BLOCKED_WORDS: [&str; 2] = ["judi", "slot gacor"];
const COMMENTS: [&str; 6] = [
    "Halo semua!",
    "GG!",
    "Lagi main apa ini?",
    "Suaranya jernih",
    "wkwkwk",
    "Terima kasih streamnya",
];

/// What the seed did, printed for the person who ran it.
#[derive(Debug, Default)]
pub struct Report {
    pub users_created: usize,
    pub streams_created: usize,
    pub donations_created: usize,
    pub comments_created: usize,
    /// Stream keys made for demo streamers that had none, `(username, key)`: shown once, here.
    pub stream_keys: Vec<(String, String)>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Demo data: {} users, {} streams, {} donations, {} comments created.",
            self.users_created, self.streams_created, self.donations_created, self.comments_created
        )?;
        writeln!(f, "  superuser:  admin / admin")?;
        let streamers: Vec<_> = STREAMERS.iter().map(|s| s.0).collect();
        let viewers: Vec<_> = VIEWERS.iter().map(|v| v.0).collect();
        writeln!(
            f,
            "  streamers:  {} / {DEMO_PASSWORD}",
            streamers.join(", ")
        )?;
        write!(f, "  viewers:    {} / {DEMO_PASSWORD}", viewers.join(", "))?;
        for (username, key) in &self.stream_keys {
            write!(f, "\n  stream key for {username}: {key}")?;
        }
        Ok(())
    }
}

/// Creates whatever demo data is missing.
pub async fn generate(db: &PgPool) -> anyhow::Result<Report> {
    let admin_hash = password::hash("admin".to_owned()).await?;
    let demo_hash = password::hash(DEMO_PASSWORD.to_owned()).await?;
    let mut tx = db.begin().await?;
    let mut report = Report::default();

    report.users_created += usize::from(
        insert_user(
            &mut tx,
            ("admin", "Admin", ""),
            &admin_hash,
            Role::Superuser,
        )
        .await?,
    );
    let mut streamer_ids = Vec::new();
    for s in STREAMERS {
        report.users_created +=
            usize::from(insert_user(&mut tx, s, &demo_hash, Role::Streamer).await?);
        streamer_ids.push(user_id(&mut tx, s.0).await?);
    }
    let mut viewer_ids = Vec::new();
    for v in VIEWERS {
        report.users_created +=
            usize::from(insert_user(&mut tx, v, &demo_hash, Role::Viewer).await?);
        viewer_ids.push(user_id(&mut tx, v.0).await?);
    }

    let mut n = 0usize;
    for (i, streamer_id) in streamer_ids.iter().enumerate() {
        let has_streams: bool = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM streams WHERE streamer_id = $1) AS "exists!""#,
            streamer_id
        )
        .fetch_one(&mut *tx)
        .await?;
        if has_streams {
            continue;
        }
        let name = STREAMERS[i].1;
        for day in [3i64, 1] {
            let started = Utc::now() - Duration::days(day) - Duration::hours(2);
            let stream_id: Uuid = sqlx::query_scalar!(
                "INSERT INTO streams (streamer_id, title, description, started_at, ended_at, created_at)
                 VALUES ($1, $2, $3, $4::timestamptz, $5, $4::timestamptz - interval '10 minutes') RETURNING id",
                streamer_id,
                format!("{name} main bareng — {day} hari lalu"),
                "Siaran demo: main game santai dan ngobrol.",
                started,
                started + Duration::minutes(90),
            )
            .fetch_one(&mut *tx)
            .await?;
            report.streams_created += 1;
            for (k, status) in STATUSES.iter().enumerate() {
                n += 1;
                let donor = viewer_ids[n % viewer_ids.len()];
                let bank_transfer = !n.is_multiple_of(2);
                let created = started + Duration::minutes(5 + 10 * k as i64);
                // Bank transfers carry the reference the donor wrote in the note ("DEMO" has an
                // O, which real codes never do) and expire after 48 h; Midtrans orders after a day.
                // Pending ones count from now, so the demo still has transfers waiting to be
                // confirmed instead of the reconciler expiring them on the first run.
                let validity = if bank_transfer {
                    Duration::hours(48)
                } else {
                    Duration::days(1)
                };
                let expires = if *status == "pending" {
                    Utc::now() + validity
                } else {
                    created + validity
                };
                sqlx::query!(
                    "INSERT INTO donations (stream_id, donor_id, amount, message, payment_method, status, created_at,
                                            is_anonymous, reference_code, expires_at, completed_at, status_reason,
                                            provider_status, payment_type)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                    stream_id,
                    donor,
                    Decimal::from(10_000 * (1 + (n % 10) as i64)),
                    MESSAGES[n % MESSAGES.len()],
                    if bank_transfer { "bank_transfer" } else { "midtrans" },
                    *status,
                    created,
                    n.is_multiple_of(5),
                    bank_transfer.then(|| format!("SRN-DEMO{n:02}")),
                    expires,
                    (*status == "completed" || *status == "refunded").then(|| created + Duration::minutes(2)),
                    match *status {
                        "rejected" => "Tidak ada transfer masuk dengan referensi ini.",
                        "expired" => "Not confirmed in time.",
                        _ => "",
                    },
                    (!bank_transfer).then(|| midtrans_status(status)),
                    (!bank_transfer).then_some("qris"),
                )
                .execute(&mut *tx)
                .await?;
                report.donations_created += 1;
            }
            for (k, content) in COMMENTS.iter().enumerate() {
                sqlx::query!(
                    "INSERT INTO comments (stream_id, user_id, content, created_at) VALUES ($1, $2, $3, $4)",
                    stream_id,
                    viewer_ids[(k + i) % viewer_ids.len()],
                    content,
                    started + Duration::minutes(2 + 7 * k as i64),
                )
                .execute(&mut *tx)
                .await?;
                report.comments_created += 1;
            }
        }
        sqlx::query!(
            "INSERT INTO payout_accounts (user_id, bank_name, account_number, account_holder)
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING",
            streamer_id,
            ["BCA", "Mandiri", "BRI"][i % 3],
            format!("{:010}", 1_234_567_890u64 + i as u64 * 1_111),
            format!("{} {}", STREAMERS[i].1, STREAMERS[i].2),
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO blocked_words (streamer_id, word) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            streamer_id,
            &BLOCKED_WORDS.map(str::to_owned)[..],
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO streams (streamer_id, title, description) VALUES ($1, $2, $3)",
            streamer_id,
            format!("{name} live malam ini"),
            "Stream berikutnya: mulai saat OBS tersambung.",
        )
        .execute(&mut *tx)
        .await?;
        report.streams_created += 1;
    }
    for (i, streamer_id) in streamer_ids.iter().enumerate() {
        let has_key: bool = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM stream_keys WHERE user_id = $1) AS "exists!""#,
            streamer_id
        )
        .fetch_one(&mut *tx)
        .await?;
        if !has_key {
            let key = crate::streams::keys::NewStreamKey::generate();
            key.save(&mut *tx, *streamer_id).await?;
            report
                .stream_keys
                .push((STREAMERS[i].0.to_owned(), key.key.clone()));
        }
    }
    tx.commit().await.context("committing demo data")?;
    Ok(report)
}

/// What Midtrans' status endpoint would say about a demo donation in `status`.
fn midtrans_status(status: &str) -> &'static str {
    match status {
        "completed" => "settlement",
        "failed" => "deny",
        "expired" => "expire",
        "refunded" => "refund",
        _ => "pending",
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Superuser,
    Streamer,
    Viewer,
}

async fn insert_user(
    tx: &mut Transaction<'_, Postgres>,
    (username, first, last): (&str, &str, &str),
    hash: &str,
    role: Role,
) -> sqlx::Result<bool> {
    let admin = role == Role::Superuser;
    let inserted = sqlx::query!(
        "INSERT INTO users (username, email, password_hash, first_name, last_name, is_staff, is_superuser, is_streamer)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7) ON CONFLICT DO NOTHING",
        username,
        format!("{username}@siaran.local"),
        hash,
        first,
        last,
        admin,
        role == Role::Streamer,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

async fn user_id(tx: &mut Transaction<'_, Postgres>, username: &str) -> anyhow::Result<Uuid> {
    sqlx::query_scalar!(
        "SELECT id FROM users WHERE lower(username) = lower($1)",
        username
    )
    .fetch_optional(&mut **tx)
    .await?
    .with_context(|| format!("demo user {username} is missing"))
}
