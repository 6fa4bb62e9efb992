//! The authorization matrix: every operation of the OpenAPI document, called by anonymous, a
//! user who owns nothing of the fixture, another streamer, the owner of the resource, the donor
//! of the donation, staff and a superuser — each on a fresh fixture, so no call's effect decides
//! another's answer. The expected status of every (operation, caller) is declared in [`CASES`];
//! an operation in the document without a row fails the test, so a new route cannot skip it.

use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use siaran::auth::jwt::JwtKeys;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{PASSWORD, TEST_JWT_SECRET, TestApp};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Anonymous,
    /// Logged in, owns nothing of the fixture, not a streamer.
    OtherUser,
    /// A streamer with a live stream of their own.
    OtherStreamer,
    /// The streamer who owns the stream (and receives its donation and comment).
    Owner,
    /// Who made the donation and wrote the comment.
    Donor,
    Staff,
    Superuser,
}

const ROLES: [Role; 7] = [
    Role::Anonymous,
    Role::OtherUser,
    Role::OtherStreamer,
    Role::Owner,
    Role::Donor,
    Role::Staff,
    Role::Superuser,
];

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::OtherUser => "other_user",
            Self::OtherStreamer => "other_streamer",
            Self::Owner => "owner",
            Self::Donor => "donor",
            Self::Staff => "staff",
            Self::Superuser => "superuser",
        }
    }
}

/// What fills an operation's path parameters.
#[derive(Debug, Clone, Copy)]
enum Target {
    Nothing,
    /// The owner's live stream.
    Stream,
    /// The owner's stream and its playlist file.
    Playlist,
    /// The donor's pending bank transfer to the owner's stream.
    Donation,
    /// The donor's comment on the owner's stream.
    Comment,
    /// The owner's account (a streamer, not staff).
    OwnerAccount,
    /// Another superuser's account.
    SuperuserAccount,
    /// The owner's overlay token.
    OverlayToken,
}

/// The request body.
#[derive(Debug, Clone, Copy)]
enum Body {
    Empty,
    Json(fn(&Fixture) -> Value),
}

struct Case {
    method: &'static str,
    /// The path as the document writes it.
    path: &'static str,
    target: Target,
    body: Body,
    /// `role=status` for each role, `*=status` for every role not named.
    expect: &'static str,
}

const fn case(
    method: &'static str,
    path: &'static str,
    target: Target,
    body: Body,
    expect: &'static str,
) -> Case {
    Case {
        method,
        path,
        target,
        body,
        expect,
    }
}

use Body::{Empty, Json};
use Target::{
    Comment, Donation, Nothing, OverlayToken, OwnerAccount, Playlist, Stream, SuperuserAccount,
};

/// Only staff: anonymous 401, everyone else 403.
const STAFF_ONLY: &str = "*=403 anonymous=401 staff=200 superuser=200";
/// Any logged-in user, on their own account.
const SIGNED_IN: &str = "*=200 anonymous=401";

/// The table. Rows for one operation may differ in their target (a superuser's account).
const CASES: &[Case] = &[
    case("GET", "/healthz", Nothing, Empty, "*=200"),
    case("GET", "/readyz", Nothing, Empty, "*=200"),
    case("GET", "/metrics", Nothing, Empty, "*=200"),
    case(
        "POST",
        "/api/auth/register",
        Nothing,
        Json(
            |f| json!({"username": format!("new{}", f.n), "email": format!("new{}@example.com", f.n), "password": PASSWORD}),
        ),
        "*=201",
    ),
    case(
        "POST",
        "/api/auth/login",
        Nothing,
        Json(|f| json!({"login": f.owner_name, "password": PASSWORD})),
        "*=200",
    ),
    // The refresh token is the credential; whoever else is logged in does not matter.
    case(
        "POST",
        "/api/auth/refresh",
        Nothing,
        Json(|f| json!({"refresh_token": f.refresh_token})),
        "*=200",
    ),
    case(
        "POST",
        "/api/auth/logout",
        Nothing,
        Json(|f| json!({"refresh_token": f.refresh_token})),
        "*=204",
    ),
    case("GET", "/api/users/me", Nothing, Empty, SIGNED_IN),
    case(
        "PATCH",
        "/api/users/me",
        Nothing,
        Json(|_| json!({"first_name": "Nama"})),
        SIGNED_IN,
    ),
    case("GET", "/api/admin/users", Nothing, Empty, STAFF_ONLY),
    case(
        "POST",
        "/api/admin/users/{id}/deactivate",
        OwnerAccount,
        Empty,
        STAFF_ONLY,
    ),
    case(
        "POST",
        "/api/admin/users/{id}/deactivate",
        SuperuserAccount,
        Empty,
        "*=403 anonymous=401 superuser=200",
    ),
    case(
        "POST",
        "/api/admin/users/{id}/reactivate",
        OwnerAccount,
        Empty,
        STAFF_ONLY,
    ),
    case(
        "POST",
        "/api/admin/users/{id}/reactivate",
        SuperuserAccount,
        Empty,
        "*=403 anonymous=401 superuser=200",
    ),
    case("GET", "/api/admin/streams", Nothing, Empty, STAFF_ONLY),
    case(
        "POST",
        "/api/admin/streams/{id}/end",
        Stream,
        Empty,
        STAFF_ONLY,
    ),
    case("GET", "/api/admin/donations", Nothing, Empty, STAFF_ONLY),
    case("GET", "/api/streams/{id}/comments", Stream, Empty, "*=200"),
    case(
        "POST",
        "/api/streams/{id}/comments",
        Stream,
        Json(|_| json!({"content": "Halo!"})),
        "*=201 anonymous=401",
    ),
    // The stream's owner and staff; not even the comment's author.
    case(
        "DELETE",
        "/api/comments/{comment_id}",
        Comment,
        Empty,
        "*=403 anonymous=401 owner=204 staff=204 superuser=204",
    ),
    // Anyone may open these sockets; a plain request is told to upgrade.
    case("GET", "/ws/stream/{stream_id}/", Stream, Empty, "*=426"),
    case("GET", "/ws/overlay/{token}", OverlayToken, Empty, "*=426"),
    case(
        "POST",
        "/api/users/me/overlay-token",
        Nothing,
        Empty,
        "*=201 anonymous=401 other_user=403 donor=403 staff=403 superuser=403",
    ),
    case("GET", "/api/users/me/overlay", Nothing, Empty, SIGNED_IN),
    case(
        "POST",
        "/api/streams",
        Nothing,
        Json(|_| json!({"title": "Baru"})),
        "*=201 anonymous=401",
    ),
    case("GET", "/api/streams", Nothing, Empty, "*=200"),
    case("GET", "/api/streams/{id}", Stream, Empty, "*=200"),
    case(
        "PATCH",
        "/api/streams/{id}",
        Stream,
        Json(|_| json!({"title": "Judul baru"})),
        "*=403 anonymous=401 owner=200",
    ),
    case(
        "POST",
        "/api/streams/{id}/stop",
        Stream,
        Empty,
        "*=403 anonymous=401 owner=200",
    ),
    case(
        "POST",
        "/api/users/me/stream-key",
        Nothing,
        Empty,
        "*=201 anonymous=401",
    ),
    case("GET", "/api/users/me/ingest", Nothing, Empty, SIGNED_IN),
    case("GET", "/hls/{stream_id}/{file}", Playlist, Empty, "*=200"),
    // Everyone reads their own; only the owner and the other streamer have one set.
    case(
        "GET",
        "/api/users/me/payout",
        Nothing,
        Empty,
        "*=404 anonymous=401 owner=200 other_streamer=200",
    ),
    case(
        "PATCH",
        "/api/users/me/payout",
        Nothing,
        Json(
            |_| json!({"bank_name": "BNI", "account_number": "9876543210", "account_holder": "Siapa"}),
        ),
        SIGNED_IN,
    ),
    case(
        "GET",
        "/api/users/me/blocked-words",
        Nothing,
        Empty,
        SIGNED_IN,
    ),
    case(
        "PUT",
        "/api/users/me/blocked-words",
        Nothing,
        Json(|_| json!({"words": ["judi"]})),
        SIGNED_IN,
    ),
    // Not to one's own stream (a field error), by anyone else.
    case(
        "POST",
        "/api/streams/{id}/donations",
        Stream,
        Json(|_| json!({"amount": 10000, "payment_method": "bank_transfer"})),
        "*=201 anonymous=401 owner=422",
    ),
    case("GET", "/api/streams/{id}/donations", Stream, Empty, "*=200"),
    // Whether a donation exists is only its donor's, its streamer's and staff's business.
    case(
        "GET",
        "/api/donations/{id}",
        Donation,
        Empty,
        "*=404 anonymous=401 owner=200 donor=200 staff=200 superuser=200",
    ),
    case(
        "POST",
        "/api/donations/{id}/confirm",
        Donation,
        Empty,
        // Those who may see the donation are told no; to anyone else it does not exist.
        "*=404 anonymous=401 owner=200 donor=403 staff=403 superuser=403",
    ),
    case(
        "POST",
        "/api/donations/{id}/reject",
        Donation,
        Empty,
        // Those who may see the donation are told no; to anyone else it does not exist.
        "*=404 anonymous=401 owner=200 donor=403 staff=403 superuser=403",
    ),
    case("GET", "/api/donations/sent", Nothing, Empty, SIGNED_IN),
    case("GET", "/api/donations/received", Nothing, Empty, SIGNED_IN),
    // Signed by Midtrans, not by a user: a bad signature is refused whoever sends it (503: the
    // test server has no Midtrans key to check with).
    case(
        "POST",
        "/api/payments/midtrans/notification",
        Nothing,
        Json(
            |_| json!({"order_id": "x", "status_code": "200", "gross_amount": "10000.00", "signature_key": "bad"}),
        ),
        "*=503",
    ),
];

fn expected(case: &Case, role: Role) -> StatusCode {
    let mut fallback = None;
    for entry in case.expect.split_whitespace() {
        let (who, status) = entry.split_once('=').expect("role=status");
        let status: u16 = status.parse().expect("a status");
        if who == role.name() {
            return StatusCode::from_u16(status).expect("a status");
        }
        if who == "*" {
            fallback = Some(status);
        }
        assert!(
            who == "*" || ROLES.iter().any(|r| r.name() == who),
            "unknown role {who} in {} {}",
            case.method,
            case.path
        );
    }
    let status = fallback.unwrap_or_else(|| {
        panic!(
            "{} {} declares nothing for {}",
            case.method,
            case.path,
            role.name()
        )
    });
    StatusCode::from_u16(status).expect("a status")
}

/// One fresh set of users and resources.
#[derive(Debug)]
struct Fixture {
    n: usize,
    owner_name: String,
    users: Vec<(Role, Uuid)>,
    stream: Uuid,
    donation: Uuid,
    comment: Uuid,
    superuser_target: Uuid,
    overlay_token: String,
    refresh_token: String,
}

static HASH: LazyLock<String> =
    LazyLock::new(|| siaran::auth::password::hash_blocking(PASSWORD).expect("hashing"));
static NEXT: AtomicUsize = AtomicUsize::new(0);

async fn insert_user(
    db: &PgPool,
    name: &str,
    streamer: bool,
    staff: bool,
    superuser: bool,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO users (username, email, password_hash, is_streamer, is_staff, is_superuser)
         VALUES ($1, $1 || '@example.com', $2, $3, $4, $5) RETURNING id",
    )
    .bind(name)
    .bind(&*HASH)
    .bind(streamer)
    .bind(staff)
    .bind(superuser)
    .fetch_one(db)
    .await
    .expect("inserting a user")
}

async fn live_stream(db: &PgPool, streamer: Uuid) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO streams (streamer_id, title, is_active, started_at) VALUES ($1, 'Live', true, now())
         RETURNING id",
    )
    .bind(streamer)
    .fetch_one(db)
    .await
    .expect("inserting a stream")
}

async fn payout(db: &PgPool, user: Uuid) {
    sqlx::query(
        "INSERT INTO payout_accounts (user_id, bank_name, account_number, account_holder)
         VALUES ($1, 'BCA', '1234567890', 'Pemilik')",
    )
    .bind(user)
    .execute(db)
    .await
    .expect("inserting a payout account");
}

impl Fixture {
    async fn create(app: &TestApp) -> Self {
        let db = &app.db;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let owner_name = format!("owner{n}");
        let owner = insert_user(db, &owner_name, true, false, false).await;
        let other_user = insert_user(db, &format!("user{n}"), false, false, false).await;
        let other_streamer = insert_user(db, &format!("streamer{n}"), true, false, false).await;
        let donor = insert_user(db, &format!("donor{n}"), false, false, false).await;
        let staff = insert_user(db, &format!("staff{n}"), false, true, false).await;
        let superuser = insert_user(db, &format!("super{n}"), false, true, true).await;
        let superuser_target = insert_user(db, &format!("root{n}"), false, true, true).await;
        payout(db, owner).await;
        payout(db, other_streamer).await;
        let stream = live_stream(db, owner).await;
        live_stream(db, other_streamer).await;
        let comment = sqlx::query_scalar(
            "INSERT INTO comments (stream_id, user_id, content) VALUES ($1, $2, 'Halo') RETURNING id",
        )
        .bind(stream)
        .bind(donor)
        .fetch_one(db)
        .await
        .expect("inserting a comment");
        let donation = sqlx::query_scalar(
            "INSERT INTO donations (stream_id, donor_id, amount, payment_method, reference_code, expires_at)
             VALUES ($1, $2, 10000, 'bank_transfer', $3, now() + interval '1 day') RETURNING id",
        )
        .bind(stream)
        .bind(donor)
        .bind(format!("SRN-T{n:05}"))
        .fetch_one(db)
        .await
        .expect("inserting a donation");
        let overlay_token = format!("sov_matrix{n}");
        sqlx::query("INSERT INTO overlay_tokens (user_id, token_hash, hint) VALUES ($1, sha256($2::bytea), 'sov_…')")
            .bind(owner)
            .bind(overlay_token.as_bytes())
            .execute(db)
            .await
            .expect("inserting an overlay token");
        let refresh_token = siaran::auth::refresh::start_family(db, owner)
            .await
            .expect("a refresh token");
        let hls = media::stream_dir(&app.hls_dir, &stream.to_string());
        std::fs::create_dir_all(&hls).expect("HLS directory");
        std::fs::write(
            hls.join("index.m3u8"),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n",
        )
        .expect("a playlist");
        Self {
            n,
            owner_name,
            users: vec![
                (Role::OtherUser, other_user),
                (Role::OtherStreamer, other_streamer),
                (Role::Owner, owner),
                (Role::Donor, donor),
                (Role::Staff, staff),
                (Role::Superuser, superuser),
            ],
            stream,
            donation,
            comment,
            superuser_target,
            overlay_token,
            refresh_token,
        }
    }

    fn user(&self, role: Role) -> Option<Uuid> {
        self.users
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, id)| *id)
    }

    fn path(&self, case: &Case) -> String {
        let fill = |name: &str| -> String {
            match (case.target, name) {
                (Stream | Playlist, "id" | "stream_id") => self.stream.to_string(),
                (Playlist, "file") => "index.m3u8".to_owned(),
                (Donation, "id") => self.donation.to_string(),
                (Comment, "comment_id") => self.comment.to_string(),
                (OwnerAccount, "id") => self.user(Role::Owner).expect("owner").to_string(),
                (SuperuserAccount, "id") => self.superuser_target.to_string(),
                (OverlayToken, "token") => self.overlay_token.clone(),
                (target, name) => panic!(
                    "{} {}: target {target:?} does not fill {{{name}}}",
                    case.method, case.path
                ),
            }
        };
        case.path
            .split('/')
            .map(
                |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => fill(name),
                    None => segment.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The operations the document lists, as `(METHOD, path)`.
async fn documented(app: &TestApp) -> BTreeSet<(String, String)> {
    let doc: Value = app
        .get("/api/openapi.json")
        .await
        .json()
        .await
        .expect("document");
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[sqlx::test(migrator = "siaran::db::MIGRATOR")]
async fn every_operation_answers_each_kind_of_caller_as_declared(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let keys = JwtKeys::new(TEST_JWT_SECRET.as_bytes());

    let in_table: BTreeSet<_> = CASES
        .iter()
        .map(|c| (c.method.to_owned(), c.path.to_owned()))
        .collect();
    let in_document = documented(&app).await;
    let missing: Vec<_> = in_document.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&in_document).collect();
    assert!(
        missing.is_empty(),
        "operations with no row in the authorization matrix: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "rows for operations the document no longer has: {stale:?}"
    );

    let mut wrong = Vec::new();
    for case in CASES {
        for role in ROLES {
            let fixture = Fixture::create(&app).await;
            let method = Method::from_bytes(case.method.as_bytes()).expect("method");
            let mut request = app.request(method, &fixture.path(case));
            if let Some(user) = fixture.user(role) {
                request = request.bearer_auth(keys.issue(user));
            }
            request = match case.body {
                Empty => request,
                Json(body) => request.json(&body(&fixture)),
            };
            let response = request.send().await.expect("request");
            let got = response.status();
            let want = expected(case, role);
            if got != want {
                let body = response.text().await.unwrap_or_default();
                wrong.push(format!(
                    "{} {} ({:?}) as {}: expected {want}, got {got}: {body}",
                    case.method,
                    case.path,
                    case.target,
                    role.name()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} unexpected answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
