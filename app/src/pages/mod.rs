pub mod batch;
pub mod batches;
pub mod funds;
pub mod lookup;
pub mod not_found;
pub mod overview;
pub mod saga;
pub mod service;
