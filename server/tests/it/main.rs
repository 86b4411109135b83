//! The server's integration tests, in one binary: each test runs the real router (or the
//! `runboard` binary) against a store and a demo fleet of its own, so they can share a
//! process, and the server is linked once for all of them rather than once per file.

mod support;

mod actions;
mod authorization;
mod cli;
mod crash;
mod discovery;
mod export;
mod faults;
mod fleet;
mod hardening;
mod http;
mod identity;
mod keyset;
mod openapi;
mod properties;
mod replicas;
mod rollback;
mod rollout;
mod runbooks;
mod scale;
mod screens;
mod watches;
