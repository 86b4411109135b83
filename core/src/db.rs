//! Runboard's store and the services' databases, through the one dialect layer
//! (`runboard-dialect`): the names the core's modules use for it.

pub(crate) use runboard_dialect::{
    Arg, BeginWrite, OpenError, Pool, PoolSettings, Transaction, on_pool, on_transaction,
};
