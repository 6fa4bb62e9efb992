//! HTTP API tests: the real router over real PostgreSQL and Redis.

// Test helpers are shared by modules that each use a part of them.
#![allow(unreachable_pub, dead_code)]

mod donation_support;
mod helpers;
mod smtp_sink;

mod admin;
mod auth;
mod authz;
mod bank_transfers;
mod cluster;
mod comments;
mod donations;
mod errors;
mod frontend;
mod jobs;
mod limits;
mod live;
mod midtrans;
mod midtrans_sandbox;
mod openapi;
mod ops;
mod overlay;
mod security;
mod server;
mod streams;
mod users;
mod ws;
