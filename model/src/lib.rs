//! The product's words as plain data, shared by the server and the browser.
//!
//! Nothing here talks to a database or the network: these types cross the wire
//! between server functions and hydrated pages, so they must build for wasm too.

mod service;

pub use service::{RegisteredService, ServiceName, ServiceNameError};
