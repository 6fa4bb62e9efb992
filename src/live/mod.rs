//! Real time: the live events of a stream, carried between server processes by Redis and
//! delivered to viewers over `/ws/stream/{id}/`.

pub mod events;
