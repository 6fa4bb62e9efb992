//! The OpenAPI document's frame: title, security scheme, tags. Paths and schemas come from the
//! handlers themselves through `utoipa-axum`, so the document lists exactly the routes served.

use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Siaran API",
        description = include_str!("../docs/api.md"),
        license(name = "AGPL-3.0-or-later"),
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Registration, login and sessions"),
        (name = "users", description = "The signed-in user's account"),
        (name = "comments", description = "Live comments on streams"),
        (name = "live", description = "WebSockets (stream events, OBS overlay) and overlay tokens"),
        (name = "streams", description = "Streams, stream keys and HLS playback"),
        (name = "donations", description = "Donations (Midtrans and bank transfer), payment notifications, history, payout account and blocked words"),
        (name = "operations", description = "Health and metrics"),
        (name = "admin", description = "The staff console: users, streams, donations"),
    ),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document before routes are added.
#[must_use]
pub fn base() -> OpenApiDoc {
    ApiDoc::openapi()
}
