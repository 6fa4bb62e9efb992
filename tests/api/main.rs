//! HTTP API tests: the real router over real PostgreSQL and Redis.

// Test helpers are shared by modules that each use a part of them.
#![allow(unreachable_pub, dead_code)]

mod helpers;

mod auth;
mod cluster;
mod comments;
mod errors;
mod live;
mod openapi;
mod ops;
mod overlay;
mod users;
mod ws;
