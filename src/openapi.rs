//! The OpenAPI document's frame: title, security scheme, tags. Paths and schemas come from the
//! handlers themselves through `utoipa-axum`, so the document lists exactly the routes served.
//!
//! [`complete`] then adds to every operation the problem responses that the shared layers and
//! extractors can give it, judged from what the operation has — a body, path or query
//! parameters, a security requirement — so that every status a route can return is in the
//! document without each handler listing the same dozen, and a new route cannot forget them.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi as OpenApiDoc, Ref, RefOr, Response,
    ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi};

use crate::error::PROBLEM_JSON;

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

/// A response every operation of some kind can give, added where the operation does not
/// describe that status itself.
struct Common {
    status: &'static str,
    name: &'static str,
    description: &'static str,
    retry_after: bool,
}

const BAD_REQUEST: Common = Common {
    status: "400",
    name: "BadRequest",
    description: "`malformed_json` or `unreadable_body`: the body is not JSON",
    retry_after: false,
};
const UNAUTHORIZED: Common = Common {
    status: "401",
    name: "Unauthorized",
    description: "`not_authenticated`, `invalid_token`, `token_expired` or `account_disabled`",
    retry_after: false,
};
const NOT_FOUND: Common = Common {
    status: "404",
    name: "NotFound",
    description: "`not_found`: nothing has this id (also for ids that are not UUIDs)",
    retry_after: false,
};
const REQUEST_TIMEOUT: Common = Common {
    status: "408",
    name: "RequestTimeout",
    description: "`request_timeout`: the request (or its body) took too long",
    retry_after: false,
};
const PAYLOAD_TOO_LARGE: Common = Common {
    status: "413",
    name: "PayloadTooLarge",
    description: "`payload_too_large`: the body is over `SIARAN_MAX_BODY_BYTES`",
    retry_after: false,
};
const UNSUPPORTED_MEDIA_TYPE: Common = Common {
    status: "415",
    name: "UnsupportedMediaType",
    description: "`unsupported_media_type`: the body is not `application/json`",
    retry_after: false,
};
const VALIDATION_FAILED: Common = Common {
    status: "422",
    name: "ValidationFailed",
    description: "`validation_failed`: `errors` names each invalid field (wrong types, values out of range, text with NUL)",
    retry_after: false,
};
const INTERNAL_ERROR: Common = Common {
    status: "500",
    name: "InternalError",
    description: "`internal_error`: a fault on the server's side (details only in its log)",
    retry_after: false,
};
const SERVICE_UNAVAILABLE: Common = Common {
    status: "503",
    name: "ServiceUnavailable",
    description: "`service_unavailable` (the database is down), `service_busy` or `too_many_connections`; see `Retry-After`",
    retry_after: true,
};

impl Common {
    fn response(&self) -> Response {
        let problem = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build();
        let mut builder = ResponseBuilder::new()
            .description(self.description)
            .content(PROBLEM_JSON, problem);
        if self.retry_after {
            builder = builder.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new().schema_type(Type::Integer).build(),
                    ))
                    .description(Some("Seconds to wait before trying again"))
                    .build(),
            );
        }
        builder.build()
    }
}

/// Adds the shared problem responses (under `components.responses`) to every operation that
/// can give them and does not describe them itself:
/// - a request body: 400, 413, 415, 422 (the JSON extractor);
/// - query parameters: 422 (the query extractor names the field); path parameters: 404 (an id
///   that does not parse names nothing);
/// - a security requirement: 401 (the token extractor);
/// - every operation: 408 (the request timeout), 500 and 503 (database down, connection cap).
pub fn complete(doc: &mut OpenApiDoc) {
    let all = [
        BAD_REQUEST,
        UNAUTHORIZED,
        NOT_FOUND,
        REQUEST_TIMEOUT,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        VALIDATION_FAILED,
        INTERNAL_ERROR,
        SERVICE_UNAVAILABLE,
    ];
    let components = doc.components.get_or_insert_with(Default::default);
    for common in &all {
        components
            .responses
            .insert(common.name.to_owned(), RefOr::T(common.response()));
    }
    for (path, item) in &mut doc.paths.paths {
        let has_path_params = path.contains('{');
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete_operation(operation, has_path_params);
        }
    }
}

fn complete_operation(operation: &mut Operation, has_path_params: bool) {
    let params = operation.parameters.as_deref().unwrap_or_default();
    let located = |place: ParameterIn| {
        params
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let has_query = located(ParameterIn::Query);
    let has_path = has_path_params || located(ParameterIn::Path);
    let has_body = operation.request_body.is_some();
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let mut wanted = Vec::new();
    if has_body {
        wanted.extend([
            BAD_REQUEST,
            PAYLOAD_TOO_LARGE,
            UNSUPPORTED_MEDIA_TYPE,
            VALIDATION_FAILED,
        ]);
    }
    if has_query {
        wanted.push(VALIDATION_FAILED);
    }
    if has_path {
        wanted.push(NOT_FOUND);
    }
    if secured {
        wanted.push(UNAUTHORIZED);
    }
    wanted.extend([REQUEST_TIMEOUT, INTERNAL_ERROR, SERVICE_UNAVAILABLE]);
    let responses = &mut operation.responses.responses;
    for common in wanted {
        responses
            .entry(common.status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(common.name)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_gets_what_its_shape_can_answer() {
        // `api()` completes the document it builds.
        let (_, doc) = crate::http::api();
        let doc = serde_json::to_value(&doc).expect("JSON");
        let register = &doc["paths"]["/api/auth/register"]["post"]["responses"];
        for status in ["400", "413", "415", "422", "408", "500", "503"] {
            assert!(register.get(status).is_some(), "register lacks {status}");
        }
        // Its own description of 422 is kept.
        assert!(register["422"].get("$ref").is_none());
        assert!(register.get("401").is_none(), "register needs no token");
        let stream = &doc["paths"]["/api/streams/{id}"]["get"]["responses"];
        assert!(stream.get("404").is_some());
        assert!(stream.get("415").is_none(), "a GET takes no body");
        let me = &doc["paths"]["/api/users/me"]["get"]["responses"];
        assert!(me.get("401").is_some());
        assert_eq!(
            doc["components"]["responses"]["ServiceUnavailable"]["content"][PROBLEM_JSON]["schema"]
                ["$ref"],
            "#/components/schemas/Problem"
        );
    }
}
