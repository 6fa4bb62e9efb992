//! Siaran: self-hosted live streaming with chat and donations.
//!
//! Start at [`startup::Application`] (how the server is assembled) and [`http::router`] (every
//! route). Features live in their own modules, each owning its `router()`.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod comments;
pub mod config;
pub mod db;
pub mod donations;
pub mod error;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod kv;
pub mod live;
pub mod mail;
pub mod openapi;
pub mod payments;
pub mod ratelimit;
pub mod seed;
pub mod services;
pub mod startup;
pub mod state;
pub mod streams;
pub mod telemetry;
pub mod text;
pub mod users;
