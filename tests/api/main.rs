//! HTTP API tests: the real router over real PostgreSQL and Redis.

// Test helpers are shared by modules that each use a part of them.
#![allow(unreachable_pub, dead_code)]

mod helpers;

mod auth;
mod errors;
mod openapi;
mod ops;
mod streams;
mod users;
